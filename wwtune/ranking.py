"""Which trials count, and which one is returned: feasibility, the current score rule's trials, the best.

One home for "which trial does wwtune return": :func:`best_trial` is the rule of the summary, the
``best_params.yaml``, the advisor and the report. A trial can be best only when it is feasible
(:func:`is_feasible`: complete, finite values, no violated constraint) and scored under the study's current
score rule (:func:`ranked_trials`). A single-objective study returns its best value (earliest wins a tie);
a ``score=pareto`` study (training loss, band distance) picks with :func:`pareto_pick` from the
:func:`pareto_front`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import optuna
import pandas as pd
from optuna.trial import FrozenTrial, TrialState

from wwtune.deprecation import section_of
from wwtune.record import (
    CONSTRAINT,
    SCORE_RULE,
    STUDY_CONFIG,
    STUDY_LEGACY_RULE,
    STUDY_SCORE_KIND,
    STUDY_SCORE_RULE,
    study_attr,
    trials_of,
)
from wwtune.study_folder import read_trial_spectra, spectra_path, study_folder

__all__ = [
    "best_trial",
    "best_trial_spectra",
    "constraints",
    "earlier_rule_trials",
    "feasible_trials",
    "is_feasible",
    "pareto_front",
    "pareto_pick",
    "ranked_trials",
    "study_value",
]


def constraints(trial: FrozenTrial) -> list[float]:
    """The trial's stored constraint values (``[0.0]`` when none): > 0 means infeasible."""
    return list(trial.user_attrs.get(CONSTRAINT, [0.0]))


def is_feasible(trial: FrozenTrial, n_objectives: int = 1) -> bool:
    """A COMPLETE trial with ``n_objectives`` finite values and no violated constraint: the only kind that
    can be best."""
    return (
        trial.state == TrialState.COMPLETE
        and trial.values is not None
        and len(trial.values) == n_objectives
        and all(v is not None and math.isfinite(v) for v in trial.values)
        and max(constraints(trial), default=0.0) <= 0.0
    )


def feasible_trials(study_or_trials: optuna.Study | Iterable[FrozenTrial]) -> list[FrozenTrial]:
    """The :func:`is_feasible` trials of the current score rule (:func:`ranked_trials`), by trial number
    (as many values as the study has objectives)."""
    n = len(study_or_trials.directions) if isinstance(study_or_trials, optuna.Study) else 1
    return [t for t in ranked_trials(study_or_trials) if is_feasible(t, n)]


def _rule_split(study_or_trials: Any) -> tuple[list[FrozenTrial], list[FrozenTrial]]:
    trials, current = trials_of(study_or_trials), study_attr(study_or_trials, STUDY_SCORE_RULE)
    if current is None:  # a list of trials, or a study that never recorded its rule: one rule
        return trials, []
    legacy = study_attr(study_or_trials, STUDY_LEGACY_RULE) or current
    same = [t for t in trials if t.user_attrs.get(SCORE_RULE, legacy) == current]
    return same, [t for t in trials if t.user_attrs.get(SCORE_RULE, legacy) != current]


def ranked_trials(study_or_trials: optuna.Study | Iterable[FrozenTrial]) -> list[FrozenTrial]:
    """The trials scored under the study's current score rule (all of a list of trials), by number: the
    only ones ranked. A study resumed under another score (``study.allow_config_change=true``) keeps the
    earlier trials (:func:`earlier_rule_trials`) but never ranks their values against the new ones."""
    return _rule_split(study_or_trials)[0]


def earlier_rule_trials(study_or_trials: optuna.Study | Iterable[FrozenTrial]) -> list[FrozenTrial]:
    """The trials scored under an earlier score rule (kept, not ranked: :func:`ranked_trials`)."""
    return _rule_split(study_or_trials)[1]


def study_value(trial: FrozenTrial) -> float:
    """The one value the advisor ranks a trial by: its value, or for a two-objective study
    (``score=pareto``: training loss, band distance) its band distance."""
    return float(trial.values[-1])


