"""The advisor's retraining runs: which configurations to retrain, and each one at every data fraction.

:func:`pick_candidates` takes the study's best and typical (median-score) feasible trials;
:func:`measure_data_curve` retrains one at every fraction × seed and reads its spectra.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna
import pandas as pd
from torch import nn

from wwtune.objective import NullReporter, Params, TrainingDiverged, check_finite_weights
from wwtune.pick import picked_trial
from wwtune.ranking import feasible_trials, study_value
from wwtune.record import failed_fits
from wwtune.schema import SCHEMA
from wwtune.score import Score
from wwtune.spectral import analyze

__all__ = [
    "DEFAULT_FRACTIONS",
    "Candidate",
    "RunRecord",
    "check_task",
    "measure_data_curve",
    "SpectraReporter",
    "pick_candidates",
    "rank_candidates",
    "read_spectra",
    "run_budget",
]

logger = logging.getLogger("wwtune.advice")

#: Fractions of the available training data at which each configuration is retrained.
DEFAULT_FRACTIONS: tuple[float, ...] = tuple(SCHEMA["advise"]["fractions"].default)


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
    directions = list(getattr(study, "directions", []))
    if not directions or any(d != optuna.study.StudyDirection.MINIMIZE for d in directions):
        raise ValueError(f"The advisor reads α-score studies, which minimise; got directions {directions}.")
    trials = feasible_trials(study)  # COMPLETE, finite score, not infeasible (sanity.on_violation)
    if len(trials) < 2:
        raise ValueError(
            f"The advisor needs at least 2 complete trials with a finite score, but study "
            f"{study.study_name!r} has {len(trials)}. Run more trials first."
        )
    decode = params_from_trial or _default_params_from_trial
    ordered = sorted(trials, key=lambda t: (study_value(t), t.number))
    # the study's returned trial (its pick rule, wwtune.pick) is the "best" the advisor retrains
    picked = picked_trial(study)[0] if isinstance(study, optuna.Study) else None
    best = picked if picked is not None and picked.number in {t.number for t in trials} else ordered[0]
    # The median trial by value; never the best (at least 2 trials).
    middle = len(ordered) // 2
    typical = ordered[middle] if ordered[middle].number != best.number else ordered[middle - 1]
    out = []
    for label, trial in (("best", best), ("typical", typical)):
        values, layers = decode(trial)
        out.append(Candidate(label, values, layers, trial.number, study_value(trial)))
    return out[0], out[1]


def rank_candidates(
    study: Any,
    params_from_trial: Callable[[Any], tuple[dict[str, Any], dict[str, dict[str, Any]]]] | None = None,
) -> list[Candidate]:
    """Every complete feasible trial as a :class:`Candidate` (label ``"trial <number>"``), best first."""
    pick_candidates(study, params_from_trial)  # the same checks (direction, at least 2 trials)
    decode = params_from_trial or _default_params_from_trial
    out = []
    for t in sorted(feasible_trials(study), key=lambda t: (study_value(t), t.number)):
        values, layers = decode(t)
        out.append(Candidate(f"trial {t.number}", values, layers, t.number, study_value(t)))
    return out


class SpectraReporter(NullReporter):
    """Records losses and keeps the model so its spectra can be read once training ends."""

    def __init__(self) -> None:
        super().__init__()
        self.model: nn.Module | None = None

    def report(self, step: int, model: nn.Module, loss: float) -> None:
        self.model = model
        super().report(step, model, loss)


def read_spectra(
    model: nn.Module, score: Score, analyze_fn: Callable[[nn.Module], pd.DataFrame]
) -> tuple[float | None, str, float, float, int]:
    """``(score, reason, mean α, cross-layer α spread, n layers)`` of a trained model (eligible layers
    whose fit succeeded; score ``None`` with the reason when the model cannot be scored)."""
    df = analyze_fn(model)
    result = score(df)
    if result.value is None:
        return None, str(result.reason), math.nan, math.nan, 0
    good = score.eligible(df["num_evals"].to_numpy()) & ~failed_fits(df)
    alphas = df.loc[good, "alpha"].to_numpy(dtype=float)
    if not alphas.size:
        return float(result.value), "", math.nan, math.nan, 0
    return float(result.value), "", float(alphas.mean()), float(alphas.std(ddof=0)), int(alphas.size)


def run_budget(budget: int, fraction: float, budget_per_data: bool) -> int:
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


def measure_data_curve(
    task: Callable[..., Any],
    candidate: Candidate,
    *,
    budget: int,
    score: Score | None = None,
    fixed: Mapping[str, Any] | None = None,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    seeds: Sequence[int] = (0, 1),
    available_fraction: float = 1.0,
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
    analyze_fn = analyze_fn or analyze
    score = score or Score()
    records: list[RunRecord] = []
    for fraction in fractions:
        for seed in seeds:
            params = Params(
                values={**dict(fixed or {}), **dict(candidate.values)},
                layers={k: dict(v) for k, v in candidate.layers.items()},
                budget=run_budget(budget, fraction, budget_per_data),
                seed=int(seed),
                data_fraction=float(fraction) * float(available_fraction),
            )
            reporter = SpectraReporter()
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
            if reporter.model is not None:
                try:
                    check_finite_weights(reporter.model)
                except TrainingDiverged:
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
            value, reason, mean_alpha, spread, n_layers = read_spectra(reporter.model, score, analyze_fn)
            if value is None:
                record.status, record.reason = "failed", reason
                records.append(record)
                continue
            record.score, record.mean_alpha, record.spread = value, mean_alpha, spread
            record.n_layers = n_layers
            records.append(record)
            logger.info(
                "advice run %s f=%.4g seed=%d score=%.4g", candidate.label, fraction, seed, record.score
            )
    return records
