"""The statistics of the advisor's rule: OLS trends in log2(data fraction), the study's own tuning
headroom, and the verdict (:func:`decide`; the rule is stated in :mod:`wwtune.advice`)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import optuna

from wwtune.ranking import feasible_trials, study_value
from wwtune.schema import SCHEMA

if TYPE_CHECKING:
    from wwtune.advice.runs import RunRecord

__all__ = ["VERDICTS", "DecisionRule", "Trend", "decide", "fit_trend", "trend_of", "tuning_headroom"]

VERDICTS = ("more data", "more tuning", "inconclusive")


@dataclass
class Trend:
    """OLS fit ``y = intercept + slope · x`` with x = log2(data fraction); ``intercept`` is the value at 1×.

    ``at_2x`` is the extrapolation to twice the data (x = 1) and ``se_at_2x`` its standard error.
    Standard errors are ``inf`` when there are no residual degrees of freedom.
    """

    slope: float
    intercept: float
    se_slope: float
    se_intercept: float
    at_2x: float
    se_at_2x: float
    n: int
    n_x: int
    residual_sd: float


def fit_trend(x: Sequence[float], y: Sequence[float]) -> Trend:
    """Ordinary least squares of ``y`` on ``x`` with the usual standard errors.

    Needs at least two distinct ``x`` values; raises ``ValueError`` otherwise or on non-finite input.
    """
    xa = np.asarray(x, dtype=float)
    ya = np.asarray(y, dtype=float)
    if xa.shape != ya.shape or xa.ndim != 1:
        raise ValueError(f"x and y must be 1-D of equal length but got shapes {xa.shape} and {ya.shape}.")
    if not (np.all(np.isfinite(xa)) and np.all(np.isfinite(ya))):
        raise ValueError("x and y must be finite.")
    n = xa.size
    n_x = int(np.unique(xa).size)
    if n_x < 2:
        raise ValueError(f"A trend needs at least 2 distinct x values but got {n_x}.")
    xm, ym = xa.mean(), ya.mean()
    sxx = float(np.sum((xa - xm) ** 2))
    slope = float(np.sum((xa - xm) * (ya - ym)) / sxx)
    intercept = float(ym - slope * xm)
    resid = ya - (intercept + slope * xa)
    dof = n - 2
    if dof > 0:
        s2 = float(np.sum(resid**2) / dof)
        se_slope = math.sqrt(s2 / sxx)
        se_int = math.sqrt(s2 * (1.0 / n + xm**2 / sxx))
        se_2x = math.sqrt(s2 * (1.0 / n + (1.0 - xm) ** 2 / sxx))
        rsd = math.sqrt(s2)
    else:
        se_slope = se_int = se_2x = rsd = math.inf
    return Trend(
        slope,
        intercept,
        se_slope,
        se_intercept=se_int,
        at_2x=intercept + slope,
        se_at_2x=se_2x,
        n=n,
        n_x=n_x,
        residual_sd=rsd,
    )


def trend_of(records: Iterable[RunRecord], attr: str) -> Trend | None:
    """The :func:`fit_trend` of ``attr`` over the usable runs; None with fewer than 2 distinct fractions."""
    pts = [(math.log2(r.fraction), getattr(r, attr)) for r in records if r.status == "ok"]
    pts = [(x, y) for x, y in pts if math.isfinite(y)]
    if len({x for x, _ in pts}) < 2:
        return None
    return fit_trend([p[0] for p in pts], [p[1] for p in pts])


def tuning_headroom(study: Any, *, recent: float = 0.25, min_trials_importance: int = 10) -> dict[str, Any]:
    """Summarise what the study's own trials say about tuning.

    Returns ``n_complete``, ``best``, ``median``, ``q25``, ``q75`` (score quantiles), ``best_vs_median``,
    ``still_improving`` (did the last ``recent`` share of trials, at least 2, improve the best score found
    before them), ``recent_gain`` (that improvement, ≥ 0) and ``importances`` (Optuna's fANOVA-free default
    evaluator; ``None`` with ``importances_note`` when fewer than ``min_trials_importance`` complete
    trials or fewer than two varied parameters).
    """
    if not (0.0 < recent < 1.0):
        raise ValueError(f"recent must be in (0, 1) but got {recent!r}.")
    trials = feasible_trials(study)  # by trial number
    scores = [study_value(t) for t in trials]
    out: dict[str, Any] = {"n_complete": len(trials)}
    if not scores:
        return {**out, "importances": None, "importances_note": "no complete trials"}
    q = np.quantile(scores, [0.25, 0.5, 0.75])
    out.update(
        best=min(scores),
        median=float(q[1]),
        q25=float(q[0]),
        q75=float(q[2]),
        best_vs_median=float(q[1] - min(scores)),
    )
    k = max(2, int(math.ceil(recent * len(scores))))
    if len(scores) > k:
        before, last = min(scores[:-k]), min(scores[-k:])
        out.update(
            recent_trials=k,
            best_before_recent=before,
            recent_gain=max(0.0, before - last),
            still_improving=bool(last < before),
        )
    else:
        out.update(recent_trials=k, best_before_recent=None, recent_gain=None, still_improving=None)
    varied = {
        name for t in trials for name in t.params if len({repr(u.params.get(name)) for u in trials}) > 1
    }
    if len(trials) < min_trials_importance or len(varied) < 2:
        out["importances"] = None
        out["importances_note"] = (
            f"needs at least {min_trials_importance} complete trials and 2 varied parameters; "
            f"have {len(trials)} trials, {len(varied)} varied"
        )
    else:
        try:
            target = study_value if len(study.directions) > 1 else None
            imp = optuna.importance.get_param_importances(study, params=sorted(varied), target=target)
            out["importances"] = {k: float(v) for k, v in imp.items()}
        except (ValueError, RuntimeError) as exc:  # e.g. conditional params absent in some trials
            out["importances"] = None
            out["importances_note"] = f"optuna.importance failed: {exc}"
    return out


@dataclass(frozen=True)
class DecisionRule:
    """Thresholds of the verdict (the rule itself is in the module docstring).

    Args:
        data_threshold: change of the best configuration's mean α per doubling of the data (α units, either
            sign) from which the spectra count as data-sensitive. Default 0.3.
        spread_threshold: narrowing of the best configuration's cross-layer α spread per doubling of the
            data from which the spectra count as data-sensitive. Default 0.05.
        z: how many standard errors an effect must clear to count as clear. Default 2.0.
        min_effect: smallest α-score gap between the typical and the best configuration at 1× that counts
            as tuning headroom. Default 0.05.

    Example::

        from wwtune.advice import DecisionRule, decide, fit_trend

        x = [-3, -3, -2, -2, -1, -1, 0, 0]  # log2 of the data fractions 1/8 … 1, two seeds each
        alpha = fit_trend(x, [3.6, 3.7, 3.2, 3.3, 2.8, 2.9, 2.4, 2.5])  # mean α falls 0.4 per doubling
        spread = fit_trend(x, [0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.31])
        best = fit_trend(x, [1.6, 1.7, 1.2, 1.3, 0.8, 0.9, 0.4, 0.5])
        typical = fit_trend(x, [2.6, 2.7, 2.2, 2.3, 1.8, 1.9, 1.4, 1.5])
        assert decide(alpha, spread, best, typical, DecisionRule())["verdict"] == "more data"
    """

    data_threshold: float = SCHEMA["advise"]["data_threshold"].default
    spread_threshold: float = SCHEMA["advise"]["spread_threshold"].default
    z: float = SCHEMA["advise"]["z"].default
    min_effect: float = SCHEMA["advise"]["min_effect"].default

    def __post_init__(self) -> None:
        for name in ("data_threshold", "spread_threshold", "z"):
            value = getattr(self, name)
            if not (value > 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be positive and finite but got {value!r}.")
        if not (self.min_effect >= 0 and math.isfinite(self.min_effect)):
            raise ValueError(f"min_effect cannot be negative but got {self.min_effect!r}.")


def _z(value: float, se: float) -> float:
    return value / se if se > 0 else math.copysign(math.inf, value) if value else 0.0


def decide(
    best_alpha: Trend | None,
    best_spread: Trend | None,
    best_score: Trend | None,
    typical_score: Trend | None,
    rule: DecisionRule | None = None,
) -> dict[str, Any]:
    """The verdict from the best configuration's mean-α and spread trends and both score trends.

    Returns ``verdict``, ``reason`` (one sentence with the numbers) and the numbers themselves:
    ``alpha_slope``/``se_alpha`` (mean α per doubling), ``spread_slope``/``se_spread``, ``alpha_at_1x``,
    ``alpha_at_2x``, ``tune_gain`` (typical − best fitted score at 1×), ``se_tune``, the z values, the
    data signals that fired and the rule's settings.
    """
    rule = rule or DecisionRule()
    settings = asdict(rule)
    missing = [
        n
        for n, t in (
            ("best", best_alpha),
            ("best", best_spread),
            ("best", best_score),
            ("typical", typical_score),
        )
        if t is None
    ]
    if missing:
        return {
            "verdict": "inconclusive",
            **settings,
            "reason": f"the {missing[0]} configuration has fewer than 2 data fractions with usable runs",
        }
    assert best_alpha is not None and best_spread is not None and best_score is not None
    assert typical_score is not None
    a, se_a = best_alpha.slope, best_alpha.se_slope
    sp, se_sp = best_spread.slope, best_spread.se_slope
    tune_gain = typical_score.intercept - best_score.intercept
    se_tune = math.hypot(typical_score.se_intercept, best_score.se_intercept)
    z_alpha, z_spread, z_tune = abs(_z(a, se_a)), -_z(sp, se_sp), _z(tune_gain, se_tune)
    alpha_large, spread_large = abs(a) >= rule.data_threshold, -sp >= rule.spread_threshold
    clear = [
        name
        for name, large, zz in (
            ("mean α moves", alpha_large, z_alpha),
            ("spread narrows", spread_large, z_spread),
        )
        if large and zz >= rule.z
    ]
    noisy = [
        name
        for name, large, zz in (
            ("mean α moves", alpha_large, z_alpha),
            ("spread narrows", spread_large, z_spread),
        )
        if large and zz < rule.z
    ]
    headroom = tune_gain >= rule.min_effect and z_tune >= rule.z
    # Saturation must be shown, not assumed: even the upper confidence bounds stay below the thresholds.
    saturated = abs(a) + rule.z * se_a < rule.data_threshold and -sp + rule.z * se_sp < rule.spread_threshold
    numbers = {
        "alpha_slope": a,
        "se_alpha": se_a,
        "z_alpha": z_alpha,
        "spread_slope": sp,
        "se_spread": se_sp,
        "z_spread": z_spread,
        "alpha_at_1x": best_alpha.intercept,
        "alpha_at_2x": best_alpha.at_2x,
        "tune_gain": tune_gain,
        "se_tune": se_tune,
        "z_tune": z_tune,
        "data_signals": clear,
        "noisy_signals": noisy,
        "data_saturated": saturated,
        **settings,
    }
    data_text = (
        f"per doubling of the data the best configuration's mean α changes by {a:+.3f} ± {se_a:.3f} "
        f"({best_alpha.intercept:.2f} at 1× → {best_alpha.at_2x:.2f} extrapolated to 2×; threshold "
        f"±{rule.data_threshold:g}) and its cross-layer α spread by {sp:+.3f} ± {se_sp:.3f} "
        f"(threshold −{rule.spread_threshold:g})"
    )
    tune_text = f"the typical configuration scores {tune_gain:+.3f} ± {se_tune:.3f} worse than the best at 1×"
    if clear:
        verdict = "more data"
        why = (
            f"{data_text}: {' and '.join(clear)} clearly (≥ {rule.z:g} standard errors), so the spectra "
            f"are still shaped by the amount of data; {tune_text}"
        )
    elif noisy:
        verdict = "inconclusive"
        why = (
            f"{data_text}: {' and '.join(noisy)} beyond the threshold but within {rule.z:g} standard "
            f"errors of 0; {tune_text}"
        )
    elif saturated and headroom:
        verdict = "more tuning"
        why = (
            f"{data_text}: both below their thresholds even at +{rule.z:g} standard errors, so more data is "
            f"unlikely to change the learned spectra, while {tune_text} ({z_tune:.1f} standard errors)"
        )
    elif saturated:
        verdict = "inconclusive"
        why = (
            f"{data_text}: both below their thresholds, but {tune_text}, which is not a clear tuning "
            f"headroom (needs ≥ {rule.min_effect:g} and {rule.z:g} standard errors)"
        )
    else:
        verdict = "inconclusive"
        why = (
            f"{data_text}: neither clearly beyond nor clearly below its threshold at {rule.z:g} standard "
            f"errors; {tune_text}"
        )
    return {"verdict": verdict, "reason": why, **numbers}
