"""The journal file survives torn writes and full disks.

Optuna's journal is one JSON record per line. A write cut short (kill -9 or power loss mid-append, a full
disk) leaves a *torn tail*: the last line incomplete. Optuna skips a torn last line when it reads, but
the next append lands straight after it, so the broken line ends up in the middle, where Optuna refuses
the whole file. Two things here keep that from happening:

* :func:`repair_journal`, called before a study's journal is opened: a torn tail — or a last line that is
  valid JSON but no journal record (``{}``, ``42``, an unknown op code) — is cut back to the last complete
  record (its bytes kept in a backup file beside the journal, with a warning naming the lines dropped); a
  broken record *followed by* complete ones, or a record whose seal shows it was changed, deleted or
  duplicated (:mod:`wwtune.journal_records`), is refused with :class:`JournalCorrupt`, which points to
  ``wwtune repair-journal`` (:mod:`wwtune.journal_repair`).
* :class:`SafeJournalFileBackend`: an append that fails (``ENOSPC``, ``EFBIG``, ...) is rolled back to
  the file's previous end under the journal lock, and raises :class:`JournalWriteError` naming the file
  and what was not written, so the journal stays readable. Each record it writes is sealed.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock

from wwtune.deadline import signals_held
from wwtune.diskio import WriteError
from wwtune.exceptions import JournalCorrupt, JournalWriteError
from wwtune.journal_records import (
    CREATE_TRIAL,
    FIRST,
    body_crc,
    check_line,
    describe_line,
    last_line,
    seal_logs,
)

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


class _Scan:
    """What :func:`_scan` found: where the good records end, and what is wrong after them."""

    def __init__(self, good_end: int, prev: str) -> None:
        self.good_end = good_end  # byte offset after the last good record
        self.prev = prev  # body CRC of that record (what the next sealed record names)
        self.tail: list[str] = []  # descriptions of the broken lines after it, none followed by a good one
        self.refusal: str | None = None  # why the file is refused (a problem that a tail cut cannot mend)


def _line_number(path: Path, offset: int) -> int:
    with open(path, "rb") as f:
        return f.read(offset).count(b"\n") + 1


def _scan(path: Path, offset: int = 0, prev: str = FIRST) -> _Scan:
    """Check every line of the journal from byte ``offset`` (after a line of CRC ``prev``)."""
    scan = _Scan(offset, prev)
    number = _line_number(path, offset) - 1
    pending: list[tuple[int, str, str]] = []  # broken lines (number, description, why) after good_end
    with open(path, "rb") as f:
        f.seek(offset)
        pos, last = offset, prev
        for line in f:
            number += 1
            end = pos + len(line)
            if line.endswith(b"\n"):
                kind, detail = check_line(line, last)
            else:
                kind, detail = "torn", "cut short"
            if kind == "ok" and not pending:
                scan.good_end, scan.prev = end, body_crc(line)
            elif kind in ("ok", "changed", "out of place") and pending:
                first, desc, why = pending[0]
                scan.refusal = f"line {first} ({desc}): {why}, yet complete records follow it"
                return scan
            elif kind in ("changed", "out of place"):
                scan.refusal = f"line {number} ({describe_line(line)}): {kind}, {detail}"
                return scan
            else:
                why = "a record cut short" if kind == "torn" else f"not a journal record: {detail}"
                pending.append((number, describe_line(line), why))
            last = body_crc(line)
            pos = end
    scan.tail = [f"line {n}: {desc}, {why}" for n, desc, why in pending]
    return scan


def repair_journal(path: str | os.PathLike[str]) -> int:
    """Make the journal at ``path`` safe to append to; returns the number of bytes dropped (0: untouched).

    A torn tail (an incomplete last line, a last line that is JSON but no journal record, or several such
    lines with no complete record after them) is truncated to the end of the last complete record, under
    the journal's own lock so a worker's append in progress is never mistaken for a torn one. The dropped
    bytes are kept in ``<path>.torn.<time>`` first (nothing is cut if that backup cannot be written). A
    broken record followed by complete ones, or a sealed record that was changed or is out of place, raises
    :class:`JournalCorrupt`. A missing or empty file is left alone.

    Example:
        .. code-block:: python

            from pathlib import Path
            import tempfile
            from wwtune.journal import repair_journal

            path = Path(tempfile.mkdtemp()) / "journal.log"
            study = b'{"op_code":0,"worker_id":"w","study_name":"s","directions":[1]}\\n'
            path.write_bytes(study + b'{"op_co')            # a write cut short
            assert repair_journal(path) == 7                 # warns, keeps the 7 bytes in journal.log.torn.*
            assert path.read_bytes() == study
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return 0
    if size == 0:
        return 0
    scan = _scan(path)
    if scan.refusal:
        raise JournalCorrupt(_corrupt_message(path, scan.refusal))
    if scan.good_end == size:
        return 0
    # A torn tail, or another worker's append in progress: look again holding the journal's lock.
    lock = JournalFileSymlinkLock(str(path.absolute()))
    lock.acquire()
    try:
        scan = _scan(path, scan.good_end, scan.prev)
        if scan.refusal:  # records appended meanwhile after a broken one
            raise JournalCorrupt(_corrupt_message(path, scan.refusal))
        good_end = scan.good_end
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
        "The journal %s ended in a torn record (an interrupted or failed write) or one that is not a "
        "journal record (%s): dropped its last %d byte(s), back to the last complete record; the dropped "
        "bytes are kept in %s.",
        path,
        "; ".join(scan.tail) or "cut short",
        len(torn),
        backup,
    )
    return len(torn)


