"""What a finished run leaves behind: ``best_params.yaml``, the trust report and the printed summary.

All three read the study through :mod:`wwtune.record`, and all three name the same returned trial
(:func:`wwtune.pick.picked_trial`: the study's pick rule over its COMPLETE, feasible trials).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.trial import TrialState

from wwtune.calibrate import format_calibration, rank_selectors
from wwtune.deprecation import section_of
from wwtune.factories import make_score
from wwtune.pick import STUDY_PICK, picked_trial
from wwtune.ranking import constraints, earlier_rule_trials, ranked_trials
from wwtune.record import (
    STUDY_BAND,
    STUDY_CONFIG,
    STUDY_LOSS_COMPARABLE,
    STUDY_SCORE_KIND,
    STUDY_TRUST,
    TrialRecord,
    atomic_write_text,
    best_params_path,
    json_safe,
    studies_dir,
)
from wwtune.score import Score, band_text
from wwtune.search_space import SearchSpace
from wwtune.storage import describe
from wwtune.trust import format_trust, trust_report

__all__ = ["calibration_text", "store_trust", "summary_text", "use_pick", "write_best_params"]

_logger = logging.getLogger(__name__)


def store_trust(study: optuna.Study, heldout_direction: str | None) -> dict[str, Any] | None:
    """Compute the trust report and store it as the study user attr ``wwtune.trust``; None if no held-out.

    Only when the task has a held-out metric (``heldout_direction`` set) and at least one trial stored
    one (``wwtune.heldout``); otherwise nothing is stored and None is returned.
    """
    if heldout_direction is None:
        return None
    trials = ranked_trials(study)  # the current score rule's trials (its α score is comparable)
    if not any(TrialRecord(t).heldout is not None for t in trials):
        return None
    kind = study.user_attrs.get(STUDY_SCORE_KIND)
    pick, how = picked_trial(study)
    report = json_safe(
        trust_report(
            trials,
            heldout_direction,
            loss_comparable=bool(study.user_attrs.get(STUDY_LOSS_COMPARABLE, True)),
            study_pick=None if pick is None else pick.number,
            study_pick_label=f"{how.rule}; score {kind}",
        )
    )
    # calibrate once: every data-free selector ranked on the held-out metric, and the override to use
    cfg = study.user_attrs.get(STUDY_CONFIG) or {}
    counted = (cfg.get("score") or {}).get("min_evals_counted", 50)
    report["selectors"] = json_safe(
        rank_selectors(trials, heldout_direction, study.user_attrs.get(STUDY_BAND), int(counted or 50))
    )
    study.set_user_attr(STUDY_TRUST, report)
    # debug only: the summary prints the trust lines once (the quickstart showed this one twice)
    _logger.debug("%s", report["summary"])
    return report


def use_pick(study: optuna.Study, pick: Mapping[str, Any] | None) -> None:
    """A stored study reported or advised with another pick rule (``pick=...`` on the command line): the
    new rule replaces the stored one (it changes no trial), and the study's pick is stored again. A study
    stored before pick rules existed (no ``pick`` in its config) keeps its old pick (the best value)."""
    pick = section_of(pick, "pick") if pick is not None else None
    stored = study.user_attrs.get(STUDY_CONFIG)
    if not isinstance(stored, Mapping) or "pick" not in stored or pick in (None, stored["pick"]):
        return
    study.set_user_attr(STUDY_CONFIG, json_safe({**stored, "pick": dict(pick)}))
    _, pick = picked_trial(study)
    study.set_user_attr(STUDY_PICK, pick.as_attr())


def calibration_text(study: optuna.Study) -> str:
    """The stored trust report's selector ranking and the override that would have picked best ("" when
    the study has no held-out metric); the summary and ``mode=report`` print it."""
    trust = study.user_attrs.get(STUDY_TRUST) or {}
    rows = trust.get("selectors")
    if rows is None and trust:  # a study stored before the ranking existed: rank its trials now
        cfg = study.user_attrs.get(STUDY_CONFIG) or {}
        counted = int((cfg.get("score") or {}).get("min_evals_counted", 50) or 50)
        direction = trust.get("heldout_direction") or ""
        rows = rank_selectors(ranked_trials(study), direction, study.user_attrs.get(STUDY_BAND), counted)
    return format_calibration(rows or [], trust.get("n"))


def write_best_params(
    study: optuna.Study, space: SearchSpace, cfg: Mapping[str, Any], score: Score
) -> Path | None:
    """Write ``best_params.yaml`` (params, per-layer settings, fixed values, score, the pick rule and why it
    chose this trial; the pick is also stored as the study attr ``wwtune.pick``); None if no trial."""
    best, pick = picked_trial(study)
    study.set_user_attr(STUDY_PICK, pick.as_attr())
    if best is None:
        return None
    values, layers = space.split(best.params)
    doc = {
        "study": study.study_name,
        "trial": best.number,
        "score": best.value if len(best.values) == 1 else None,
        **({"scores": list(best.values), "pick_rule": "pareto_pick"} if len(best.values) > 1 else {}),
        "score_rule": score.describe(),
        "pick": pick.rule,
        "pick_reason": pick.reason,
        "heldout": TrialRecord(best).heldout,
        "params": json_safe(values),
        "layers": json_safe(layers),
        "fixed": json_safe(dict(cfg["objective"].get("fixed") or {})),
        "budget": cfg["objective"]["budget"],
        "seed": int(cfg["study"]["seed"]) + best.number,
    }
    # written whole, then renamed: workers finishing together never interleave
    return atomic_write_text(best_params_path(cfg["study"]), yaml.safe_dump(doc, sort_keys=False))


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def band_distance_text(alpha: float | None, band: tuple[float, float]) -> str:
    """How far ``alpha`` is from the band, signed: ``in band``, ``-0.12`` (below ``lo``), ``+1.3`` (above
    ``hi``), or ``n/a`` for a missing or failed fit (α ≤ 1)."""
    if alpha is None or not math.isfinite(alpha) or alpha <= 1.0:
        return "n/a"
    lo, hi = band
    if alpha < lo:
        return f"{alpha - lo:+.2f}"
    if alpha > hi:
        return f"{alpha - hi:+.2f}"
    return "in band"


def summary_text(study: optuna.Study, cfg: Mapping[str, Any], score: Score | None = None) -> str:
    """A plain-text summary: counts, best trial, its per-layer α, failures, analysis overhead.

    ``score`` is the run's :class:`~wwtune.score.Score` (built from ``cfg`` when not given).
    """
    score = score or make_score(cfg["score"], cfg["objective"])
    trials = study.get_trials(deepcopy=False)
    by_state = {s: [t for t in trials if t.state == s] for s in TrialState}
    name = study.study_name
    lines = [
        f"Study {name!r}: {len(trials)} trials — {len(by_state[TrialState.COMPLETE])} complete, "
        f"{len(by_state[TrialState.PRUNED])} pruned, {len(by_state[TrialState.FAIL])} failed "
        f"[{describe(cfg['storage'], name, studies_dir(cfg['study']))}]",
        f"Objective: {score.describe()}",
    ]
    infeasible = [t for t in by_state[TrialState.COMPLETE] if max(constraints(t), default=0.0) > 0]
    if infeasible:
        lines.append(
            f"Infeasible (kept, never best): {len(infeasible)} trial(s), e.g. #{infeasible[0].number}: "
            f"{TrialRecord(infeasible[0]).infeasible_reason}"
        )
    earlier = earlier_rule_trials(study)
    if earlier:
        lines.append(
            f"Scored under an earlier score rule (kept, not ranked): {len(earlier)} trial(s), "
            f"#{earlier[0].number}–#{earlier[-1].number} (the study continued with study.allow_config_change)"
        )
    best, pick = picked_trial(study)
    if best is None:
        lines.append("No complete, feasible trial: no best parameters.")
    else:
        ranked = [t for t in ranked_trials(study) if t.state == TrialState.COMPLETE]
        lines.append(f"Pick rule: {pick.rule} — {pick.reason}")
        lines += _best_lines(study, cfg, score, best, ranked)
    for label, state in (("Failed", TrialState.FAIL), ("Pruned", TrialState.PRUNED)):
        for t in by_state[state][:5]:
            record = TrialRecord(t)
            reason = record.fail_reason if state == TrialState.FAIL else record.prune_reason
            if isinstance(reason, Mapping):
                reason = reason.get("message", reason)
            lines.append(f"{label} #{t.number}: {reason or 'no reason stored'}")
        if len(by_state[state]) > 5:
            lines.append(f"{label}: … and {len(by_state[state]) - 5} more")
    train = sum(TrialRecord(t).time_train_s(0.0) for t in trials)
    analysis = sum(TrialRecord(t).time_analysis_s(0.0) for t in trials)
    if train + analysis > 0:
        lines.append(
            f"Time: training {train:.1f} s, spectral analysis {analysis:.1f} s "
            f"({analysis / (train + analysis):.1%} of trial time)"
        )
    trust = study.user_attrs.get(STUDY_TRUST)
    if trust:
        lines.append(format_trust(trust))
        calibration = calibration_text(study)
        if calibration:
            lines.append(calibration)
    path = best_params_path(cfg["study"])
    if best is not None and path.exists():
        lines.append(f"Best parameters: {path}")
    return "\n".join(lines)


def _best_lines(
    study: optuna.Study, cfg: Mapping[str, Any], score: Score, best: Any, complete: list[Any]
) -> list[str]:
    """The summary's lines about the best trial: score, params, per-layer α, the top five."""
    heldout = TrialRecord(best).heldout
    hname = (cfg["objective"].get("heldout") or {}).get("name", "heldout")
    value_text = (
        f"score {best.value:.4g}"
        if len(best.values) == 1
        else f"picked from the Pareto front: training loss {best.values[0]:.4g}, B {best.values[1]:.4g}"
    )
    lines = [
        f"Returned trial #{best.number} (the pick): {value_text}"
        + (
            f", held-out {hname} {heldout:.4g} (stored, not optimised)"
            if heldout is not None and score.kind != "heldout"
            else ""
        )
    ]
    values, layers = SearchSpace.from_config(cfg.get("search_space")).split(best.params)
    lines.append("  params: " + (", ".join(f"{k}={_fmt(v)}" for k, v in values.items()) or "(none)"))
    for pattern, settings in layers.items():
        lines.append(f"  layer {pattern}: " + ", ".join(f"{k}={_fmt(v)}" for k, v in settings.items()))
    table = TrialRecord(best).layers_attr
    if table:
        lines.append(
            f"  per-layer alpha at step {table['step']} (the last analysis; a step is an epoch in the"
            f" bundled tasks), target {band_text(score.band)}, eligible: num_evals >= {score.min_evals}:"
        )
        lines.append(
            f"    {'layer':<24} {'num_evals':>9} {'eligible':>8} {'alpha':>7} {'to band':>8}  warning"
        )
        for i, layer in enumerate(table["name"]):
            alpha = table["alpha"][i]
            lines.append(
                f"    {layer:<24} {table['num_evals'][i]:>9} {'yes' if table['eligible'][i] else 'no':>8}"
                f" {alpha if alpha is None else format(alpha, '.3f'):>7}"
                f" {band_distance_text(alpha, score.band):>8}  {table['warning'][i] or ''}"
            )
    top = sorted(
        (t for t in complete if t.values is not None and len(t.values) == 1 and t.value is not None),
        key=lambda t: (-t.value if study.direction.name == "MAXIMIZE" else t.value, t.number),
    )[:5]
    if len(top) > 1:
        parts = []
        for t in top:
            held = TrialRecord(t).heldout
            parts.append(
                f"#{t.number} {t.value:.4g}" + (f" (held-out {held:.3g})" if held is not None else "")
            )
        lines.append("  top trials: " + ", ".join(parts))
    return lines
