"""Files of a study written whole or not at all, with one-line errors when the disk is full.

:func:`atomic_write` writes under a unique temporary name beside the target, fsyncs, then renames it into
place: several workers finishing together never interleave, and a reader never sees half a file. When
the write fails (disk full, read-only file system, quota) the temporary file is removed, the old file
stays, and :class:`WriteError` says in one line which file and what was not written.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from pathlib import Path

__all__ = ["WriteError", "atomic_write"]

#: flushes a written file to disk (a fault-injection test replaces it to fill the disk)
_fsync = os.fsync


class WriteError(OSError):
    """A study file could not be written; ``str()`` is one line naming the file and what was lost."""

    def __init__(self, message: str, errno: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if errno is not None:
            self.errno = errno

    def __str__(self) -> str:
        return self.message


def atomic_write(path: str | os.PathLike[str], data: str | bytes | Callable[[Path], None], what: str) -> Path:
    """Write ``data`` to ``path`` whole: text (UTF-8), bytes, or a function that writes the file it is given.

    ``what`` names the content for the error message (e.g. ``"the study report"``). Raises
    :class:`WriteError` (the temporary file removed, an existing ``path`` untouched) when it cannot.
    """
    out = Path(path)
    tmp = out.with_name(f".{out.name}.{socket.gethostname()}.{os.getpid()}.tmp{out.suffix}")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        if callable(data):
            data(tmp)
        else:
            with open(tmp, "wb") as f:
                f.write(data.encode("utf-8") if isinstance(data, str) else data)
                f.flush()
                _fsync(f.fileno())
        os.replace(tmp, out)
    except OSError as exc:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:  # pragma: no cover - unlinking frees space; it fails only on a vanished folder
            pass
        raise WriteError(
            f"could not write {what} to {str(out)!r}: {exc.strerror or exc}"
            + ("; the previous version is kept" if out.exists() else "")
            + ".",
            exc.errno,
        ) from None
    return out
