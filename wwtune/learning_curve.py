"""Learning curves and the data-vs-tuning verdict: pure statistics (numpy, scipy; no training, no Optuna).

* :func:`fit_power_law` fits the saturating power law ``L(n) = a + b·(n / n_ref)^(−c)`` (``b ≥ 0``,
  ``c`` in a bounded range) to losses measured at several data sizes, by least squares: for a fixed
  ``c`` the model is linear in ``(a, b)``, so ``c`` is profiled on a grid and refined by
  ``scipy.optimize.minimize_scalar`` (bounded, on the bracket around the best grid point).
* :func:`data_gain` bootstraps that fit with ``scipy.stats.bootstrap`` (each data size one sample, so the
  runs are resampled within each size) and returns the expected loss drop from ``n_from`` to ``n_to``
  (e.g. 1× → 2× the data) with a percentile interval.
* :func:`paired_gain` is the mean of paired differences (e.g. current vs better configuration on the same
  splits), bootstrapped over the pairs (``scipy.stats.bootstrap``), clipped at 0 from below when asked
  (one can always keep the
  current configuration).
* :func:`compare_gains` gives the verdict: "more data" when the data gain's interval lies above the
  tuning gain's, "more tuning" when below, "inconclusive" only when the two intervals overlap.

Example::

    import numpy as np
    from wwtune.learning_curve import Gain, compare_gains, data_gain, fit_power_law

    n = np.repeat([0.125, 0.25, 0.5, 0.75], 3)
    loss = 0.1 + 0.2 * n**-0.5 + np.random.default_rng(0).normal(0, 0.005, n.size)
    fit = fit_power_law(n, loss)            # a ≈ 0.1, b ≈ 0.2, c ≈ 0.5
    gain = data_gain(n, loss, 1.0, 2.0)     # ≈ 0.2 · (1 − 2^−0.5) ≈ 0.059, with an interval
    print(compare_gains(gain, Gain(0.01, 0.0, 0.02))["verdict"])  # "more data"
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import optimize, stats

__all__ = [
    "COMPARE_RULES",
    "C_RANGE",
    "Gain",
    "PowerLaw",
    "compare_gains",
    "data_gain",
    "fit_power_law",
    "paired_gain",
]

#: Default range of the exponent c (learning curves of real models sit well inside it).
C_RANGE: tuple[float, float] = (0.05, 3.0)


@dataclass(frozen=True)
class PowerLaw:
    """``L(n) = a + b·(n / n_ref)^(−c)``; ``rss`` is the residual sum of squares of the fit."""

    a: float
    b: float
    c: float
    n_ref: float
    rss: float
    n_points: int

    def __call__(self, n: float | np.ndarray) -> float | np.ndarray:
        return self.a + self.b * (np.asarray(n, dtype=float) / self.n_ref) ** (-self.c)

    def gain(self, n_from: float, n_to: float) -> float:
        """Predicted loss drop from ``n_from`` to ``n_to`` examples (positive when the loss falls)."""
        return float(self(n_from) - self(n_to))


@dataclass(frozen=True)
class Gain:
    """An expected loss drop (``estimate``) with its interval ``[low, high]`` at ``level``."""

    estimate: float
    low: float
    high: float
    level: float = 0.9
    n_boot: int = 0
    #: the bootstrap replicates (same order as the resamples), for :func:`compare_gains` by difference
    samples: tuple[float, ...] = field(default=(), repr=False, compare=False)

    def as_dict(self) -> dict[str, float]:
        return {
            "estimate": self.estimate,
            "low": self.low,
            "high": self.high,
            "level": self.level,
            "n_boot": self.n_boot,
        }


def _check_curve(n: Sequence[float], loss: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    na, la = np.asarray(n, dtype=float), np.asarray(loss, dtype=float)
    if na.shape != la.shape or na.ndim != 1:
        raise ValueError(f"n and loss must be 1-D of equal length but got shapes {na.shape} and {la.shape}.")
    if not (np.all(np.isfinite(na)) and np.all(np.isfinite(la))):
        raise ValueError("n and loss must be finite.")
    if np.any(na <= 0):
        raise ValueError(f"data sizes n must be positive but got {na[na <= 0][:3].tolist()}.")
    n_distinct = int(np.unique(na).size)
    if n_distinct < 3:
        raise ValueError(f"A power law needs at least 3 distinct data sizes but got {n_distinct}.")
    return na, la


def _fit_fixed_c(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """Least squares of ``y = a + b·x`` with ``b ≥ 0``; returns ``(a, b, rss)``."""
    xm, ym = float(x.mean()), float(y.mean())
    sxx = float(np.sum((x - xm) ** 2))
    b = float(np.sum((x - xm) * (y - ym)) / sxx) if sxx > 0 else 0.0
    b = max(b, 0.0)
    a = ym - b * xm
    return a, b, float(np.sum((y - a - b * x) ** 2))


def fit_power_law(
    n: Sequence[float],
    loss: Sequence[float],
    *,
    c_range: tuple[float, float] = C_RANGE,
    n_ref: float | None = None,
    grid: int = 32,
) -> PowerLaw:
    """Least-squares fit of ``loss ≈ a + b·(n / n_ref)^(−c)`` with ``b ≥ 0`` and ``c`` in ``c_range``.

    Args:
        n: data size of each run (any unit: examples or fractions); at least 3 distinct positive values.
        loss: the run's loss (lower is better).
        c_range: bounds of the exponent (default 0.05 … 3). A flat curve gives ``b = 0`` (then ``c`` is
            arbitrary and reported as the lower bound).
        n_ref: the size at which ``a + b`` is the predicted loss (default: the largest ``n``); only
            conditions the numbers.
        grid: points of the log-spaced profile grid over ``c`` before the bounded scalar refinement.

    Raises ``ValueError`` on non-finite input, non-positive sizes, fewer than 3 distinct sizes or a bad
    ``c_range``.
    """
    na, la = _check_curve(n, loss)
    lo, hi = (float(c_range[0]), float(c_range[1]))
    if not (0.0 < lo < hi and math.isfinite(hi)):
        raise ValueError(f"c_range must be (low, high) with 0 < low < high but got {c_range!r}.")
    ref = float(na.max() if n_ref is None else n_ref)
    if not (ref > 0 and math.isfinite(ref)):
        raise ValueError(f"n_ref must be positive and finite but got {n_ref!r}.")
    logu = np.log(na / ref)

    def rss(c: float) -> float:
        return _fit_fixed_c(np.exp(-c * logu), la)[2]

    cs = np.geomspace(lo, hi, int(grid))
    values = [rss(float(c)) for c in cs]
    i = int(np.argmin(values))
    left, right = float(cs[max(i - 1, 0)]), float(cs[min(i + 1, len(cs) - 1)])
    # refined on the bracket around the best grid point (Brent's bounded method)
    res = optimize.minimize_scalar(rss, bounds=(left, right), method="bounded", options={"xatol": 1e-9})
    best_c = min(((cs[i], values[i]), (res.x, res.fun)), key=lambda t: t[1])[0]
    a, b, r = _fit_fixed_c(np.exp(-float(best_c) * logu), la)
    c_out = float(best_c) if b > 0 else lo
    return PowerLaw(float(a), float(b), c_out, ref, float(r), int(na.size))


def _interval(samples: np.ndarray, level: float) -> tuple[float, float]:
    tail = (1.0 - level) / 2.0
    return float(np.quantile(samples, tail)), float(np.quantile(samples, 1.0 - tail))


def _check_level(level: float, n_boot: int) -> None:
    if not (0.0 < level < 1.0):
        raise ValueError(f"level must be in (0, 1) but got {level!r}.")
    if int(n_boot) < 10:
        raise ValueError(f"n_boot must be at least 10 but got {n_boot!r}.")


def data_gain(
    n: Sequence[float],
    loss: Sequence[float],
    n_from: float,
    n_to: float,
    *,
    level: float = 0.9,
    n_boot: int = 400,
    seed: int = 0,
    c_range: tuple[float, float] = C_RANGE,
) -> Gain:
    """Loss drop from ``n_from`` to ``n_to`` predicted by :func:`fit_power_law`, with a bootstrap interval.

    The bootstrap resamples the runs within each data size (with replacement; a size with one run keeps
    it) and refits; the interval is the ``level`` percentile interval of the refitted gains, the estimate
    the gain of the fit to all runs. Sizes are in the same unit as ``n`` (e.g. fractions of the data one
    has: ``n_from=1, n_to=2`` for "twice the data").
    """
    na, la = _check_curve(n, loss)
    _check_level(level, n_boot)
    if not (0 < n_from < n_to):
        raise ValueError(f"need 0 < n_from < n_to but got n_from={n_from!r}, n_to={n_to!r}.")
    estimate = fit_power_law(na, la, c_range=c_range).gain(n_from, n_to)
    sizes = np.unique(na)
    groups = [la[na == v] for v in sizes]
    # one bootstrap sample per data size (scipy resamples each on its own: within-size resampling); a
    # size with a single run cannot be resampled and is kept as it is
    many = [k for k, g in enumerate(groups) if g.size > 1]
    single = [k for k in range(len(groups)) if k not in many]
    fixed_n = np.concatenate([np.empty(0), *(np.full(groups[k].size, sizes[k]) for k in single)])
    fixed_l = np.concatenate([np.empty(0), *(groups[k] for k in single)])
    many_n = [np.full(groups[k].size, sizes[k]) for k in many]

    def gain(*resampled: np.ndarray) -> float:
        n_all = np.concatenate([fixed_n, *many_n])
        l_all = np.concatenate([fixed_l, *resampled])
        return fit_power_law(n_all, l_all, c_range=c_range).gain(n_from, n_to)

    if many:
        res = stats.bootstrap(
            [groups[k] for k in many],
            gain,
            n_resamples=int(n_boot),
            vectorized=False,
            paired=False,
            confidence_level=level,
            method="percentile",
            rng=np.random.default_rng(seed),
        )
        samples = np.asarray(res.bootstrap_distribution, dtype=float)
    else:  # one run per size: every resample is the data itself
        samples = np.full(int(n_boot), estimate)
    low, high = _interval(samples, level)
    return Gain(float(estimate), low, high, float(level), int(n_boot), tuple(samples.tolist()))


def paired_gain(
    current: Sequence[float],
    better: Sequence[float],
    *,
    level: float = 0.9,
    n_boot: int = 400,
    seed: int = 0,
    clip_at_zero: bool = True,
) -> Gain:
    """Mean loss drop ``current − better`` over paired runs (same split), with a bootstrap interval.

    With ``clip_at_zero`` (default) the estimate and both bounds are at least 0: switching is optional, so
    a "better" configuration that is worse gains nothing.
    """
    ca, ba = np.asarray(current, dtype=float), np.asarray(better, dtype=float)
    if ca.shape != ba.shape or ca.ndim != 1 or ca.size < 1:
        raise ValueError(
            f"current and better must be 1-D, non-empty and of equal length but got {ca.shape}, {ba.shape}."
        )
    if not (np.all(np.isfinite(ca)) and np.all(np.isfinite(ba))):
        raise ValueError("current and better must be finite.")
    _check_level(level, n_boot)
    d = ca - ba
    if d.size > 1:
        res = stats.bootstrap(
            (d,),
            np.mean,
            n_resamples=int(n_boot),
            vectorized=True,
            confidence_level=level,
            method="percentile",
            rng=np.random.default_rng(seed),
        )
        samples = np.asarray(res.bootstrap_distribution, dtype=float)
    else:  # one pair: every resample is that pair
        samples = np.full(int(n_boot), float(d[0]))
    low, high = _interval(samples, level)
    est = float(d.mean())
    if clip_at_zero:
        est, low, high = max(est, 0.0), max(low, 0.0), max(high, 0.0)
        samples = np.maximum(samples, 0.0)
    return Gain(est, low, high, float(level), int(n_boot), tuple(samples.tolist()))


COMPARE_RULES = ("overlap", "difference")


def compare_gains(data: Gain, tuning: Gain, *, by: str = "overlap") -> dict[str, object]:
    """The verdict from the two gains (same loss units).

    ``by="overlap"`` (default): "more data" when the data gain's interval lies wholly above the tuning
    gain's, "more tuning" when wholly below, "inconclusive" when they overlap. ``by="difference"``: the
    interval (at ``data.level``) of the bootstrap replicates of ``data − tuning`` (both gains need
    ``samples`` of equal length): a verdict when it excludes 0 — never when the two intervals are
    disjoint the other way, so "inconclusive" still implies overlapping intervals.

    Returns ``verdict``, ``reason`` (one sentence with the numbers) and ``margin`` (overlap: the gap
    between the intervals; difference: the distance of the difference interval from 0; negative when
    inconclusive).
    """
    if by not in COMPARE_RULES:
        raise ValueError(f"by must be one of {list(COMPARE_RULES)} but got {by!r}.")
    text = (
        f"expected loss drop from 2× data {data.estimate:+.4f} [{data.low:+.4f}, {data.high:+.4f}] vs from "
        f"more tuning {tuning.estimate:+.4f} [{tuning.low:+.4f}, {tuning.high:+.4f}] "
        f"({data.level:.0%} intervals)"
    )
    if by == "difference":
        if not data.samples or len(data.samples) != len(tuning.samples):
            raise ValueError(
                "compare_gains(by='difference') needs bootstrap samples of equal length in both gains."
            )
        lo, hi = _interval(np.asarray(data.samples) - np.asarray(tuning.samples), data.level)
        text += f"; data − tuning [{lo:+.4f}, {hi:+.4f}]"
    else:
        lo, hi = data.low - tuning.high, data.high - tuning.low
    if lo > 0:
        return {"verdict": "more data", "reason": f"{text}: the data gain is clearly larger", "margin": lo}
    if hi < 0:
        return {
            "verdict": "more tuning",
            "reason": f"{text}: the tuning gain is clearly larger",
            "margin": -hi,
        }
    return {"verdict": "inconclusive", "reason": f"{text}: not clearly apart", "margin": max(lo, -hi)}
