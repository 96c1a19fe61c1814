"""More data or more tuning? An advisor grounded in layer spectra (data-free).

Given a task that honours ``params.data_fraction`` and a finished study, the advisor retrains the study's
best configuration and a typical one (the median-score trial) at several fractions of the training data
(default 1/8, 1/4, 1/2, 1) with several seeds, analyses the trained weights' spectra, and regresses the
α score, the mean α and the cross-layer spread of α (eligible layers) on ``log2(data fraction)`` by
ordinary least squares over all fractions × seeds (slope, standard error, extrapolation to 2× data).
By default every fraction gets the same number of optimisation steps (``budget_per_data=True``: an
epoch budget is scaled by 1/fraction), so the curves measure data, not training length.

Signals (all from training runs and spectra):

* **data signals** of the best configuration, per doubling of the data: the change of its mean α
  (``alpha_slope``, either sign counts: with equal steps less data typically over-fits and pushes α below
  2, with equal epochs it under-trains and pushes α up) and the change of its cross-layer α spread
  (``spread_slope``; the evidence is that less data widens the spread, so a narrowing counts). Spectra
  that still move with the amount of data mean a data-limited model; spectra that stay put mean the data
  no longer shapes what is learned.
* **tuning gap** ``tune_gain``: the typical configuration's fitted α score at 1× minus the best
  configuration's, with the standard error ``se_tune`` of that difference.

**The rule** (``DecisionRule``; defaults ``data_threshold=0.3`` α, ``spread_threshold=0.05`` α,
``z=2``, ``min_effect=0.05``):

* "more data" when a data signal is large and clear: ``|alpha_slope| >= data_threshold`` with
  ``|alpha_slope| >= z·se``, or ``-spread_slope >= spread_threshold`` with ``-spread_slope >= z·se``;
* "inconclusive" when a data signal is large but within ``z`` standard errors of 0;
* "more tuning" when the data is shown to be saturated — both data signals stay below their thresholds
  even at ``z`` standard errors (``|alpha_slope| + z·se < data_threshold`` and
  ``-spread_slope + z·se < spread_threshold``) — and the tuning gap is clear: ``tune_gain >= min_effect``
  and ``tune_gain >= z·se_tune``;
* "inconclusive" otherwise, and whenever a configuration has fewer than two fractions of usable runs.

The study's own trials are summarised beside the verdict (spread of scores, best vs median, whether the
best score was still improving over the most recent trials, parameter importances when there are
enough trials); those numbers are reported, not used by the rule. A held-out metric returned by the task
is recorded with every run for validation and is never read by the rule.

Limits: the thresholds were set on teacher–student MLPs (``benchmarks/bench_advice.py``);
the extrapolation to 2× is a straight line in log2(data); the tuning effect is in α-score units, which
track the learning rate strongly and are unreliable for badly under-trained runs (α > 6), so it says the
hyperparameters move the spectra, which is evidence about held-out quality only as far as the study's
α score is (see ``wwtune.trust``).

Example (a bundled task and a 4-trial study; about 10–30 s on one core)::

    import optuna
    from wwtune.advice import advise, format_advice
    from wwtune.objectives.digits_mlp import train

    study = optuna.create_study(direction="minimize")  # normally made by `python -m wwtune study=...`
    for lr, score in [(0.1, 0.2), (0.03, 0.5), (0.01, 1.0), (0.3, 0.4)]:
        study.enqueue_trial({"lr": lr})
        study.optimize(lambda t: (t.suggest_float("lr", 1e-3, 1.0, log=True), score)[1], n_trials=1)
    advice = advise(train, study, budget=5, seeds=(0, 1))
    print(format_advice(advice))

From the command line, on an existing study: ``python -m wwtune study=<name> mode=advise``.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from wwtune.objective import Params, Reporter, TrainingDiverged
from wwtune.score import Score, failed_fits

__all__ = [
    "DEFAULT_FRACTIONS",
    "Candidate",
    "DecisionRule",
    "RunRecord",
    "Trend",
    "advise",
    "check_task",
    "decide",
    "fit_trend",
    "measure_data_curve",
    "pick_candidates",
    "plot_advice",
    "save_advice",
    "tuning_headroom",
    "run_advice",
    "format_advice",
    "ADVISE_DEFAULTS",
]

logger = logging.getLogger(__name__)

#: Fractions of the available training data at which each configuration is retrained.
DEFAULT_FRACTIONS: tuple[float, ...] = (0.125, 0.25, 0.5, 1.0)

VERDICTS = ("more data", "more tuning", "inconclusive")


# --------------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------------
def check_task(task: Callable[..., Any]) -> None:
    """Raise ``ValueError`` unless ``task`` declares ``supports_data_fraction=True``."""
    if not callable(task):
        raise TypeError(f"task must be a callable train(params, reporter) but got {type(task).__name__}.")
    if not getattr(task, "supports_data_fraction", False):
        name = getattr(task, "__qualname__", repr(task))
        raise ValueError(
            f"The data-vs-tuning advisor needs a task that honours params.data_fraction, but {name!r} does "
            "not declare it. Train on the first data_fraction × N samples of the training set and mark "
            "the function with @wwtune.objective.task(supports_data_fraction=True)."
        )


@dataclass(frozen=True)
class Candidate:
    """A configuration to retrain: its label, global values, per-layer settings and where it came from."""

    label: str
    values: Mapping[str, Any]
    layers: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    trial_number: int | None = None
    study_score: float | None = None


def _complete_trials(study: Any) -> list[Any]:
    import optuna

    trials = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    # Trials kept as infeasible (sanity.on_violation=infeasible) carry a positive "wwtune.constraint".
    return [
        t
        for t in trials
        if _study_value(t) is not None
        and math.isfinite(_study_value(t))
        and max(t.user_attrs.get("wwtune.constraint", [0.0]), default=0.0) <= 0.0
    ]


def _study_value(trial: Any) -> float | None:
    """The value the advisor ranks a trial by: its value, or for a two-objective study (``score=pareto``:
    training loss, band distance) the band distance."""
    values = trial.values
    if not values:
        return None
    return float(values[-1])


def _default_params_from_trial(trial: Any) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """All of ``trial.params`` as global values (use ``SearchSpace.split`` when the space has layers)."""
    return dict(trial.params), {}


def pick_candidates(
    study: Any,
    params_from_trial: Callable[[Any], tuple[dict[str, Any], dict[str, dict[str, Any]]]] | None = None,
) -> tuple[Candidate, Candidate]:
    """The study's best trial and its typical one (the complete trial with the median score).

    The study must minimise its score and hold at least two complete trials with finite values.
    """
    import optuna

    directions = list(getattr(study, "directions", []))
    if not directions or any(d != optuna.study.StudyDirection.MINIMIZE for d in directions):
        raise ValueError(f"The advisor reads α-score studies, which minimise; got directions {directions}.")
    trials = _complete_trials(study)
    if len(trials) < 2:
        raise ValueError(
            f"The advisor needs at least 2 complete trials with a finite score, but study "
            f"{study.study_name!r} has {len(trials)}. Run more trials first."
        )
    decode = params_from_trial or _default_params_from_trial
    ordered = sorted(trials, key=lambda t: (_study_value(t), t.number))
    best = ordered[0]
    # The median trial; index len // 2 is never the best when there are at least 2 trials.
    typical = ordered[len(ordered) // 2]
    out = []
    for label, trial in (("best", best), ("typical", typical)):
        values, layers = decode(trial)
        out.append(Candidate(label, values, layers, trial.number, float(_study_value(trial))))
    return out[0], out[1]


# --------------------------------------------------------------------------------------------------
# Retraining at several data fractions
# --------------------------------------------------------------------------------------------------
class _SpectraReporter(Reporter):
    """Records losses and keeps the model so its spectra can be read once training ends."""

    def __init__(self) -> None:
        self.losses: list[tuple[int, float]] = []
        self.model: nn.Module | None = None

    def report(self, step: int, model: nn.Module, loss: float) -> None:
        loss = float(loss)
        self.losses.append((int(step), loss))
        self.model = model
        if not math.isfinite(loss):
            raise TrainingDiverged(f"training loss became {loss} at step {step}")


def _run_budget(budget: int, fraction: float, budget_per_data: bool) -> int:
    """Budget of a run at ``fraction``: scaled by 1/fraction when the budget counts passes over the data
    (epochs), so every fraction gets the same number of optimisation steps; unchanged otherwise."""
    return int(math.ceil(int(budget) / float(fraction) - 1e-9)) if budget_per_data else int(budget)


@dataclass
class RunRecord:
    """One retraining run: which configuration, data fraction and seed, and what its spectra say."""

    config: str
    fraction: float
    seed: int
    score: float
    mean_alpha: float
    spread: float
    n_layers: int
    final_loss: float | None
    heldout: float | None = None
    status: str = "ok"
    reason: str = ""


def _analyze_default(model: nn.Module) -> pd.DataFrame:
    from wwtune.spectral import analyze

    return analyze(model)


def measure_data_curve(
    task: Callable[..., Any],
    candidate: Candidate,
    *,
    fixed: Mapping[str, Any] | None = None,
    budget: int,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    seeds: Sequence[int] = (0, 1),
    available_fraction: float = 1.0,
    score: Score | None = None,
    analyze_fn: Callable[[nn.Module], pd.DataFrame] | None = None,
    budget_per_data: bool = True,
) -> list[RunRecord]:
    """Retrain ``candidate`` at every fraction × seed and read its layers' α.

    ``fractions`` are relative to the data the user has; ``available_fraction`` (default 1) is the fraction
    of the task's training set that counts as "all of it" (validation runs use 1/2 so that 2× exists).
    Each run is scored with ``score`` (the study's :class:`wwtune.score.Score`; default band [2, 2],
    ``min_evals`` 50); mean α and the cross-layer spread (population sd) use the eligible layers whose
    fit succeeded. A run that diverges or cannot be scored is recorded with ``status="failed"`` and its
    reason, and is left out of the fits.
    """
    check_task(task)
    analyze_fn = analyze_fn or _analyze_default
    score = score or Score()
    records: list[RunRecord] = []
    for fraction in fractions:
        for seed in seeds:
            params = Params(
                values={**dict(fixed or {}), **dict(candidate.values)},
                layers={k: dict(v) for k, v in candidate.layers.items()},
                budget=_run_budget(budget, fraction, budget_per_data),
                seed=int(seed),
                data_fraction=float(fraction) * float(available_fraction),
            )
            reporter = _SpectraReporter()
            record = RunRecord(
                candidate.label, float(fraction), int(seed), math.inf, math.nan, math.nan, 0, None
            )
            try:
                result = task(params, reporter) or {}
            except TrainingDiverged as exc:
                record.status, record.reason = "failed", f"diverged: {exc}"
                records.append(record)
                continue
            if reporter.losses:
                record.final_loss = reporter.losses[-1][1]
            heldout = result.get("heldout") if isinstance(result, Mapping) else None
            record.heldout = None if heldout is None else float(heldout)
            if reporter.model is not None and not all(
                bool(torch.isfinite(p).all()) for p in reporter.model.parameters()
            ):
                record.status, record.reason = "failed", "diverged: weights contain NaN/Inf"
                records.append(record)
                continue
            if reporter.model is None:
                record.status, record.reason = (
                    "failed",
                    "the task never called reporter.report(step, model, loss)",
                )
                records.append(record)
                continue
            df = analyze_fn(reporter.model)
            result_score = score(df)
            if result_score.value is None:
                record.status, record.reason = "failed", str(result_score.reason)
                records.append(record)
                continue
            good = score.eligible(df["num_evals"].to_numpy()) & ~failed_fits(df)
            alphas = df.loc[good, "alpha"].to_numpy(dtype=float)
            record.score = float(result_score.value)
            record.n_layers = int(alphas.size)
            if alphas.size:
                record.mean_alpha = float(alphas.mean())
                record.spread = float(alphas.std(ddof=0))
            records.append(record)
            logger.info(
                "advice run %s f=%.4g seed=%d score=%.4g", candidate.label, fraction, seed, record.score
            )
    return records


# --------------------------------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------------------------------
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


def _trend_of(records: Iterable[RunRecord], attr: str) -> Trend | None:
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
    trials = sorted(_complete_trials(study), key=lambda t: t.number)
    scores = [float(_study_value(t)) for t in trials]
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
        import optuna

        try:
            target = (lambda t: _study_value(t)) if len(study.directions) > 1 else None
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

    data_threshold: float = 0.3
    spread_threshold: float = 0.05
    z: float = 2.0
    min_effect: float = 0.05

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


# --------------------------------------------------------------------------------------------------
# The whole advice
# --------------------------------------------------------------------------------------------------
def _finite_or_none(obj: Any) -> Any:
    """JSON-safe copy: non-finite floats become None (JSON has no inf/NaN), numpy scalars become Python."""
    if isinstance(obj, Mapping):
        return {str(k): _finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite_or_none(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        return float(obj) if math.isfinite(float(obj)) else None
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


def advise(
    task: Callable[..., Any],
    study: Any = None,
    *,
    candidates: tuple[Candidate, Candidate] | None = None,
    fixed: Mapping[str, Any] | None = None,
    budget: int,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    seeds: Sequence[int] = (0, 1),
    available_fraction: float = 1.0,
    score: Score | None = None,
    budget_per_data: bool = True,
    rule: DecisionRule | None = None,
    analyze_fn: Callable[[nn.Module], pd.DataFrame] | None = None,
    params_from_trial: Callable[[Any], tuple[dict[str, Any], dict[str, dict[str, Any]]]] | None = None,
) -> dict[str, Any]:
    """Retrain the best and typical configurations at several data fractions and give the verdict.

    Args:
        task: ``train(params, reporter)`` declaring ``supports_data_fraction=True``.
        study: the finished Optuna study (minimising the α score). Its best and median-score trials are
            retrained, and its trials summarised by :func:`tuning_headroom`. May be ``None`` when
            ``candidates`` is given (no study summary then).
        candidates: ``(best, typical)`` to retrain instead of the study's; default: from the study.
        fixed: values put in ``params.values`` beside each candidate's (the objective's ``fixed``).
        budget: training budget per run, in the task's unit.
        fractions: data fractions relative to the available data; at least 2 distinct values in (0, 1].
            Default 1/8, 1/4, 1/2, 1.
        seeds: seeds per fraction; at least 2. Default (0, 1).
        available_fraction: share of the task's training set the user has (default 1.0).
        score: how a trained model is scored: the study's :class:`wwtune.score.Score` (default
            ``Score()``: distance to the band [2, 2] over layers with at least 50 eigenvalues).
        rule: the decision thresholds (default ``DecisionRule()``).
        analyze_fn: model → per-layer DataFrame (``wwtune.analyze`` by default).
        params_from_trial: trial → (global values, per-layer settings); default splits
            ``"<pattern>.<setting>"`` keys.

    Returns:
        A JSON-serialisable dict: ``verdict``, ``reason``, the rule's numbers under ``decision``, the
        per-configuration ``trends`` (score, mean_alpha, spread vs log2 fraction), every run under
        ``runs`` (held-out values recorded, never used), the study summary under ``study`` and the
        settings used.
    """
    check_task(task)
    fr = [float(f) for f in fractions]
    if any(not (0.0 < f <= 1.0) for f in fr) or len(set(fr)) < 2:
        raise ValueError(
            f"fractions must hold at least 2 distinct values in (0, 1] but got {list(fractions)!r}."
        )
    if len(set(int(s) for s in seeds)) < 2:
        raise ValueError(f"seeds must hold at least 2 distinct seeds but got {list(seeds)!r}.")
    if not (0.0 < float(available_fraction) <= 1.0):
        raise ValueError(f"available_fraction must be in (0, 1] but got {available_fraction!r}.")
    if int(budget) < 1:
        raise ValueError(f"budget must be a positive integer but got {budget!r}.")
    if candidates is None:
        if study is None:
            raise ValueError(
                "Give a study (its best and median trials are retrained) or candidates=(best, typical)."
            )
        candidates = pick_candidates(study, params_from_trial)
    rule = rule or DecisionRule()
    score = score or Score()
    runs: list[RunRecord] = []
    trends: dict[str, dict[str, Any]] = {}
    trend_objs: dict[str, dict[str, Trend | None]] = {}
    for cand in candidates:
        recs = measure_data_curve(
            task,
            cand,
            fixed=fixed,
            budget=budget,
            fractions=fr,
            seeds=seeds,
            available_fraction=available_fraction,
            score=score,
            budget_per_data=budget_per_data,
            analyze_fn=analyze_fn,
        )
        runs.extend(recs)
        per = {attr: _trend_of(recs, attr) for attr in ("score", "mean_alpha", "spread")}
        trend_objs[cand.label] = per
        trends[cand.label] = {k: (asdict(v) if v is not None else None) for k, v in per.items()}
    best, typical = trend_objs[candidates[0].label], trend_objs[candidates[1].label]
    decision = decide(best["mean_alpha"], best["spread"], best["score"], typical["score"], rule)
    failed = [r for r in runs if r.status != "ok"]
    best_ok = [r for r in runs if r.config == candidates[0].label and r.status == "ok"]
    curve_fr = sorted({r.fraction for r in best_ok})
    curve = [[r.score for r in best_ok if r.fraction == f] for f in curve_fr]
    advice: dict[str, Any] = {
        "verdict": decision["verdict"],
        "reason": decision["reason"],
        "decision": {k: v for k, v in decision.items() if k not in ("verdict", "reason")},
        "trends": trends,
        "runs": [asdict(r) for r in runs],
        "n_failed_runs": len(failed),
        "candidates": {
            c.label: {
                "trial_number": c.trial_number,
                "study_score": c.study_score,
                "values": dict(c.values),
                "layers": {k: dict(v) for k, v in c.layers.items()},
            }
            for c in candidates
        },
        "study": tuning_headroom(study) if study is not None else None,
        "settings": {
            "fractions": fr,
            "seeds": [int(s) for s in seeds],
            "budget": int(budget),
            "available_fraction": float(available_fraction),
            "score": score.describe(),
            "rule": asdict(rule),
        },
        # The keys wwtune.report.plot_advice reads (best configuration's score per fraction, sd over seeds).
        "data_fraction": curve_fr,
        "score": [float(np.mean(c)) for c in curve],
        "score_err": [float(np.std(c)) for c in curve],
        "tuning_headroom": max(0.0, float(decision.get("tune_gain", 0.0))),
        "metric": "α score of the best configuration",
        "heldout_note": "held-out values in runs are for validation only; the verdict never reads them",
    }
    if failed:
        logger.warning("%d of %d advice runs failed: %s", len(failed), len(runs), failed[0].reason)
    return _finite_or_none(advice)


def _draw_curves(axis: Any, advice: Mapping[str, Any], ok: pd.DataFrame, attr: str) -> None:
    """Runs (mean ± sd over seeds per fraction), the OLS line and its extrapolation to 2× (± 1 SE)."""
    for label, color in (("best", "tab:blue"), ("typical", "tab:orange")):
        sub = ok[ok["config"] == label] if len(ok) else ok
        if len(sub):
            g = sub.groupby("fraction")[attr].agg(["mean", "std"]).reset_index()
            axis.errorbar(
                np.log2(g["fraction"]),
                g["mean"],
                yerr=g["std"].fillna(0.0),
                fmt="o",
                color=color,
                capsize=3,
                label=f"{label}: runs (mean ± sd over seeds)",
            )
        tr = (advice["trends"].get(label) or {}).get(attr)
        if tr:
            xs = np.linspace(math.log2(min(advice["settings"]["fractions"])), 0.0, 20)
            axis.plot(xs, tr["intercept"] + tr["slope"] * xs, "-", color=color, lw=1)
            axis.plot(
                [0.0, 1.0],
                [tr["intercept"], tr["at_2x"]],
                "--",
                color=color,
                lw=1.5,
                label=f"{label}: extrapolated to 2×",
            )
            if tr.get("se_at_2x") is not None:
                axis.errorbar(
                    [1.0], [tr["at_2x"]], yerr=[tr["se_at_2x"]], fmt="s", color=color, capsize=4, mfc="white"
                )


def _bracket(axis: Any, x: float, y0: float, y1: float, color: str, text: str) -> None:
    """A vertical double arrow from y0 to y1 at x, labelled on its right."""
    axis.annotate("", xy=(x, y0), xytext=(x, y1), arrowprops={"arrowstyle": "<->", "color": color, "lw": 2})
    axis.text(x + 0.05, (y0 + y1) / 2, text, color=color, va="center", fontsize=8)


def plot_advice(advice: Mapping[str, Any]) -> Any:
    """Figure with three panels against the data fraction (log2 axis, 2× = extrapolated): the α score of
    both configurations with the tuning gap at 1× and the study's best…median band (tuning headroom); the
    mean α with the data effect per doubling; the cross-layer spread of α. Returns a matplotlib Figure
    (no pyplot state)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(14, 5.0))
    ax_score, ax_alpha, ax_spread = fig.subplots(1, 3)
    runs = pd.DataFrame(advice["runs"])
    ok = runs[runs["status"] == "ok"] if len(runs) else runs
    for axis, attr in ((ax_score, "score"), (ax_alpha, "mean_alpha"), (ax_spread, "spread")):
        _draw_curves(axis, advice, ok, attr)
    d = advice.get("decision") or {}
    trends = advice["trends"]
    tb = (trends.get("best") or {}).get("score")
    tt = (trends.get("typical") or {}).get("score")
    if tb and tt and d.get("tune_gain") is not None:
        _bracket(
            ax_score,
            0.15,
            tb["intercept"],
            tt["intercept"],
            "tab:green",
            f"tuning gap\n{d['tune_gain']:+.3f} ± {d['se_tune']:.3f}",
        )
    study = advice.get("study") or {}
    if study.get("best") is not None:
        ax_score.axhspan(
            study["best"],
            study["median"],
            color="tab:green",
            alpha=0.08,
            label="study trials: best … median score",
        )
    best = trends.get("best") or {}
    for axis, attr, slope, se, threshold in (
        (ax_alpha, "mean_alpha", "alpha_slope", "se_alpha", f"±{d.get('data_threshold', 0):g}"),
        (ax_spread, "spread", "spread_slope", "se_spread", f"−{d.get('spread_threshold', 0):g}"),
    ):
        tr = best.get(attr)
        if tr and d.get(slope) is not None:
            _bracket(
                axis,
                1.15,
                tr["intercept"],
                tr["at_2x"],
                "tab:purple",
                f"per doubling\n{d[slope]:+.3f} ± {d[se]:.3f}\n(threshold {threshold})",
            )
    labels = (
        (ax_score, "α score (lower is better)", f"verdict: {advice['verdict']}"),
        (ax_alpha, "mean α (eligible layers)", "mean α vs data"),
        (ax_spread, "cross-layer α spread (sd)", "spread of α across layers"),
    )
    ticks = sorted({math.log2(f) for f in advice["settings"]["fractions"]} | {1.0})
    for axis, ylabel, title in labels:
        axis.set_xticks(ticks, [f"{2**t:g}×" for t in ticks])
        axis.set_xlabel("training data (relative to what is available)")
        axis.set_ylabel(ylabel)
        axis.set_title(title, fontsize=10)
        axis.set_xlim(min(ticks) - 0.3, 1.9)
    handles, names = ax_score.get_legend_handles_labels()
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    fig.legend(handles, names, loc="lower center", ncol=5, fontsize=8, frameon=False)
    return fig


