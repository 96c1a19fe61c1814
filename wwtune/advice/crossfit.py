"""More data or more tuning, from the training data alone: cross-fitted learning curves and tuning gains.

For a task that can re-split its training data (``@task(supports_resplit=True)``, see
:mod:`wwtune.objective`), :func:`advise_crossfit` answers with numbers in the task's own loss units:

1. **Data gain.** The study's best configuration (lowest α score) is retrained on fractions ``f`` of the
   data one has (default 1/8, 1/4, 1/2, 3/4; the same epoch budget, as a user with more data would train)
   on ``splits`` re-splits (default 4; each split has its own shuffling and training seed), and each
   model's loss is measured on the part of the training data it did not see. A saturating power law
   ``L(n) = a + b·n^(−c)`` is fitted (:mod:`wwtune.learning_curve`) and extrapolated from 1× to 2×; the
   expected gain ``L(1×) − L(2×)`` gets a bootstrap interval (runs resampled within each fraction).
2. **Tuning gain.** Up to ``max_candidates`` complete trials of the study (best α scores first, default
   8) are retrained at the largest fraction on the same splits. On each split the configuration with the
   lowest mean unseen loss on the *other* splits is compared with the current best there (leave one split
   out, so the winner's curse stays out); the mean of these paired loss drops, bootstrapped over the
   splits and clipped at 0 (one can always keep the current configuration), is the expected gain from
   more tuning. The typical (median-score) trial's gap to the best, the study's trend and parameter
   importances are reported beside it.
3. **Verdict** (:func:`wwtune.learning_curve.compare_gains`): "more data" when the data gain's interval
   (default 90 %) lies wholly above the tuning gain's, "more tuning" when below, "inconclusive" only when
   they overlap.
4. **Spectral witness.** The data-curve runs' spectra give the change of mean α and of the cross-layer α
   spread per doubling of the data (OLS on log2 f): reported beside the verdict, not used by it. Tasks
   that cannot re-split get the spectral rule of :mod:`wwtune.advice` alone.

Cost with the defaults: ``splits × Σf`` (4 × 1.625 = 6.5) + ``splits × 0.75`` per other candidate
(7 × 3 = 21, + 3 for the typical trial when it is not among them) ≈ 27.5–30.5 full-data training runs,
i.e. about 2.3–2.5× a 12-trial study, less for larger studies (the candidates are capped).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from torch import nn

from wwtune.advice.rule import fit_trend
from wwtune.advice.runs import SpectraReporter, read_spectra
from wwtune.learning_curve import Gain, compare_gains, data_gain, fit_power_law, paired_gain
from wwtune.objective import UNSEEN_LOSS, Params, Split, TrainingDiverged, check_finite_weights
from wwtune.schema import defaults
from wwtune.score import Score
from wwtune.spectral import analyze as spectral_analyze

__all__ = [
    "CROSSFIT_DEFAULTS",
    "CURVE_FRACTIONS",
    "SplitRun",
    "advise_crossfit",
    "format_crossfit",
    "summarise_runs",
    "supports_resplit",
]

logger = logging.getLogger(__name__)

#: Fractions of the data one has at which the best configuration's learning curve is measured.
CURVE_FRACTIONS: tuple[float, ...] = (0.125, 0.25, 0.5, 0.75)

#: Options of :func:`advise_crossfit` and their defaults (``advise:`` keys of :data:`wwtune.schema.SCHEMA`).
CROSSFIT_DEFAULTS: dict[str, Any] = {
    k: defaults("advise")[k]
    for k in ("curve_fractions", "splits", "max_candidates", "level", "n_boot", "compare")
}


def supports_resplit(task: Callable[..., Any]) -> bool:
    """Whether ``task`` declares ``@task(supports_resplit=True)`` (it honours ``params.split``)."""
    return bool(getattr(task, "supports_resplit", False))


@dataclass
class SplitRun:
    """One re-split run: configuration, fraction of the data one has, split, loss on the unseen part."""

    config: str
    role: str  # "curve" (the current best's learning curve) or "eval" (another configuration)
    fraction: float
    split_seed: int
    seed: int
    unseen_loss: float | None = None
    heldout: float | None = None
    score: float | None = None
    mean_alpha: float | None = None
    spread: float | None = None
    status: str = "ok"
    reason: str = ""


def _run(
    task: Callable[..., Any],
    cand: Any,
    role: str,
    *,
    fixed: Mapping[str, Any] | None,
    budget: int,
    fraction: float,
    split_seed: int,
    seed: int,
    available_fraction: float,
    spectra: tuple[Score, Callable[[nn.Module], pd.DataFrame]] | None,
) -> SplitRun:
    params = Params(
        values={**dict(fixed or {}), **dict(cand.values)},
        layers={k: dict(v) for k, v in cand.layers.items()},
        budget=int(budget),
        seed=int(seed),
        data_fraction=float(available_fraction),
        split=Split(int(split_seed), float(fraction)),
    )
    rec = SplitRun(cand.label, role, float(fraction), int(split_seed), int(seed))
    reporter = SpectraReporter()
    try:
        result = task(params, reporter) or {}
    except TrainingDiverged as exc:
        rec.status, rec.reason = "failed", f"diverged: {exc}"
        return rec
    if not isinstance(result, Mapping) or result.get(UNSEEN_LOSS) is None:
        raise ValueError(
            f"The task declares supports_resplit but returned no {UNSEEN_LOSS!r} for params.split="
            f"{params.split}; return {{{UNSEEN_LOSS!r}: loss on the training examples the run did not use}}."
        )
    loss = float(result[UNSEEN_LOSS])
    rec.heldout = None if result.get("heldout") is None else float(result["heldout"])
    try:
        if not math.isfinite(loss):
            raise TrainingDiverged(f"unseen loss is {loss}")
        if reporter.model is not None:
            check_finite_weights(reporter.model)
    except TrainingDiverged as exc:
        rec.status, rec.reason = "failed", f"diverged: {exc}"
        return rec
    rec.unseen_loss = loss
    if spectra is not None and reporter.model is not None:
        rec.score, reason, rec.mean_alpha, rec.spread, _ = read_spectra(reporter.model, *spectra)
        if rec.score is None:
            rec.reason = f"spectra: {reason}"
    logger.info("advice %s run %s f=%.4g split=%d loss=%.4g", role, cand.label, fraction, split_seed, loss)
    return rec


def _ok(runs: Sequence[SplitRun], **match: Any) -> list[SplitRun]:
    return [r for r in runs if r.status == "ok" and all(getattr(r, k) == v for k, v in match.items())]


def _spectral_witness(curve: Sequence[SplitRun]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for attr, key in (("mean_alpha", "alpha"), ("spread", "spread")):
        pts = [(math.log2(r.fraction), getattr(r, attr)) for r in curve]
        pts = [(x, y) for x, y in pts if y is not None and math.isfinite(y)]
        if len({x for x, _ in pts}) < 2:
            out[f"{key}_slope"] = out[f"se_{key}"] = None
            continue
        tr = fit_trend([p[0] for p in pts], [p[1] for p in pts])
        out[f"{key}_slope"], out[f"se_{key}"] = tr.slope, tr.se_slope
        out[f"{key}_at_largest"] = tr.intercept + tr.slope * math.log2(max(r.fraction for r in curve))
    a, se_a = out.get("alpha_slope"), out.get("se_alpha")
    sp, se_sp = out.get("spread_slope"), out.get("se_spread")
    if a is None or sp is None:
        out["reading"] = "unavailable (too few scored runs)"
    elif (abs(a) >= 0.3 and abs(a) >= 2 * se_a) or (-sp >= 0.05 and -sp >= 2 * se_sp):
        out["reading"] = "data-sensitive (the spectra still move with the amount of data)"
    elif abs(a) + 2 * se_a < 0.3 and -sp + 2 * se_sp < 0.05:
        out["reading"] = "data-saturated (the spectra stay put as the data grows)"
    else:
        out["reading"] = "unclear"
    out["thresholds"] = "mean α ±0.3, spread −0.05 per doubling, 2 standard errors (wwtune.advice rules)"
    return out


def advise_crossfit(
    task: Callable[..., Any],
    candidates: Sequence[Any],
    *,
    typical: Any = None,
    fixed: Mapping[str, Any] | None = None,
    budget: int,
    available_fraction: float = 1.0,
    curve_fractions: Sequence[float] = CURVE_FRACTIONS,
    splits: int = 4,
    max_candidates: int = 8,
    level: float = 0.9,
    n_boot: int = 400,
    seed: int = 0,
    compare: str = "overlap",
    score: Score | None = None,
    analyze_fn: Callable[[nn.Module], pd.DataFrame] | None = None,
    study_summary: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The cross-fitted advice (module docstring) for ``candidates`` (the current best first).

    Args:
        task: a task declaring ``supports_resplit=True``.
        candidates: configurations with ``label``, ``values``, ``layers`` (``wwtune.advice.Candidate``),
            the current best (the one the study would deploy) first; the first ``max_candidates`` are
            compared.
        typical: the study's typical (median-score) configuration, measured on the same splits for
            the reported headroom (default: none).
        fixed: values put in ``params.values`` beside each candidate's (the objective's ``fixed``).
        budget: training budget per run (the same for every fraction).
        available_fraction: the ``params.data_fraction`` the study trained with (the data one has).
        curve_fractions: at least 3 distinct fractions in (0, 1) of that data (default 1/8 … 3/4).
        splits: evaluation splits (≥ 2; default 4); split ``k`` uses split seed and training seed
            ``seed + k``.
        max_candidates: most candidates compared, the current best included (default 8).
        level: interval level of both gains (default 0.9).
        n_boot: bootstrap resamples (default 400).
        seed: base seed of splits and bootstrap.
        compare: how the two gains decide (:func:`wwtune.learning_curve.compare_gains`), default
            ``"overlap"``.
        score, analyze_fn: how the spectral witness scores a trained model (defaults: ``Score()``,
            ``wwtune.analyze``); ``analyze_fn=None`` with ``score=None`` still analyses with the defaults.
        study_summary: the study's own trend (``wwtune.advice.tuning_headroom``), reported.
    """
    if not supports_resplit(task):
        name = getattr(task, "__qualname__", repr(task))
        raise ValueError(f"{name!r} does not declare supports_resplit=True; see wwtune.objective.")
    fr = sorted({float(f) for f in curve_fractions})
    if len(fr) < 3 or any(not (0.0 < f < 1.0) for f in fr):
        raise ValueError(
            f"curve_fractions must hold at least 3 distinct values in (0, 1) but got {curve_fractions!r}."
        )
    for name, value, least in (
        ("splits", splits, 2),
        ("max_candidates", max_candidates, 1),
        ("budget", budget, 1),
    ):
        if int(value) < least or isinstance(value, bool):
            raise ValueError(f"{name} must be an integer of at least {least} but got {value!r}.")
    if not (0.0 < float(available_fraction) <= 1.0):
        raise ValueError(f"available_fraction must be in (0, 1] but got {available_fraction!r}.")
    if not candidates:
        raise ValueError("candidates must hold at least the current best configuration.")
    if analyze_fn is None:
        analyze_fn = spectral_analyze
    spectra = (score or Score(), analyze_fn)
    common = {"fixed": fixed, "budget": budget, "available_fraction": available_fraction}
    f_top = fr[-1]
    best, others = candidates[0], list(candidates[1 : int(max_candidates)])
    runs: list[SplitRun] = []
    # 1. the best configuration's learning curve on the evaluation splits (spectra read for the witness)
    for k in range(int(splits)):
        for f in fr:
            runs.append(
                _run(
                    task,
                    best,
                    "curve",
                    fraction=f,
                    split_seed=seed + k,
                    seed=seed + k,
                    spectra=spectra,
                    **common,
                )
            )
    # 2. every other candidate (and the typical one) on the same splits at the largest fraction
    labels = {c.label for c in [best, *others]}
    pool = others + ([typical] if typical is not None and typical.label not in labels else [])
    for cand in pool:
        for k in range(int(splits)):
            runs.append(
                _run(
                    task,
                    cand,
                    "eval",
                    fraction=f_top,
                    split_seed=seed + k,
                    seed=seed + k,
                    spectra=None,
                    **common,
                )
            )
    out = summarise_runs(
        runs,
        best.label,
        [c.label for c in [best, *others]],
        typical.label if typical is not None else None,
        fr,
        level=level,
        n_boot=n_boot,
        seed=seed,
        compare=compare,
    )
    failed = [r for r in runs if r.status != "ok"]
    if failed:
        logger.warning("%d of %d advice runs failed: %s", len(failed), len(runs), failed[0].reason)
    return {
        **out,
        "study": dict(study_summary) if study_summary is not None else None,
        "runs": [asdict(r) for r in runs],
        "n_runs": len(runs),
        "run_equivalents": float(sum(r.fraction for r in runs)),
        "n_failed_runs": len(failed),
        "settings": {
            "curve_fractions": fr,
            "splits": int(splits),
            "max_candidates": int(max_candidates),
            "level": float(level),
            "n_boot": int(n_boot),
            "seed": int(seed),
            "compare": compare,
            "budget": int(budget),
            "available_fraction": float(available_fraction),
        },
    }


