"""The error a full disk (or a read-only file system, a quota) gives when a study file is written.

:func:`wwtune.record.atomic_write` and the journal backend (:mod:`wwtune.journal`) raise
:class:`WriteError`: one line naming the file and what was not written, after cleaning up (no temporary
file left, the journal rolled back), so the CLI prints it without a traceback.
"""

from __future__ import annotations

import os

__all__ = ["WriteError"]

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
