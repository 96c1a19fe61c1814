"""Distances between two eigenvalue samples (two versions of a layer's ESD), used by ``wwtune.compare``."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["esd_distance", "ks_distance"]


def ks_distance(a: Any, b: Any) -> float:
    """Two-sample Kolmogorov-Smirnov distance sup_x |F_a(x) − F_b(x)| between two samples (0 … 1).

    Example:
        >>> ks_distance([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
        0.0
        >>> ks_distance([1.0, 2.0], [5.0, 6.0])
        1.0
    """
    x, y = np.sort(np.asarray(a, dtype=np.float64)), np.sort(np.asarray(b, dtype=np.float64))
    if x.size == 0 or y.size == 0:
        return math.nan
    grid = np.concatenate([x, y])
    fx = np.searchsorted(x, grid, side="right") / x.size
    fy = np.searchsorted(y, grid, side="right") / y.size
    return float(np.max(np.abs(fx - fy)))


def esd_distance(a: Any, b: Any, floor: float = 0.0) -> float:
    """Mean |log10 λ_a − log10 λ_b| over matched quantiles (1-Wasserstein distance on log10 λ), decades.

    Values below ``floor`` (and zeros) count as ``floor``; with ``floor=0`` the floor is 1e-12 × the largest
    value. Samples of different sizes are compared on the quantile grid of the larger one (exact
    when one size divides the other).

    Example:
        >>> round(esd_distance([1.0, 10.0, 100.0], [10.0, 100.0, 1000.0]), 6)  # every λ ×10: one decade
        1.0
    """
    x, y = np.sort(np.asarray(a, dtype=np.float64)), np.sort(np.asarray(b, dtype=np.float64))
    if x.size == 0 or y.size == 0:
        return math.nan
    top = max(float(x[-1]), float(y[-1]))
    if not math.isfinite(top) or top <= 0:
        return math.nan
    floor = max(floor, top * 1e-12)
    lx, ly = np.log10(np.maximum(x, floor)), np.log10(np.maximum(y, floor))
    if lx.size != ly.size:
        n = max(lx.size, ly.size)
        q = (np.arange(n) + 0.5) / n
        lx = lx[np.minimum((q * lx.size).astype(int), lx.size - 1)]  # the empirical quantile functions
        ly = ly[np.minimum((q * ly.size).astype(int), ly.size - 1)]
    return float(np.mean(np.abs(lx - ly)))