def best_trial(
    study_or_trials: optuna.Study | Iterable[FrozenTrial], direction: str | None = None
) -> FrozenTrial | None:
    """The best feasible trial (earliest wins a tie), or None; the one rule of the summary, the
    ``best_params.yaml``, the advisor and the report. ``direction`` defaults to the study's (``minimize``
    for a list of trials). A ``score=pareto`` study (two objectives: training loss, band distance) picks
    with :func:`pareto_pick` (gate ``score.fit_quantile`` from the stored config); another
    multi-objective study has no single best trial (None)."""
    if direction is None:
        if isinstance(study_or_trials, optuna.Study):
            if len(study_or_trials.directions) != 1:
                return _pareto_pick(study_or_trials)
            direction = study_or_trials.direction.name.lower()
        else:
            direction = "minimize"
    trials = feasible_trials(study_or_trials)
    if not trials:
        return None
    sign = -1.0 if direction == "maximize" else 1.0
    return min(trials, key=lambda t: (sign * t.value, t.number))


def _pareto_pick(study: optuna.Study) -> FrozenTrial | None:
    if study.user_attrs.get(STUDY_SCORE_KIND) != "pareto" or len(study.directions) != 2:
        return None  # another multi-objective study: no rule to pick one trial
    trials = feasible_trials(study)
    quantile = ((study.user_attrs.get(STUDY_CONFIG) or {}).get("score") or {}).get("fit_quantile", 1.0)
    i = pareto_pick([t.values[0] for t in trials], [t.values[1] for t in trials], float(quantile or 1.0))
    return None if i is None else trials[i]


def pareto_front(points: Sequence[Sequence[float]]) -> list[int]:
    """Indices of the non-dominated points (all objectives minimised), in input order.

    A point is dominated when another is no worse in every objective and better in at least one; equal
    points are all on the front.
    """
    arr = np.asarray(points, dtype=float)
    if arr.ndim != 2:
        raise ValueError(f"points must be a list of equal-length objective vectors; got shape {arr.shape}.")
    front = []
    for i in range(len(arr)):
        no_worse = np.all(arr <= arr[i], axis=1)
        better = np.any(arr < arr[i], axis=1)
        if not np.any(no_worse & better):
            front.append(i)
    return front


def pareto_pick(losses: Sequence[float], bands: Sequence[float], fit_quantile: float = 1.0) -> int | None:
    """The trial a ``pareto`` study recommends: an index into ``losses``/``bands``, or None if empty.

    Rule: (1) the fit gate: only trials whose training loss is at most the ``fit_quantile`` quantile of
    all the losses are candidates (1.0: all), so a run that did not fit is never picked for its α;
    (2) among the candidates' Pareto front of (loss, band distance), the trial with the smallest sum of
    its two ranks among the candidates (rank 0 = lowest; ties share the mean rank); (3) ties go to the
    lower loss, then the earlier index. Non-finite pairs are never candidates.
    """
    loss = np.asarray(losses, dtype=float)
    band = np.asarray(bands, dtype=float)
    if loss.shape != band.shape or loss.ndim != 1:
        raise ValueError(f"losses and bands must be equal-length lists; got {loss.shape} and {band.shape}.")
    if not 0.0 < fit_quantile <= 1.0:
        raise ValueError(f"fit_quantile must be in (0, 1] but got {fit_quantile!r}.")
    ok = np.flatnonzero(np.isfinite(loss) & np.isfinite(band))
    if not len(ok):
        return None
    gate = np.quantile(loss[ok], fit_quantile)
    cand = ok[loss[ok] <= gate]
    front = cand[pareto_front(np.column_stack([loss[cand], band[cand]]))]
    from scipy.stats import rankdata  # lazy: keeps import wwtune light

    ranks = rankdata(loss[cand]) + rankdata(band[cand])
    rank_of = dict(zip(cand.tolist(), ranks.tolist(), strict=True))
    return int(min(front, key=lambda i: (rank_of[i], loss[i], i)))


def best_trial_spectra(study: optuna.Study, study_section: Mapping[str, Any]) -> pd.DataFrame | None:
    """The stored spectra of the study's :func:`best_trial` (for the report's ESD plots), or None;
    ``study_section`` is the config's ``study`` section (it names the study's folder)."""
    best = best_trial(study)
    if best is None:
        return None
    return read_trial_spectra(spectra_path(study_folder(section_of(study_section, "study")), best.number))