def summarise_runs(
    runs: Sequence[SplitRun],
    best_label: str,
    compared_labels: Sequence[str],
    typical_label: str | None,
    curve_fractions: Sequence[float],
    *,
    level: float = 0.9,
    n_boot: int = 400,
    seed: int = 0,
    compare: str = "overlap",
) -> dict[str, Any]:
    """Gains, verdict and witness from the runs of :func:`advise_crossfit` (no training: the rule alone,
    so a stored advice can be re-decided). ``compared_labels`` are the configurations the tuning gain may
    pick (the current best included); ``typical_label`` is only reported."""
    fr = sorted(float(f) for f in curve_fractions)
    f_top = fr[-1]
    labels = set(compared_labels)
    table: dict[str, dict[int, float]] = {
        best_label: {r.split_seed: r.unseen_loss for r in _ok(runs, role="curve", fraction=f_top)}
    }
    for r in _ok(runs, role="eval"):
        table.setdefault(r.config, {})[r.split_seed] = r.unseen_loss
    compared = {lab: t for lab, t in table.items() if lab in labels and t}
    mean_loss = {lab: float(np.mean(list(t.values()))) for lab, t in compared.items()}
    # 3. honest tuning gain: on each split, the candidate with the lowest mean loss on the other splits
    current, better, picks = [], [], []
    for k in sorted(table[best_label]):
        rest = {
            lab: float(np.mean([v for kk, v in t.items() if kk != k]))
            for lab, t in compared.items()
            if k in t and len(t) > 1
        }
        if best_label not in rest:
            continue
        pick = min(rest, key=lambda lab: (rest[lab], lab != best_label))
        current.append(table[best_label][k])
        better.append(table[pick][k])
        picks.append(pick)
    chosen = min(mean_loss, key=lambda lab: (mean_loss[lab], lab != best_label)) if mean_loss else best_label
    curve = _ok(runs, role="curve")
    n_curve = np.array([r.fraction for r in curve])
    l_curve = np.array([r.unseen_loss for r in curve], dtype=float)
    notes: list[str] = []
    if len(set(n_curve.tolist())) >= 3:
        fit = fit_power_law(n_curve, l_curve)
        dgain: Gain | None = data_gain(n_curve, l_curve, 1.0, 2.0, level=level, n_boot=n_boot, seed=seed)
        fit_d = asdict(fit)
        fit_d["at_1x"], fit_d["at_2x"] = float(fit(1.0)), float(fit(2.0))
    else:
        dgain, fit_d = None, None
        notes.append("the best configuration has fewer than 3 data fractions with usable runs")
    if len(current) >= 2:
        tgain: Gain | None = paired_gain(current, better, level=level, n_boot=n_boot, seed=seed)
        tune_text = (
            f"on each of {len(current)} splits the configuration best on the other splits "
            f"({', '.join(sorted(set(picks)))}) vs the current best ({best_label})"
        )
    else:
        tgain = None
        notes.append("fewer than 2 splits with usable runs of the current best and another configuration")
        tune_text = ""
    if dgain is None or tgain is None:
        decision = {"verdict": "inconclusive", "reason": "; ".join(notes), "margin": None}
    else:
        decision = compare_gains(dgain, tgain, by=compare)
        decision["reason"] = f"{decision['reason']}; {tune_text}"
    typical_gap = None
    if typical_label is not None:
        pairs = sorted(set(table.get(typical_label, {})) & set(table[best_label]))
        if pairs:
            typical_gap = float(np.mean([table[typical_label][k] - table[best_label][k] for k in pairs]))
    per_fraction = [[r.unseen_loss for r in curve if r.fraction == f] for f in fr]
    return {
        "method": "cross-fitted learning curve",
        "verdict": decision["verdict"],
        "reason": decision["reason"],
        "decision": {"margin": decision["margin"], "level": float(level), "compare": compare, "notes": notes},
        "data_gain": dgain.as_dict() if dgain else None,
        "tuning_gain": {
            **(tgain.as_dict() if tgain else {}),
            "chosen": chosen,
            "mean_losses": mean_loss,
            "picks": picks,
        },
        "typical_minus_best": typical_gap,
        "power_law": fit_d,
        "spectral_witness": _spectral_witness(curve),
        # the keys wwtune.report.plot_advice reads: the best configuration's unseen loss per fraction
        "data_fraction": [f for f, v in zip(fr, per_fraction, strict=True) if v],
        "score": [float(np.mean(v)) for v in per_fraction if v],
        "score_err": [float(np.std(v)) for v in per_fraction if v],
        "tuning_headroom": tgain.estimate if tgain else None,
        "metric": "loss of the best configuration on the training data it did not see (unseen_loss)",
        "heldout_note": "held-out values in runs are for validation only; the verdict never reads them",
    }


def format_crossfit(advice: Mapping[str, Any]) -> list[str]:
    """The CLI lines of a cross-fitted advice after the verdict line."""
    lines = [f"  {advice['reason']}"]
    d, t = advice.get("data_gain"), advice.get("tuning_gain") or {}
    if d:
        lines.append(f"  2× data: {d['estimate']:+.4f} [{d['low']:+.4f}, {d['high']:+.4f}] (unseen loss)")
    if t.get("estimate") is not None:
        lines.append(
            f"  more tuning: {t['estimate']:+.4f} [{t['low']:+.4f}, {t['high']:+.4f}] "
            f"(best alternative: {t['chosen']})"
        )
    w = advice.get("spectral_witness") or {}
    if w.get("alpha_slope") is not None:
        lines.append(
            f"  spectral witness: mean α {w['alpha_slope']:+.3f} ± {w['se_alpha']:.3f}, α spread "
            f"{w['spread_slope']:+.3f} ± {w['se_spread']:.3f} per doubling: {w['reading']}"
        )
    lines.append(
        f"  cost: {advice['n_runs']} training runs ({advice['run_equivalents']:.1f} full-data equivalents)"
    )
    return lines
