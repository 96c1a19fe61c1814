"""The exponentially truncated power law (E-TPL) fit of an ESD tail.

Model, for eigenvalues λ ≥ ``xmin`` (the tail the power-law fit chose)::

    p(λ) = λ^(−α) · exp(−Λ·λ) / Z(α, Λ),      Z(α, Λ) = ∫_xmin^∞ x^(−α) exp(−Λ·x) dx

Λ ≥ 0 is the truncation rate (Λ = 0: the plain power law; α = 0: a pure exponential tail). Both are fitted by
maximum likelihood. In the scaled variable u = λ / xmin ≥ 1 with μ = Λ·xmin::

    ℓ(α, μ) = −α Σ log u − μ Σ u − n log Z₁(α, μ),   Z₁ = ∫_1^∞ u^(−α) e^(−μu) du
            = e^(−μ) ∫_0^∞ (1 + v)^(−α) e^(−μv) dv          (evaluated by quadrature)

The literature (Yang et al., KDD 2023; see ../shared/docs/evidence.md) reports that for transformer layers
whose plain power-law α exceeds 4 the E-TPL parameters track model quality better than α. Measured on
wwtune's own transformer runs (``benchmarks/bench_etpl.py``, ``benchmarks/results/etpl.md``), it did not pick
better models than the default score, so no score uses it.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import integrate, optimize

__all__ = ["TruncatedPowerLawFit", "fit_truncated_power_law"]

#: search bounds of the fit: α (the power) and μ = Λ·xmin (the truncation in units of 1 / xmin)
ALPHA_BOUNDS = (0.0, 20.0)
MU_BOUNDS = (1e-9, 1e4)


@dataclass(frozen=True)
class TruncatedPowerLawFit:
    """α and Λ (``lambda_``, in 1 / eigenvalue units) of the tail above ``xmin``; ``n`` tail eigenvalues;
    ``status``: ``"success"`` or why the fit failed (then α and Λ are NaN)."""

    alpha: float
    lambda_: float
    xmin: float
    n: int
    log_likelihood: float
    status: str


def _log_z(alpha: float, mu: float) -> float:
    """log Z₁(α, μ) = −μ + log ∫_0^∞ (1 + v)^(−α) e^(−μv) dv; +inf where the quadrature does not converge
    (α ≤ 1 with almost no truncation: a density that can hardly be normalised; the fit treats it as
    impossible)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", integrate.IntegrationWarning)
        try:
            value, _ = integrate.quad(
                lambda v: math.exp(-alpha * math.log1p(v) - mu * v), 0.0, math.inf, limit=200
            )
        except integrate.IntegrationWarning:
            return math.inf
    return -mu + math.log(value) if value > 0 else math.inf


def fit_truncated_power_law(evals: np.ndarray, xmin: float, min_tail: int = 5) -> TruncatedPowerLawFit:
    """Fit the E-TPL to the eigenvalues ``evals`` ≥ ``xmin`` (> 0); fewer than ``min_tail`` of them is a
    failed fit. Raises ``ValueError`` for a non-positive or non-finite ``xmin``."""
    if not (math.isfinite(xmin) and xmin > 0):
        raise ValueError(f"xmin must be a positive finite eigenvalue but got {xmin!r}.")
    x = np.asarray(evals, dtype=np.float64)
    u = x[np.isfinite(x) & (x >= xmin)] / xmin
    n = int(u.size)
    if n < min_tail:
        return TruncatedPowerLawFit(math.nan, math.nan, xmin, n, math.nan, f"too few tail eigenvalues ({n})")
    s_log, s_u = float(np.log(u).sum()), float(u.sum())

    def nll(p: np.ndarray) -> float:
        alpha, mu = float(p[0]), math.exp(float(p[1]))
        return alpha * s_log + mu * s_u + n * _log_z(alpha, mu)

    lo, hi = math.log(MU_BOUNDS[0]), math.log(MU_BOUNDS[1])

    def bounded(p: np.ndarray) -> float:
        if not (ALPHA_BOUNDS[0] <= p[0] <= ALPHA_BOUNDS[1] and lo <= p[1] <= hi):
            return math.inf
        value = nll(p)
        return value if math.isfinite(value) else math.inf

    # Nelder-Mead (the quadrature makes finite-difference gradients noisy) from two starts: the plain power
    # law's Hill estimate with almost no truncation, and a pure exponential at the tail's mean
    hill = min(max(1.0 + n / max(s_log, 1e-12), 1.05), ALPHA_BOUNDS[1] - 1)
    starts = [np.array([hill, math.log(1e-3)]), np.array([0.5, math.log(1.0 / max(s_u / n - 1.0, 1e-3))])]
    res = min(
        (
            optimize.minimize(
                bounded,
                np.clip(x0, [0.0, lo], [ALPHA_BOUNDS[1], hi]),
                method="Nelder-Mead",
                options={"xatol": 1e-4, "fatol": 1e-6, "maxiter": 2000},
            )
            for x0 in starts
        ),
        key=lambda r: r.fun,
    )
    if not np.all(np.isfinite(res.x)) or not math.isfinite(res.fun):
        return TruncatedPowerLawFit(math.nan, math.nan, xmin, n, math.nan, "the likelihood did not converge")
    alpha, mu = float(res.x[0]), math.exp(float(res.x[1]))
    return TruncatedPowerLawFit(alpha, mu / xmin, xmin, n, -float(res.fun), "success")