def save_advice(advice: Mapping[str, Any], out_dir: str | Path, study: Any = None) -> dict[str, Path]:
    """Write ``advice.json`` and ``advice.png`` into ``out_dir``; store ``wwtune.advice`` on the study."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "advice.json", "png": out / "advice.png"}
    clean = _finite_or_none(advice)
    paths["json"].write_text(json.dumps(clean, indent=2, allow_nan=False))
    plot_advice(clean).savefig(paths["png"], dpi=110)
    if study is not None:
        study.set_user_attr("wwtune.advice", clean)
    return paths


def format_advice(advice: Mapping[str, Any]) -> str:
    """A few lines for the CLI to print: the verdict, the numbers behind it and the study summary."""
    d = advice.get("decision") or {}
    lines = [f"Advice: {advice['verdict'].upper()}", f"  {advice['reason']}"]
    if "alpha_slope" in d:
        lines.append(
            f"  per doubling of the data: mean α {d['alpha_slope']:+.3f} ± {d['se_alpha']:.3f} "
            f"(threshold ±{d['data_threshold']:g}), α spread {d['spread_slope']:+.3f} ± {d['se_spread']:.3f} "
            f"(threshold −{d['spread_threshold']:g}); tuning gap {d['tune_gain']:+.3f} ± {d['se_tune']:.3f} "
            f"(min {d['min_effect']:g}); z = {d['z']:g}"
        )
    s = advice.get("study") or {}
    if s.get("best") is not None:
        lines.append(
            f"  study: {s['n_complete']} complete trials, best {s['best']:.4f}, median {s['median']:.4f}, "
            f"still improving: {s.get('still_improving')} (recent gain {s.get('recent_gain')})"
        )
        if s.get("importances"):
            top = ", ".join(f"{k} {v:.2f}" for k, v in list(s["importances"].items())[:4])
            lines.append(f"  parameter importances: {top}")
        else:
            lines.append(f"  parameter importances: not computed ({s.get('importances_note')})")
    if advice.get("n_failed_runs"):
        lines.append(f"  {advice['n_failed_runs']} retraining runs failed and were left out")
    return "\n".join(lines)


#: Keys of the ``advise:`` config block (``conf/advise/default.yaml``) and their defaults.
ADVISE_DEFAULTS: dict[str, Any] = {
    "fractions": list(DEFAULT_FRACTIONS),
    "seeds": [0, 1],
    "budget_per_data": True,
    "data_threshold": DecisionRule.data_threshold,
    "spread_threshold": DecisionRule.spread_threshold,
    "z": DecisionRule.z,
    "min_effect": DecisionRule.min_effect,
}


def run_advice(cfg: Mapping[str, Any], *, study: Any = None) -> dict[str, Any]:
    """``mode=advise``: advise on the study described by the composed config and save the result.

    Reads ``study.name``/``study.studies_dir``/``storage`` (to open the study unless ``study`` is given),
    ``objective.task``/``budget``/``fixed``/``data_fraction`` (the data the user has), ``search_space``
    (to turn trials back into per-layer settings), ``score``, ``analysis`` (keyword arguments of
    ``wwtune.analyze``) and the ``advise`` block (keys of :data:`ADVISE_DEFAULTS`). Writes
    ``<studies_dir>/<name>/advice.json`` and ``advice.png`` and the study user attr ``wwtune.advice``;
    returns the advice dict (print it with :func:`format_advice`).
    """

    from wwtune.search_space import SearchSpace
    from wwtune.spectral import analyze
    from wwtune.storage import study_dir
    from wwtune.study import load_task, open_existing_study

    block = dict(cfg.get("advise") or {})
    unknown = sorted(set(block) - set(ADVISE_DEFAULTS))
    if unknown:
        raise ValueError(f"Unknown advise setting(s) {unknown}; allowed: {sorted(ADVISE_DEFAULTS)}.")
    opts = {**ADVISE_DEFAULTS, **block}
    study_cfg, objective = cfg["study"], cfg["objective"]
    name = str(study_cfg["name"])
    studies_dir = study_cfg.get("studies_dir", "studies")
    if study is None:
        study = open_existing_study({**cfg, "mode": "advise"})
    task_fn = load_task(objective["task"])
    check_task(task_fn)
    space = SearchSpace.from_config(cfg.get("search_space"))
    from wwtune.study import _score

    score = _score({**cfg, "score": cfg.get("score") or {}})
    if score.kind == "heldout":
        raise ValueError(
            "mode=advise needs an α score (score.kind band_distance, mean_alpha, …), not heldout."
        )
    # the fit scores (train_loss, fit_band, pareto): the retraining runs are compared by their α score
    score = score.alpha_score()
    analysis = dict(cfg.get("analysis") or {})
    rule = DecisionRule(
        **{k: float(opts[k]) for k in ("data_threshold", "spread_threshold", "z", "min_effect")}
    )
    advice = advise(
        task_fn,
        study,
        fixed=objective.get("fixed") or {},
        budget=int(objective["budget"]),
        fractions=[float(f) for f in opts["fractions"]],
        seeds=[int(s) for s in opts["seeds"]],
        available_fraction=float(objective.get("data_fraction", 1.0)),
        score=score,
        budget_per_data=bool(opts["budget_per_data"]),
        rule=rule,
        analyze_fn=lambda model: analyze(model, **analysis),
        params_from_trial=lambda trial: space.split(trial.params),
    )
    paths = save_advice(advice, study_dir(studies_dir, name), study=study)
    logger.info("advice saved to %s and %s", paths["json"], paths["png"])
    return advice
