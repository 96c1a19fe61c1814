"""The power-law fit of an eigenvalue spectrum (continuous Clauset-Shalizi-Newman, WeightWatcher 0.7.7).

For sorted eigenvalues x[0..n-1] (only λ > 1e-5 are fitted) every index i = 0..n-2 is a candidate xmin
with tail size k = n - i and maximum-likelihood exponent α_i = 1 + k / Σ_{j≥i} ln(x_j / x_i). Its
Kolmogorov-Smirnov distance is D_i = max_{j≥i} |1 - (x_j/x_i)^(1-α_i) - (j-i)/k|; the fit is the FIRST
candidate of smallest D. Done naively this is O(n²); here it stays exact but cheap:

* every α_i comes from one suffix sum (O(n));
* the maximum over a strided subset of j is a lower bound of D_i; candidates whose bound already exceeds
  the exact D of some candidate cannot win, so the strides shrink level by level over the survivors only,
  and the last level (stride 1) is the exact D of the few candidates left.

Spectra with fewer than 20 eigenvalues follow WeightWatcher's small-sample rule (k ≥ 8, α_i = 1 +
(k-1)/Σ ln(x_j/x_i), minimise D - 0.868/√k; fewer than 8 eigenvalues: the whole spectrum is the tail).
``fit_hill`` is the Hill estimator with xmin = the median.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "FIT_THRESHOLD",
    "SMALL_SPECTRUM",
    "PowerLawFit",
    "fit_hill",
    "fit_power_law",
    "fit_power_law_xmin_range",
    "ks_distance",
]

#: Eigenvalues at or below this are not fitted (WeightWatcher's ``evals_thresh``).
FIT_THRESHOLD = 1e-5
#: Below this many fitted eigenvalues the small-sample rule applies.
SMALL_SPECTRUM = 20
_SMALL_MIN_TAIL = 8
_SMALL_PENALTY = 0.868
# Bounds and exact values come from the same elementwise formula; the slack only absorbs a possible
# last-bit difference between vectorised code paths, so pruning can never drop the true minimum.
_REL_SLACK = 1e-12
_CHUNK_ELEMENTS = 1 << 20
_LEVEL0_POINTS = 32
_EXACT_PER_LEVEL = 4


@dataclass(frozen=True)
class PowerLawFit:
    """Result of one power-law fit; ``status`` is "success" or "failed" (then alpha = -1)."""

    alpha: float
    xmin: float
    xmax: float
    D: float
    sigma: float
    num_pl_spikes: int
    status: str
    reason: str = ""


def _failed(reason: str, xmax: float = float("nan")) -> PowerLawFit:
    nan = float("nan")
    return PowerLawFit(-1.0, nan, xmax, nan, nan, 0, "failed", reason)


def _too_few(x: np.ndarray) -> PowerLawFit:
    n = x.size
    return _failed(
        f"only {n} eigenvalue(s) above {FIT_THRESHOLD:g}: the matrix is (nearly) zero or rank ≤ 1",
        float(x[-1]) if n else float("nan"),
    )


def _prepare(evals: np.ndarray) -> np.ndarray:
    x = np.asarray(evals, dtype=np.float64).ravel()
    if x.size and not np.all(np.isfinite(x)):
        raise ValueError("eigenvalues must be finite but got NaN or Inf values.")
    return np.sort(x[x > FIT_THRESHOLD])


def _ks_block(L: np.ndarray, a: np.ndarray, cand: np.ndarray, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper bounds of D for each candidate from the points j = i, i+stride, ..., n-1.

    The lower bound is the largest |F - e| at those points (exact when stride = 1). On [j1, j2] both
    the model CDF F and the empirical CDF e increase with j, so |F - e| ≤ max(F(j2) - e(j1),
    e(j2) - F(j1)) there: the largest such value over the intervals is an upper bound.
    """
    n = L.size
    lower = np.empty(cand.size)
    upper = np.empty(cand.size)
    span = n - 1 - int(cand.min()) if cand.size else 0
    steps = -(-span // stride) + 1
    rows = max(1, _CHUNK_ELEMENTS // steps)
    offs = np.arange(steps) * stride
    for s in range(0, cand.size, rows):
        c = cand[s : s + rows]
        j = c[:, None] + offs[None, :]
        np.minimum(j, n - 1, out=j)  # repeated last points change no maximum
        F = 1.0 - np.exp((1.0 - a[c])[:, None] * (L[j] - L[c][:, None]))
        e = (j - c[:, None]) / (n - c).astype(np.float64)[:, None]
        lower[s : s + rows] = np.abs(F - e).max(axis=1)
        if stride > 1:
            upper[s : s + rows] = np.maximum(F[:, 1:] - e[:, :-1], e[:, 1:] - F[:, :-1]).max(axis=1)
        else:
            upper[s : s + rows] = lower[s : s + rows]
    return lower, upper


def _ks_exact_one(L: np.ndarray, a: float, i: int) -> float:
    n = L.size
    j = np.arange(i, n)
    dev = np.abs(1.0 - np.exp((1.0 - a) * (L[i:] - L[i])) - (j - i) / float(n - i))
    return float(dev.max())


def ks_distance(x: np.ndarray, alpha: np.ndarray, cand: np.ndarray) -> np.ndarray:
    """Exact D for candidate indices ``cand`` of sorted positive ``x`` with exponents ``alpha[cand]``.

    Candidates with α ≤ 1 (or non-finite α) get D = 1.
    """
    x = np.asarray(x, dtype=np.float64)
    cand = np.asarray(cand, dtype=np.int64)
    L = np.log(x)
    a = np.asarray(alpha, dtype=np.float64)
    out = np.ones(cand.size)
    ok = np.isfinite(a[cand]) & (a[cand] > 1.0)
    if ok.any():
        out[ok] = _ks_block(L, a, cand[ok], 1)[0]
    return out


def _mle_alphas(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``log x`` and the continuous MLE exponent α = 1 + k / Σ_{j≥i} log(x_j / x_i) with every point x_i
    of sorted positive ``x`` as xmin (k = n − i points in the tail), all at once; α is inf or nan where
    the tail is constant."""
    L = np.log(x)
    k = x.size - np.arange(x.size, dtype=np.float64)
    tail = np.cumsum(L[::-1])[::-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        return L, 1.0 + k / (tail - k * L)


def _best_candidate(L: np.ndarray, a: np.ndarray) -> tuple[int, float]:
    """First index of minimal exact D among candidates 0..n-2 (α ≤ 1 ⇒ D = 1), without the O(n²) sweep."""
    n = L.size
    cand = np.arange(n - 1)
    good = np.isfinite(a[cand]) & (a[cand] > 1.0)
    exact: dict[int, float] = {}
    if not good.any():
        return 0, 1.0
    alive = cand[good]
    stride = max(1, n // _LEVEL0_POINTS)
    best = math.inf
    while True:
        if stride == 1:
            d = _ks_block(L, a, alive, 1)[0]
            exact.update(zip(alive.tolist(), d.tolist(), strict=True))
            break
        bound, upper = _ks_block(L, a, alive, stride)
        best = min(best, float(upper.min()))
        # Exact D of the few most promising candidates tightens that upper bound of the minimum.
        for pos in np.argsort(upper, kind="stable")[:_EXACT_PER_LEVEL]:
            top = int(alive[pos])
            if top not in exact:
                exact[top] = _ks_exact_one(L, a[top], top)
            best = min(best, exact[top])
        alive = alive[bound <= best * (1.0 + _REL_SLACK)]
        stride = max(1, stride // 8)
    # Candidates with α ≤ 1 have D = 1; they can only win when nothing is below 1.
    d_min = min(exact.values())
    winners = [i for i, d in exact.items() if d == d_min]
    if d_min >= 1.0:
        bad = cand[~good]
        if bad.size:
            winners.append(int(bad[0]))
        d_min = 1.0
    return min(winners), d_min


def _fit_small(x: np.ndarray) -> PowerLawFit:
    n = x.size
    xmax = float(x[-1])
    L = np.log(x)
    best_i, best_score = -1, math.inf
    best_a = best_d = 0.0
    for i in range(0, n - _SMALL_MIN_TAIL + 1):
        k = n - i
        s = float(np.sum(L[i:] - L[i]))
        if s <= 0.0:
            continue
        a = 1.0 + (k - 1) / s
        if a <= 1.0:
            continue
        d = _ks_exact_one(L, a, i)
        score = d - _SMALL_PENALTY / math.sqrt(k)
        if score < best_score:
            best_i, best_score, best_a, best_d = i, score, a, d
    if best_i < 0 and n < _SMALL_MIN_TAIL:
        # WeightWatcher's fallback when no tail of 8 exists: the whole spectrum is the tail
        s = float(np.sum(L - L[0]))
        a = 1.0 + (n - 1) / s if s > 1e-12 else 0.0
        if a > 1.0:
            best_i, best_a, best_d = 0, a, _ks_exact_one(L, a, 0)
    if best_i < 0:
        return _failed(
            f"degenerate fit: no tail of at least {_SMALL_MIN_TAIL} eigenvalues "
            f"gives alpha > 1 ({n} eigenvalues above {FIT_THRESHOLD:g})",
            xmax,
        )
    k = n - best_i
    return PowerLawFit(best_a, float(x[best_i]), xmax, best_d, (best_a - 1.0) / math.sqrt(k), k, "success")


def fit_power_law(evals: np.ndarray) -> PowerLawFit:
    """Fit a power law to the tail of an eigenvalue spectrum (exactly WeightWatcher 0.7.7's choice).

    Args:
        evals: eigenvalues (any order); only values above 1e-5 are fitted.

    Returns:
        A :class:`PowerLawFit`; status "failed" (alpha = -1) when fewer than 2 eigenvalues exceed 1e-5
        or no candidate tail gives α > 1.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> x = (1 - rng.random(5000)) ** (-1 / 2.0)   # Pareto, density exponent 3
        >>> round(fit_power_law(x).alpha, 1)
        3.0
    """
    x = _prepare(evals)
    n = x.size
    if n < 2:
        return _too_few(x)
    if n < SMALL_SPECTRUM:
        return _fit_small(x)
    L, a = _mle_alphas(x)
    a[-1] = np.nan  # the last point is never a candidate
    i, d = _best_candidate(L, a)
    ai = float(a[i])
    if not (np.isfinite(ai) and ai > 1.0):
        return _failed("no candidate tail gives alpha > 1 (all fitted eigenvalues equal?)", float(x[-1]))
    kk = n - i
    return PowerLawFit(ai, float(x[i]), float(x[-1]), d, (ai - 1.0) / math.sqrt(kk), kk, "success")


def fit_hill(evals: np.ndarray) -> PowerLawFit:
    """Hill estimator with xmin = the median eigenvalue x[n // 2] (TempBalance/AlphaDecay's cheap α).

    α = 1 + k / Σ ln(x_j / xmin) over the k eigenvalues ≥ xmin; D is the KS distance of that tail.
    """
    x = _prepare(evals)
    n = x.size
    if n < 2:
        return _too_few(x)
    i = n // 2  # the median for odd n, the upper middle value for even n (an actual eigenvalue)
    xmin = float(x[i])
    k = n - i
    L = np.log(x)
    s = float(np.sum(L[i:] - L[i]))
    if k < 2 or s <= 0.0:
        return _failed("Hill estimator undefined: the upper half of the spectrum is constant", float(x[-1]))
    a = 1.0 + k / s
    d = _ks_exact_one(L, a, i)
    return PowerLawFit(a, xmin, float(x[-1]), d, (a - 1.0) / math.sqrt(k), k, "success")


def fit_power_law_xmin_range(evals: np.ndarray, low: float, high: float) -> PowerLawFit:
    """The power-law fit with xmin searched only among the eigenvalues in [``low``, ``high``].

    Same estimator as :func:`fit_power_law` (α_i = 1 + k / Σ ln(x_j / x_i), the first candidate of smallest
    exact D), restricted to a range of xmin: WeightWatcher's ``fix_fingers='xmin_peak'``.

    Example:
        >>> import numpy as np
        >>> x = (1 - np.random.default_rng(0).random(4000)) ** (-1 / 2.0)   # Pareto, density exponent 3
        >>> round(fit_power_law_xmin_range(x, 1.0, 1.5).alpha, 1)
        3.0
    """
    x = _prepare(evals)
    n = x.size
    if n < 2:
        return _too_few(x)
    L, a = _mle_alphas(x)
    cand = np.flatnonzero((x[:-1] >= low) & (x[:-1] <= high))
    cand = cand[np.isfinite(a[cand]) & (a[cand] > 1.0)]
    if not cand.size:
        return _failed(f"no candidate xmin in [{low:g}, {high:g}] gives alpha > 1", float(x[-1]))
    d = _ks_block(L, a, cand, 1)[0]
    i = int(cand[int(np.argmin(d))])
    ai, kk = float(a[i]), n - i
    return PowerLawFit(
        ai, float(x[i]), float(x[-1]), float(d.min()), (ai - 1.0) / math.sqrt(kk), kk, "success"
    )
