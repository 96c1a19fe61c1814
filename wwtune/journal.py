"""The journal file survives torn writes and full disks.

Optuna's journal is one JSON record per line. A write cut short (kill -9 or power loss mid-append, a full
disk) leaves a *torn tail*: the last line incomplete. Optuna skips a torn last line when it reads, but
the next append lands straight after it, so the broken line ends up in the middle, where Optuna refuses
the whole file. Two things here keep that from happening:

* :func:`repair_journal`, called before a study's journal is opened: a torn tail is cut back to the last
  complete record (its bytes kept in a backup file beside the journal, with a warning saying how many
  were dropped); a broken record *followed by* complete ones is refused with :class:`JournalCorrupt`
  (which records to keep is the user's call, not ours).
* :class:`SafeJournalFileBackend`: an append that fails (``ENOSPC``, ``EFBIG``, ...) is rolled back to
  the file's previous end under the journal lock, and raises :class:`JournalWriteError` naming the file
  and what was not written, so the journal stays readable.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock

from wwtune.deadline import signals_held
from wwtune.diskio import WriteError
from wwtune.exceptions import JournalCorrupt, JournalWriteError

__all__ = [
    "JournalCorrupt",
    "JournalWriteError",
    "SafeJournalFileBackend",
    "repair_journal",
    "write_error_in",
]

_logger = logging.getLogger(__name__)
#: the system call appends go through (a fault-injection test replaces it to fill the disk)
_write = os.write

#: suffix of the file that keeps the bytes :func:`repair_journal` cut off a torn journal
TORN_SUFFIX = ".torn"


def _records(f: Any, offset: int) -> Iterator[tuple[int, int, bool]]:
    """``(start, end, complete)`` for each line of ``f`` from byte ``offset``: complete when it ends in a
    newline and parses as JSON."""
    f.seek(offset)
    pos = offset
    for line in f:
        end = pos + len(line)
        complete = line.endswith(b"\n")
        if complete:
            try:
                json.loads(line)
            except ValueError:
                complete = False
        yield pos, end, complete
        pos = end


def _scan(path: Path, offset: int = 0) -> tuple[int, int | None]:
    """``(good_end, bad_line)``: where the complete records end, and the 1-based line number of a broken
    record that complete records follow (None when the file is clean or only its tail is torn)."""
    good_end, first_bad = offset, None
    with open(path, "rb") as f:
        for number, (_start, end, complete) in enumerate(_records(f, offset), start=1):
            if complete and first_bad is not None:
                return good_end, first_bad
            if complete:
                good_end = end
            elif first_bad is None:
                first_bad = number
    return good_end, None


def _line_number(path: Path, offset: int) -> int:
    with open(path, "rb") as f:
        return f.read(offset).count(b"\n") + 1


def repair_journal(path: str | os.PathLike[str]) -> int:
    """Make the journal at ``path`` safe to append to; returns the number of bytes dropped (0: untouched).

    A torn tail (an incomplete last line, or several broken lines with no complete record after them) is
    truncated to the end of the last complete record, under the journal's own lock so a worker's append
    in progress is never mistaken for a torn one. The dropped bytes are kept in ``<path>.torn.<time>``
    first (nothing is cut if that backup cannot be written). A broken record followed by complete ones
    raises :class:`JournalCorrupt`. A missing or empty file is left alone.

    Example:
        .. code-block:: python

            from pathlib import Path
            import tempfile
            from wwtune.journal import repair_journal

            path = Path(tempfile.mkdtemp()) / "journal.log"
            path.write_bytes(b'{"op_code": 0}\\n{"op_co')   # a write cut short
            assert repair_journal(path) == 7                 # warns, keeps the 7 bytes in journal.log.torn.*
            assert path.read_bytes() == b'{"op_code": 0}\\n'
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return 0
    if size == 0:
        return 0
    good_end, bad_line = _scan(path)
    if bad_line is not None:
        raise JournalCorrupt(_corrupt_message(path, bad_line))
    if good_end == size:
        return 0
    # A torn tail, or another worker's append in progress: look again holding the journal's lock.
    lock = JournalFileSymlinkLock(str(path.absolute()))
    lock.acquire()
    try:
        good_end, bad_line = _scan(path, good_end)
        if bad_line is not None:  # records appended meanwhile after a broken one
            raise JournalCorrupt(_corrupt_message(path, _line_number(path, good_end)))
        size = path.stat().st_size
        if good_end == size:
            return 0
        with open(path, "r+b") as f:
            f.seek(good_end)
            torn = f.read()
            backup = path.with_name(
                f"{path.name}{TORN_SUFFIX}.{time.strftime('%Y%m%dT%H%M%S')}.{os.getpid()}"
            )
            try:
                with open(backup, "wb") as out:
                    out.write(torn)
                    out.flush()
                    os.fsync(out.fileno())
            except OSError as exc:
                backup.unlink(missing_ok=True)
                raise JournalWriteError(
                    f"the journal {str(path)!r} ends in {len(torn)} bytes of a torn record, but their backup "
                    f"{str(backup)!r} could not be written ({exc.strerror or exc}); nothing was cut. "
                    "Free some space and run again."
                ) from None
            f.truncate(good_end)
            f.flush()
            os.fsync(f.fileno())
    finally:
        lock.release()
    _logger.warning(
        "The journal %s ended in a torn record (an interrupted or failed write): dropped its last %d "
        "byte(s), back to the last complete record; the dropped bytes are kept in %s.",
        path,
        len(torn),
        backup,
    )
    return len(torn)


