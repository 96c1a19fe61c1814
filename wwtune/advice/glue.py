"""The whole advice: run it (:func:`advise`), keep it (:func:`save_advice`), say it
(:func:`format_advice`), and ``mode=advise`` from a composed config (:func:`run_advice`)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from torch import nn

from wwtune.advice import runs as retraining
from wwtune.advice.crossfit import CROSSFIT_DEFAULTS, advise_crossfit, format_crossfit, supports_resplit
from wwtune.advice.rule import DecisionRule, Trend, decide, trend_of, tuning_headroom
from wwtune.config import analysis_options, load_task, make_score
from wwtune.record import STUDY_ADVICE, atomic_write_text, json_safe, study_folder
from wwtune.report.advice_plot import plot_advice
from wwtune.schema import check_section, defaults
from wwtune.score import Score
from wwtune.search_space import SearchSpace
from wwtune.spectral import analyze
from wwtune.study import open_existing_study

__all__ = ["ADVISE_DEFAULTS", "advise", "format_advice", "run_advice", "save_advice"]

logger = logging.getLogger("wwtune.advice")


def advise(
    task: Callable[..., Any],
    study: Any = None,
    *,
    candidates: tuple[retraining.Candidate, retraining.Candidate] | None = None,
    fixed: Mapping[str, Any] | None = None,
    budget: int,
    fractions: Sequence[float] = retraining.DEFAULT_FRACTIONS,
    seeds: Sequence[int] = (0, 1),
    available_fraction: float = 1.0,
    score: Score | None = None,
    budget_per_data: bool = True,
    rule: DecisionRule | None = None,
    analyze_fn: Callable[[nn.Module], pd.DataFrame] | None = None,
    params_from_trial: Callable[[Any], tuple[dict[str, Any], dict[str, dict[str, Any]]]] | None = None,
    method: str = "auto",
    crossfit: Mapping[str, Any] | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """The data-vs-tuning advice: cross-fitted learning curves when the task can re-split its data
    (``method="auto"`` or ``"crossfit"``; :mod:`wwtune.advice.crossfit`, options ``crossfit`` = keyword
    arguments of :func:`~wwtune.advice.crossfit.advise_crossfit`, ``seed`` its base seed), else the
    spectral rule (``method="spectral"``, or a task without ``supports_resplit``: the advice says so).

    The spectral rule retrains the best and typical configurations at several data fractions.

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
    retraining.check_task(task)
    if method not in ("auto", "crossfit", "spectral"):
        raise ValueError(f"method must be 'auto', 'crossfit' or 'spectral' but got {method!r}.")
    resplit = supports_resplit(task)
    if method == "crossfit" and not resplit:
        raise ValueError(_NO_RESPLIT.format(name=getattr(task, "__qualname__", repr(task))))
    if method != "spectral" and resplit:
        how_cf = {"fixed": fixed, "budget": budget, "available_fraction": available_fraction}
        how_cf.update(score=score, analyze_fn=analyze_fn, seed=seed)
        return _advise_by_crossfit(task, study, candidates, params_from_trial, dict(crossfit or {}), how_cf)
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
        candidates = retraining.pick_candidates(study, params_from_trial)
    rule = rule or DecisionRule()
    score = score or Score()
    runs: list[retraining.RunRecord] = []
    trends: dict[str, dict[str, Any]] = {}
    trend_objs: dict[str, dict[str, Trend | None]] = {}
    # how each candidate is retrained (measure_data_curve's settings)
    how: dict[str, Any] = {"fixed": fixed, "budget": budget, "fractions": fr, "seeds": seeds}
    how.update(available_fraction=available_fraction, score=score, budget_per_data=budget_per_data)
    for cand in candidates:
        recs = retraining.measure_data_curve(task, cand, analyze_fn=analyze_fn, **how)
        runs.extend(recs)
        per = {attr: trend_of(recs, attr) for attr in ("score", "mean_alpha", "spread")}
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
        "method": "spectral only",
    }
    if not resplit:
        advice["note"] = _NO_RESPLIT.format(name=getattr(task, "__qualname__", repr(task)))
        advice["reason"] = f"spectral only: {advice['reason']}"
    if failed:
        logger.warning("%d of %d advice runs failed: %s", len(failed), len(runs), failed[0].reason)
    return json_safe(advice)


_NO_RESPLIT = (
    "Task {name!r} does not declare supports_resplit=True, so the advisor cannot measure a learning curve "
    "on the training data: this advice is spectral only (α trends, no loss units). To get the "
    "cross-fitted advice, honour params.split and return 'unseen_loss' (see wwtune.objective) and mark "
    "the task with @wwtune.objective.task(supports_data_fraction=True, supports_resplit=True)."
)


