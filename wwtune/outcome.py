"""What a finished run leaves behind: ``best_params.yaml``, the trust report and the printed summary.

All three read the study through :mod:`wwtune.record`, and all three name the same best trial
(:func:`wwtune.record.best_trial`: the best COMPLETE, feasible trial).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.trial import TrialState

from wwtune.config import make_score
from wwtune.record import (
    STUDY_TRUST,
    TrialRecord,
    atomic_write_text,
    best_params_path,
    best_trial,
    constraints,
    json_safe,
    studies_dir,
)
from wwtune.score import Score
from wwtune.search_space import SearchSpace
from wwtune.storage import describe
from wwtune.trust import format_trust, trust_report

__all__ = ["store_trust", "summary_text", "write_best_params"]

_logger = logging.getLogger(__name__)


def store_trust(study: optuna.Study, heldout_direction: str | None) -> dict[str, Any] | None:
    """Compute the trust report and store it as the study user attr ``wwtune.trust``; None if no held-out.

    Only when the task has a held-out metric (``heldout_direction`` set) and at least one trial stored
    one (``wwtune.heldout``); otherwise nothing is stored and None is returned.
    """
    if heldout_direction is None:
        return None
    trials = study.get_trials(deepcopy=False)
    if not any(TrialRecord(t).heldout is not None for t in trials):
        return None
    report = json_safe(trust_report(trials, heldout_direction))
    study.set_user_attr(STUDY_TRUST, report)
    _logger.info("%s", report["summary"])
    return report


def write_best_params(
    study: optuna.Study, space: SearchSpace, cfg: Mapping[str, Any], score: Score
) -> Path | None:
    """Write ``best_params.yaml`` (params, per-layer settings, fixed values, score); None if no best."""
    best = best_trial(study)
    if best is None:
        return None
    values, layers = space.split(best.params)
    doc = {
        "study": study.study_name,
        "trial": best.number,
        "score": best.value,
        "score_rule": score.describe(),
        "heldout": TrialRecord(best).heldout,
        "params": json_safe(values),
        "layers": json_safe(layers),
        "fixed": json_safe(dict(cfg["objective"].get("fixed") or {})),
        "budget": cfg["objective"]["budget"],
        "seed": int(cfg["study"]["seed"]) + best.number,
    }
    # written whole, then renamed: workers finishing together never interleave
    return atomic_write_text(best_params_path(cfg), yaml.safe_dump(doc, sort_keys=False))


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def summary_text(study: optuna.Study, cfg: Mapping[str, Any], score: Score | None = None) -> str:
    """A plain-text summary: counts, best trial, its per-layer α, failures, analysis overhead.

    ``score`` is the run's :class:`~wwtune.score.Score` (built from ``cfg`` when not given).
    """
    score = score or make_score(cfg)
    trials = study.get_trials(deepcopy=False)
    by_state = {s: [t for t in trials if t.state == s] for s in TrialState}
    name = study.study_name
    lines = [
        f"Study {name!r}: {len(trials)} trials — {len(by_state[TrialState.COMPLETE])} complete, "
        f"{len(by_state[TrialState.PRUNED])} pruned, {len(by_state[TrialState.FAIL])} failed "
        f"[{describe(cfg['storage'], name, studies_dir(cfg))}]",
        f"Objective: {score.describe()}",
    ]
    infeasible = [t for t in by_state[TrialState.COMPLETE] if max(constraints(t), default=0.0) > 0]
    if infeasible:
        lines.append(
            f"Infeasible (kept, never best): {len(infeasible)} trial(s), e.g. #{infeasible[0].number}: "
            f"{TrialRecord(infeasible[0]).infeasible_reason}"
        )
    best = best_trial(study)
    if best is None:
        lines.append("No complete, feasible trial: no best parameters.")
    else:
        lines += _best_lines(study, cfg, score, best, by_state[TrialState.COMPLETE])
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
    path = best_params_path(cfg)
    if best is not None and path.exists():
        lines.append(f"Best parameters: {path}")
    return "\n".join(lines)


def _best_lines(
    study: optuna.Study, cfg: Mapping[str, Any], score: Score, best: Any, complete: list[Any]
) -> list[str]:
    """The summary's lines about the best trial: score, params, per-layer α, the top five."""
    heldout = TrialRecord(best).heldout
    hname = (cfg["objective"].get("heldout") or {}).get("name", "heldout")
    lines = [
        f"Best trial #{best.number}: score {best.value:.4g}"
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
            f"  per-layer alpha at step {table['step']} (eligible: num_evals >= {score.min_evals};"
            f" band [{score.band[0]:g}, {score.band[1]:g}]):"
        )
        lines.append(f"    {'layer':<24} {'num_evals':>9} {'eligible':>8} {'alpha':>7}  warning")
        for i, layer in enumerate(table["name"]):
            alpha = table["alpha"][i]
            lines.append(
                f"    {layer:<24} {table['num_evals'][i]:>9} {'yes' if table['eligible'][i] else 'no':>8}"
                f" {alpha if alpha is None else format(alpha, '.3f'):>7}  {table['warning'][i] or ''}"
            )
    top = sorted(
        (t for t in complete if t.value is not None),
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