def _corrupt_message(path: Path, line: int) -> str:
    return (
        f"the journal {str(path)!r} has a broken record at line {line}, followed by complete ones, so "
        "Optuna cannot read it; wwtune does not guess which records to keep. Copy the file, then delete "
        f"that line (sed -i '{line}d' {path}) and run again."
    )


class SafeJournalFileBackend(JournalFileBackend):
    """Optuna's journal file backend whose failed appends leave the file as it was.

    An append writes the records, flushes and fsyncs under the journal lock; if any of that fails, the file
    is truncated back to its size before the append (still under the lock) and :class:`JournalWriteError`
    is raised. Reading is Optuna's own.
    """

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        data = "".join(json.dumps(log, separators=(",", ":")) + "\n" for log in logs).encode("utf-8")
        try:
            self._lock.acquire()
        except OSError as exc:  # the lock is a symlink beside the journal: it needs an inode too
            raise JournalWriteError(
                f"could not take the lock of the journal {self._file_path!r} to write {len(logs)} study "
                f"record(s): {exc.strerror or exc}. The journal is unchanged; free some space and run again."
            ) from None
        try:
            fd = os.open(self._file_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                start = os.fstat(fd).st_size
                try:
                    with signals_held():  # a trial timeout or Ctrl-C lands after the record, never inside
                        view = memoryview(data)
                        while view:
                            view = view[_write(fd, view) :]
                        os.fsync(fd)
                except OSError as exc:
                    _roll_back(fd, start)
                    ops = sorted({str(log.get("op_code")) for log in logs})
                    raise JournalWriteError(
                        f"could not write {len(logs)} study record(s) (op {', '.join(ops)}; "
                        f"{len(data)} bytes) to the journal {self._file_path!r}: {exc.strerror or exc}. "
                        "The journal is unchanged and readable; free some space and run again to resume."
                    ) from None
            finally:
                os.close(fd)
        finally:
            self._lock.release()


def _roll_back(fd: int, size: int) -> None:
    try:
        os.ftruncate(fd, size)
        os.fsync(fd)
    except OSError:  # pragma: no cover - truncating never needs space; repair_journal is the backstop
        _logger.warning("could not roll back a failed journal append; the next run will repair it")


def write_error_in(exc: BaseException | None) -> WriteError | None:
    """The :class:`~wwtune.diskio.WriteError` ``exc`` is, or was raised while handling (Optuna replaces a
    failed write with its own ``AssertionError`` when it cannot record a trial's end); else None."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, WriteError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None
