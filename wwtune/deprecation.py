"""Names that moved: the old import path keeps working for one minor version, with a warning."""

from __future__ import annotations

import warnings
from types import ModuleType
from typing import Any

__all__ = ["moved"]


def moved(old: str, name: str, home: ModuleType, new_name: str | None = None) -> Any:
    """``home.<new_name>`` (default ``name``), after a ``DeprecationWarning`` saying that ``old.<name>``
    moved there; for a module's ``__getattr__``."""
    new = f"{home.__name__}.{new_name or name}"
    warnings.warn(f"{old}.{name} moved to {new}; import it from there.", DeprecationWarning, stacklevel=3)
    return getattr(home, new_name or name)
