"""Names that moved: the old import path keeps working for one minor version, with a warning."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from types import ModuleType
from typing import Any

__all__ = ["moved", "section_of"]


def moved(old: str, name: str, home: ModuleType, new_name: str | None = None) -> Any:
    """``home.<new_name>`` (default ``name``), after a ``DeprecationWarning`` saying that ``old.<name>``
    moved there; for a module's ``__getattr__``."""
    new = f"{home.__name__}.{new_name or name}"
    warnings.warn(f"{old}.{name} moved to {new}; import it from there.", DeprecationWarning, stacklevel=3)
    return getattr(home, new_name or name)


def section_of(given: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    """The config section ``name`` a function takes: ``given`` itself, or (the 0.1 form, with a
    ``DeprecationWarning``) ``given[name]`` when ``given`` is a whole composed config holding that
    section (a section never holds a key named after its own section)."""
    inner = given.get(name) if isinstance(given, Mapping) else None
    if not isinstance(inner, Mapping):
        return given
    warnings.warn(
        f"pass the config's {name} section (config.{name}), not the whole config; the whole config is "
        "accepted in wwtune 0.1.x only.",
        DeprecationWarning,
        stacklevel=3,
    )
    return inner
