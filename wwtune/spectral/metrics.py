"""Per-layer metrics of a pooled eigenvalue spectrum (spec §4) and the model summary."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from wwtune.spectral.powerlaw import PowerLawFit

__all__ = ["SUMMARY_COLUMNS", "layer_metrics", "summary", "warning_for"]

_EPS64 = float(np.finfo(np.float64).eps)
_ENTROPY_OFFSET = 1e-10
_WEAK_RANK_THRESHOLD = 1e-6
#: The means WeightWatcher's get_summary reports.
SUMMARY_COLUMNS = (
    "log_norm",
    "alpha",
    "alpha_weighted",
    "log_alpha_norm",
    "log_spectral_norm",
    "stable_rank",
)


def _log10(v: float) -> float:
    return math.log10(v) if v > 0 else -math.inf


def warning_for(fit: PowerLawFit) -> str:
    """'failed', 'over-trained' (α < 2), 'under-trained' (α > 6) or ''."""
    if fit.status != "success":
        return "failed"
    if fit.alpha < 2.0:
        return "over-trained"
    if fit.alpha > 6.0:
        return "under-trained"
    return ""


def layer_metrics(
    evals: np.ndarray,
    N: int,
    fit: PowerLawFit,  # noqa: N803
    eps: float = _EPS64,
    tolerance: float = _WEAK_RANK_THRESHOLD,
) -> dict[str, float | int]:
    """Norm, rank and entropy metrics of one layer's eigenvalues (all of them, zeros included).

    ``eps`` is the machine epsilon of the dtype the Gram eigenvalues were computed in. WeightWatcher
    counts the rank from SVD singular values (√λ > √λ_max·N·eps); eigenvalues of the Gram matrix carry
    an absolute error of about λ_max·N·eps, so the rank counts λ > λ_max·N·eps instead (the larger of
    the two thresholds). Both agree whenever the smallest singular value exceeds √(N·eps)·σ_max.
    """
    ev = np.asarray(evals, dtype=np.float64)
    num = ev.size
    lam_max = float(ev.max()) if num else 0.0
    norm = float(ev.sum())
    tol = lam_max * max(N * eps, (N * _EPS64) ** 2)
    rank = int(np.count_nonzero(ev > tol)) if lam_max > 0 else 0
    if rank > 1 and norm > 0:
        p = ev / norm + _ENTROPY_OFFSET
        entropy = float(-np.sum(p * np.log(p)) / math.log(rank))
    else:
        entropy = math.nan
    ok = fit.status == "success"
    alpha = fit.alpha if ok else math.nan
    log_lmax = _log10(lam_max)
    return {
        "norm": norm,
        "log_norm": _log10(norm),
        "lambda_max": lam_max,
        "spectral_norm": lam_max,
        "sv_max": math.sqrt(lam_max),
        "log_spectral_norm": log_lmax,
        "alpha_weighted": alpha * log_lmax if ok else math.nan,
        "log_alpha_norm": _log10(float(np.sum(ev[ev > 0] ** alpha))) if ok else math.nan,
        "stable_rank": norm / lam_max if lam_max > 0 else math.nan,
        "entropy": entropy,
        "matrix_rank": rank,
        "rank_loss": num - rank,
        "weak_rank_loss": int(np.count_nonzero(ev < tolerance)),
    }


def summary(df: pd.DataFrame) -> dict[str, float]:
    """Model-level means of WeightWatcher's get_summary columns over the layers whose fit succeeded.

    WeightWatcher averages over all rows, failed fits (alpha = -1) included; here failed layers are left
    out, so the two agree whenever every fit succeeds.

    Args:
        df: a DataFrame returned by :func:`wwtune.spectral.analyze`.

    Returns:
        ``{"log_norm": ..., "alpha": ..., "alpha_weighted": ..., "log_alpha_norm": ...,
        "log_spectral_norm": ..., "stable_rank": ...}`` (NaN when no layer succeeded).
    """
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"summary() needs the DataFrame returned by analyze() but got {type(df).__name__}.")
    missing = [c for c in (*SUMMARY_COLUMNS, "status") if c not in df.columns]
    if missing:
        raise ValueError(f"summary() needs analyze()'s columns; missing: {missing}.")
    ok = df[df["status"] == "success"]
    return {c: (float(ok[c].mean()) if len(ok) else math.nan) for c in SUMMARY_COLUMNS}
