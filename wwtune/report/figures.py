"""What every wwtune figure shares: the colours, a figure on its own canvas, saving and embedding it, and
reading a layer's row. Figures are built with the object API on an Agg canvas: nothing touches
``matplotlib.pyplot``, so no global figure state leaks and no display is needed.

Colours carry one meaning throughout: green = the target band, blue = a layer without warning,
red = over-trained (α < 2), orange = under-trained (α > 6), grey = failed fit; hollow markers = layers
with too few eigenvalues to count in the score (ineligible).
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from wwtune.spectral.fit_rule import finite_or_none

__all__ = [
    "COLORS",
    "FIT_FLOOR",
    "UNDER_TRAINED_ALPHA",
    "as_evals",
    "figure_data_uri",
    "fmt_value",
    "new_figure",
    "require_columns",
    "row_get",
    "save_figure",
]

COLORS = {
    "band": "#2ca02c",
    "ok": "#1f77b4",
    "over-trained": "#d62728",
    "under-trained": "#ff7f0e",
    "failed": "#7f7f7f",
    "fit": "#d62728",
    "xmin": "#9467bd",
    "mp": "#ff7f0e",
    "pruned": "#ff7f0e",
}
#: Eigenvalues at or below this are left out of log-scale plots (the fit ignores them too).
FIT_FLOOR = 1e-5
#: α above which a layer is called under-trained (spectral spec §3).
UNDER_TRAINED_ALPHA = 6.0
_FORMATS = ("png", "svg")


# ---------------------------------------------------------------------------------------------- helpers
def new_figure(width: float = 6.4, height: float = 4.2) -> Figure:
    """A constrained-layout figure on its own Agg canvas (no pyplot state)."""
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def figure_data_uri(fig: Figure, fmt: str = "png", dpi: int = 100) -> str:
    """The figure as a ``data:`` URI (base64 PNG or SVG), for embedding in a self-contained page."""
    if fmt not in _FORMATS:
        raise ValueError(f"fmt must be one of {list(_FORMATS)} but got {fmt!r}.")
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=dpi)
    mime = "image/png" if fmt == "png" else "image/svg+xml"
    return f"data:{mime};base64,{base64.b64encode(buf.getvalue()).decode('ascii')}"


def save_figure(
    fig: Figure, path: str | Path, formats: Sequence[str] = ("png", "svg"), dpi: int = 120
) -> list[Path]:
    """Write ``fig`` as ``path`` with each suffix in ``formats`` (``"png"``, ``"svg"``); returns the paths.

    ``path`` may carry a suffix or not: ``save_figure(fig, "plots/esd_fc1")`` writes ``esd_fc1.png`` and
    ``esd_fc1.svg``. Parent folders are created.
    """
    formats = [formats] if isinstance(formats, str) else list(formats)
    bad = [f for f in formats if f not in _FORMATS]
    if bad or not formats:
        raise ValueError(f"formats must be a non-empty subset of {list(_FORMATS)} but got {formats!r}.")
    path = Path(path)
    stem = path.with_suffix("") if path.suffix.lower().lstrip(".") in _FORMATS else path
    stem.parent.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in formats:
        out = stem.parent / f"{stem.name}.{fmt}"
        fig.savefig(out, format=fmt, dpi=dpi)
        written.append(out)
    return written


def as_evals(evals: Any) -> np.ndarray:
    """``evals`` as a sorted 1-D float array of its finite values (TypeError / ValueError otherwise)."""
    try:
        x = np.asarray(evals, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(f"evals must be a 1-D array of eigenvalues but got {type(evals).__name__}.") from None
    if x.ndim != 1:
        raise ValueError(f"evals must be 1-D but got shape {x.shape}.")
    if not np.isfinite(x).any():
        raise ValueError(f"evals must contain finite eigenvalues but got {x.size} value(s), none finite.")
    return np.sort(x[np.isfinite(x)])


def row_get(row: Any, key: str, default: Any = None) -> Any:
    """``row[key]`` of a layer's result row (a mapping or a pandas Series), or ``default``."""
    if isinstance(row, pd.Series):
        return row.get(key, default)
    if isinstance(row, Mapping):
        return row.get(key, default)
    raise TypeError(
        f"row must be a mapping or a pandas Series of layer results but got {type(row).__name__}."
    )


def require_columns(row: Any, keys: Iterable[str]) -> None:
    """ValueError naming the columns of ``keys`` the row lacks."""
    missing = [k for k in keys if row_get(row, k) is None]
    if missing:
        raise ValueError(f"row is missing required column(s) {missing} (an analyze() result row has them).")


def fmt_value(x: Any, digits: int = 3) -> str:
    """A number in ``digits`` significant digits, "–" when missing or not finite."""
    v = finite_or_none(x)
    return "–" if v is None else f"{v:.{digits}g}"