def _advise_by_crossfit(
    task: Callable[..., Any],
    study: Any,
    candidates: Sequence[retraining.Candidate] | None,
    params_from_trial: Callable[[Any], tuple[dict[str, Any], dict[str, dict[str, Any]]]] | None,
    options: dict[str, Any],
    how: dict[str, Any],
) -> dict[str, Any]:
    unknown = sorted(set(options) - set(CROSSFIT_DEFAULTS))
    if unknown:
        raise ValueError(f"Unknown crossfit option(s) {unknown}; allowed: {sorted(CROSSFIT_DEFAULTS)}.")
    if candidates is None:
        if study is None:
            raise ValueError("Give a study (its trials are compared) or candidates=(best, other, ...).")
        cands = retraining.rank_candidates(study, params_from_trial)
        typical = cands[len(cands) // 2]
    else:
        cands = list(candidates)
        typical = cands[1] if len(cands) > 1 else None
    summary = tuning_headroom(study) if study is not None else None
    advice = advise_crossfit(task, cands, typical=typical, study_summary=summary, **how, **options)
    chosen = (advice.get("tuning_gain") or {}).get("chosen")
    shown = {
        "best": cands[0],
        "typical": typical,
        "best_alternative": next((c for c in cands if c.label == chosen), None),
    }
    advice["candidates"] = {
        role: {
            "label": c.label,
            "trial_number": c.trial_number,
            "study_score": c.study_score,
            "values": dict(c.values),
            "layers": {k: dict(v) for k, v in c.layers.items()},
        }
        for role, c in shown.items()
        if c is not None
    }
    # one paragraph for the HTML report's advice section (it shows "summary" under the verdict)
    advice["summary"] = "; ".join(line.strip() for line in format_crossfit(advice)[1:])
    return json_safe(advice)


def save_advice(advice: Mapping[str, Any], out_dir: str | Path, study: Any = None) -> dict[str, Path]:
    """Write ``advice.json`` and ``advice.png`` into ``out_dir``; store ``wwtune.advice`` on the study."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "advice.json", "png": out / "advice.png"}
    clean = json_safe(advice)
    atomic_write_text(paths["json"], json.dumps(clean, indent=2, allow_nan=False))
    plot_advice(clean).savefig(paths["png"], dpi=110)
    if study is not None:
        study.set_user_attr(STUDY_ADVICE, clean)
    return paths


def format_advice(advice: Mapping[str, Any]) -> str:
    """A few lines for the CLI to print: the verdict, the numbers behind it and the study summary."""
    d = advice.get("decision") or {}
    lines = [f"Advice: {advice['verdict'].upper()}"]
    if advice.get("method") == "cross-fitted learning curve":
        lines += format_crossfit(advice)
    else:
        lines.append(f"  {advice['reason']}")
        if advice.get("note"):
            lines.append(f"  {advice['note']}")
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


#: Keys of the ``advise:`` config block and their defaults (declared in :data:`wwtune.schema.SCHEMA`).
ADVISE_DEFAULTS: dict[str, Any] = defaults("advise")


def run_advice(cfg: Mapping[str, Any], *, study: Any = None, score: Score | None = None) -> dict[str, Any]:
    """``mode=advise``: advise on the study described by the composed config and save the result.

    Reads ``study.name``/``study.studies_dir``/``storage`` (to open the study unless ``study`` is given),
    ``objective.task``/``budget``/``fixed``/``data_fraction`` (the data the user has), ``search_space``
    (to turn trials back into per-layer settings), ``score``, ``analysis`` (keyword arguments of
    ``wwtune.analyze``) and the ``advise`` block (keys of :data:`ADVISE_DEFAULTS`). Writes
    ``<studies_dir>/<name>/advice.json`` and ``advice.png`` and the study user attr ``wwtune.advice``;
    returns the advice dict (print it with :func:`format_advice`). ``score`` is the run's
    :class:`~wwtune.score.Score` when the caller built it (default: from ``cfg``).
    """
    block = dict(cfg.get("advise") or {})
    check_section("advise", block)  # ConfigError (a ValueError) naming a bad key or value
    opts = {**ADVISE_DEFAULTS, **block}
    objective = cfg["objective"]
    if study is None:
        study = open_existing_study({**cfg, "mode": "advise"})
    task_fn = load_task(objective["task"])
    retraining.check_task(task_fn)
    space = SearchSpace.from_config(cfg.get("search_space"))
    score = score or make_score(cfg["score"], objective)
    if score.kind == "heldout":
        raise ValueError(
            "mode=advise needs an α score (score.kind band_distance, mean_alpha, …), not heldout."
        )
    # the fit scores (train_loss, fit_band, pareto): the retraining runs are compared by their α score
    score = score.alpha_score()
    analysis = analysis_options(cfg.get("analysis"))
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
        analyze_fn=lambda model: analyze(model, analysis),
        params_from_trial=lambda trial: space.split(trial.params),
        method=str(opts["method"]),
        crossfit={k: opts[k] for k in CROSSFIT_DEFAULTS},
        seed=int(cfg["study"].get("seed", 0)),
    )
    paths = save_advice(advice, study_folder(cfg["study"]), study=study)
    logger.info("advice saved to %s and %s", paths["json"], paths["png"])
    return advice
