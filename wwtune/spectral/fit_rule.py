"""The failed-fit rule: which layers' power-law fits failed, and their α values with failures as NaN.

A layer's power-law fit failed when its ``status`` is not ``"success"``, its α is not finite, or
α ≤ :data:`FAILED_FIT_MAX_ALPHA` (1.0): a power-law density ``p(λ) ∝ λ^(−α)`` cannot be normalised for
α ≤ 1, and the fitter reports a failure as α = −1, so such an α is never "a small α". The one rule the
score, the pruner, the advisor and the report read.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["FAILED_FIT_MAX_ALPHA", "alpha_values", "failed_fits", "finite_or_none", "fit_failed"]

#: α at or below this is a failed power-law fit (see the module docstring)
FAILED_FIT_MAX_ALPHA = 1.0


def finite_or_none(x: Any) -> float | None:
    """``float(x)`` when that is a finite number, else None."""
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def failed_fits(layers: pd.DataFrame) -> np.ndarray:
    """Boolean mask of the layers whose power-law fit failed (the rule of the module docstring)."""
    alpha = pd.to_numeric(layers["alpha"], errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(alpha) | (alpha <= FAILED_FIT_MAX_ALPHA)
    if "status" in layers.columns:
        status = layers["status"]
        bad |= (status.notna() & (status.astype(str) != "success")).to_numpy()
    return bad


def fit_failed(alpha: Any, status: Any = "success") -> bool:
    """:func:`failed_fits` for one layer (a result row's ``alpha`` and ``status``)."""
    a = finite_or_none(alpha)
    return (status is not None and str(status) != "success") or a is None or a <= FAILED_FIT_MAX_ALPHA


def alpha_values(layers: pd.DataFrame) -> np.ndarray:
    """α per row, NaN where the fit failed."""
    alpha = pd.to_numeric(layers["alpha"], errors="coerce").to_numpy(dtype=float)
    return np.where(failed_fits(layers), np.nan, alpha)
