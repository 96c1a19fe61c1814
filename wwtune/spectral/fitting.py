"""One layer's tail fit with WeightWatcher's options: ``fit='PL'/'TPL'/'E_TPL'``, ``fix_fingers``, ``xmax``.

* ``xmax=k`` (an integer): the k largest eigenvalues are left out before the fit (more than half of them:
  the fit fails), as WeightWatcher 0.7.7 does.
* ``fix_fingers='clip_xmax'``: the first fit gives ``raw_alpha``; then 2, 3, … up to ``max_fingers - 1`` top
  eigenvalues are clipped and the tail refitted; the first clip whose α falls more than ``finger_thresh``
  below the first α is kept (``num_fingers`` = clipped - 1, WeightWatcher's count), and the search stops
  when α reaches 2. No such clip: the first fit and ``num_fingers = 0``.
* ``fix_fingers='xmin_peak'``: xmin is searched only up to ``xmin_max`` (default 1.5 × the peak of a
  100-bin histogram of log10 λ); the lower end is log10(0.95 × peak), the range WeightWatcher 0.7.7 passes.
* ``fit='truncated_power_law'`` (WeightWatcher's ``'TPL'``): xmin from the power-law fit, then α and Λ of
  the exponentially truncated power law (:mod:`wwtune.spectral.tpl`) on that tail; ``alpha`` is the TPL
  α and ``Lambda`` is Λ (``D`` and ``sigma`` stay the power law's, as in WeightWatcher). ``'E_TPL'`` is the
  TPL with ``fix_fingers='xmin_peak'``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from wwtune.spectral.powerlaw import (
    FIT_THRESHOLD,
    PowerLawFit,
    fit_hill,
    fit_power_law,
    fit_power_law_xmin_range,
)

__all__ = ["FITS", "MIN_FINGER_ALPHA", "fit_columns", "fit_layer", "xmin_peak_range"]

#: wwtune's fit names (WeightWatcher's ``'PL'``, ``'TPL'``, ``'E_TPL'`` are translated in ``ww_args``).
FITS = ("power_law", "hill", "truncated_power_law")
#: ``clip_xmax`` stops clipping when α reaches this (WeightWatcher's ``min_alpha``).
MIN_FINGER_ALPHA = 2.0
_HIST_BINS = 100


def fit_columns(fit: str, fix_fingers: str | None) -> list[str]:
    """The extra columns a fit adds: ``Lambda`` (TPL), ``num_fingers`` and ``raw_alpha`` (clip_xmax)."""
    return (["Lambda"] if fit == "truncated_power_law" else []) + (
        ["num_fingers", "raw_alpha"] if fix_fingers == "clip_xmax" else []
    )


def xmin_peak_range(evals: np.ndarray, xmin_max: float | None) -> tuple[float, float]:
    """The xmin range of ``fix_fingers='xmin_peak'`` (see the module docstring)."""
    nz = evals[evals > FIT_THRESHOLD]
    counts, edges = np.histogram(np.log10(nz), bins=_HIST_BINS)
    peak = float(10 ** edges[int(np.argmax(counts))])
    return math.log10(0.95 * peak), 1.5 * peak if xmin_max is None else float(xmin_max)


def _base_fit(evals: np.ndarray, fit: str, fix_fingers: str | None, xmin_max: float | None) -> PowerLawFit:
    if fix_fingers == "xmin_peak":
        nz = evals[evals > FIT_THRESHOLD]
        if nz.size < 2:
            return fit_power_law(evals)  # the plain fit says why it fails
        return fit_power_law_xmin_range(evals, *xmin_peak_range(evals, xmin_max))
    return fit_hill(evals) if fit == "hill" else fit_power_law(evals)


def _clip_fingers(
    evals: np.ndarray, fit: str, max_fingers: int, finger_thresh: float
) -> tuple[PowerLawFit, int, float]:
    first = _base_fit(evals, fit, None, None)
    if first.status != "success":
        return first, 0, first.alpha
    for idx in range(2, max_fingers):
        if np.count_nonzero(evals[:-idx] > FIT_THRESHOLD) < 2:  # WeightWatcher's fit raises: the layer fails
            reason = f"fix_fingers='clip_xmax' clipped {idx} of {evals.size} eigenvalues: too few left to fit"
            return PowerLawFit(-1.0, math.nan, math.nan, math.nan, math.nan, 0, "failed", reason), 0, -1.0
        clipped = _base_fit(evals[:-idx], fit, None, None)
        if clipped.status != "success":
            return clipped, 0, -1.0
        if clipped.alpha + finger_thresh < first.alpha:
            spikes = int(np.count_nonzero(evals >= clipped.xmin))
            return dataclasses.replace(clipped, num_pl_spikes=spikes), idx - 1, first.alpha
        if clipped.alpha <= MIN_FINGER_ALPHA:
            break
    return first, 0, first.alpha


def fit_layer(
    evals: np.ndarray,
    fit: str = "power_law",
    *,
    fix_fingers: str | None = None,
    xmin_max: float | None = None,
    max_fingers: int = 10,
    finger_thresh: float = 1.0,
    xmax: int | None = None,
) -> tuple[PowerLawFit, dict[str, Any]]:
    """The fit of one layer's eigenvalues (ascending) and the extra columns of :func:`fit_columns`."""
    x = np.sort(np.asarray(evals, dtype=np.float64))
    extra: dict[str, Any] = {c: math.nan for c in fit_columns(fit, fix_fingers)}
    if xmax is not None:
        if xmax > x.size / 2:
            reason = f"xmax={xmax} would clip more than half of the {x.size} eigenvalues"
            return PowerLawFit(-1.0, math.nan, math.nan, math.nan, math.nan, 0, "failed", reason), extra
        x = x[: x.size - xmax]
    if fix_fingers == "clip_xmax":
        result, fingers, raw = _clip_fingers(x, fit, max_fingers, finger_thresh)
        extra.update(num_fingers=fingers, raw_alpha=raw)
    else:
        result = _base_fit(x, fit, fix_fingers, xmin_max)
    if fit == "truncated_power_law" and result.status == "success":
        # lazy: scipy.integrate/optimize would add 0.34 s to `import wwtune` (python -X importtime)
        from wwtune.spectral.tpl import fit_truncated_power_law

        tpl = fit_truncated_power_law(x, result.xmin)
        if tpl.status != "success":
            reason = f"truncated power law: {tpl.status}"
            return dataclasses.replace(result, alpha=-1.0, status="failed", reason=reason), extra
        extra["Lambda"] = tpl.lambda_
        result = dataclasses.replace(result, alpha=tpl.alpha)
    return result, extra
