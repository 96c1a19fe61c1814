"""Writing to disk: everything stored is JSON (:func:`json_safe`), files are written whole
(:func:`atomic_write`), and a full disk is one clear error (:class:`WriteError`).

:func:`atomic_write` and the journal backend (:mod:`wwtune.journal`) raise :class:`WriteError`: one line
naming the file and what was not written, after cleaning up (no temporary file left, the journal rolled
back), so the CLI prints it without a traceback.
"""

from __future__ import annotations

import math
import os
import socket
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from wwtune.exceptions import WriteError

__all__ = ["WriteError", "atomic_write", "atomic_write_text", "json_safe"]

#: flushes a written file to disk (a fault-injection test replaces it to fill the disk)
_fsync = os.fsync


def json_safe(value: Any) -> Any:
    """A JSON-serialisable copy: non-finite floats and pandas' NA become None, numpy/torch scalars Python
    numbers, mapping keys strings, tuples lists; anything else its ``str``."""
    if isinstance(value, (bool, int, str)) or value is None:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    try:
        return json_safe(value.item())  # numpy / torch scalars
    except (AttributeError, ValueError):
        pass
    try:
        if pd.isna(value):  # pandas' NA / NaT
            return None
    except (TypeError, ValueError):
        pass
    return str(value)


def atomic_write(
    path: str | os.PathLike[str],
    write: Callable[[Path], None],
    suffix: str = ".tmp",
    what: str = "a study file",
) -> Path:
    """Write a file whole under a unique temporary name beside ``path``, then rename it into place, so a
    reader (or another worker finishing at the same moment) never sees half a file. ``write(tmp)`` writes
    the content; ``suffix`` ends the temporary name (``numpy.savez`` wants ``.npz``). Parents are created.
    A failure (a full disk, ...) removes the temporary file, keeps the old one and raises
    :class:`WriteError`, one line naming the file and ``what`` was not written."""
    out = Path(path)
    tmp = out.with_name(f".{out.name}.{socket.gethostname()}.{os.getpid()}{suffix}")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        write(tmp)
        os.replace(tmp, out)
    except BaseException as exc:
        try:
            tmp.unlink(missing_ok=True)  # a failed write leaves the old file and no half-written one beside
        except OSError:  # pragma: no cover - unlinking frees space; it fails only on a vanished folder
            pass
        if not isinstance(exc, OSError) or isinstance(exc, WriteError):
            raise
        raise WriteError(
            f"could not write {what} to {str(out)!r}: {exc.strerror or exc}"
            + ("; the previous version is kept" if out.exists() else "")
            + ".",
            exc.errno,
        ) from None
    return out


def atomic_write_text(path: str | os.PathLike[str], text: str, what: str = "a study file") -> Path:
    """:func:`atomic_write` of a UTF-8 text, flushed to disk before the rename."""

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            f.write(text.encode("utf-8"))
            f.flush()
            _fsync(f.fileno())

    return atomic_write(path, write, what=what)