def _corrupt_message(path: Path, refusal: str) -> str:
    return (
        f"the journal {str(path)!r} has a broken record at {refusal}. Its study cannot be read as it was "
        f"written, and wwtune does not guess. `wwtune repair-journal {path}` keeps a copy of the file, "
        "keeps every consistent record (no trial renumbered) and lists each record it drops; or restore "
        "the journal from a backup."
    )


class SafeJournalFileBackend(JournalFileBackend):
    """Optuna's journal file backend whose failed appends leave the file as it was.

    An append writes the records, flushes and fsyncs under the journal lock; if any of that fails, the file
    is truncated back to its size before the append (still under the lock) and :class:`JournalWriteError`
    is raised. Reading is Optuna's own. With ``creator_attrs``, each record creating a trial to run now
    carries those system attrs itself (merged over a template's), in the same line.
    """

    def __init__(
        self,
        file_path: str,
        lock_obj: Any = None,
        creator_attrs: Callable[[], Mapping[str, Any]] | None = None,
    ) -> None:
        super().__init__(file_path, lock_obj)
        self._creator_attrs = creator_attrs

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        if self._creator_attrs is not None:
            logs = [self._stamped(log) for log in logs]
        try:
            self._lock.acquire()
        except OSError as exc:  # the lock is a symlink beside the journal: it needs an inode too
            raise JournalWriteError(
                f"could not take the lock of the journal {self._file_path!r} to write {len(logs)} study "
                f"record(s): {exc.strerror or exc}. The journal is unchanged; free some space and run again."
            ) from None
        try:
            fd = os.open(self._file_path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                start = os.fstat(fd).st_size
                # sealed under the lock: each record names the line before it (wwtune.journal_records)
                data = seal_logs(logs, body_crc(last_line(fd, start)) if start else FIRST)
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

    def _stamped(self, log: dict[str, Any]) -> dict[str, Any]:
        """``log`` with the creator's attrs when it creates a trial that runs now (not an enqueued one)."""
        if log.get("op_code") != CREATE_TRIAL or log.get("state", _RUNNING) != _RUNNING:
            return log
        assert self._creator_attrs is not None
        return {**log, "system_attrs": {**(log.get("system_attrs") or {}), **self._creator_attrs()}}


#: Optuna's TrialState.RUNNING as stored in a journal record
_RUNNING = 0


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
