"""Did the α score pick what a held-out metric would have picked? Measured on the study's own trials.

:func:`trust_report` compares, over COMPLETE trials that stored both ``wwtune.score`` (the α score) and
``wwtune.heldout`` (the task's held-out metric), the ranking by α score with the ranking by held-out
metric, and the held-out cost of trusting the α score. :func:`format_trust` renders it for the CLI.

Sign convention: correlations are *oriented* so that +1 means "a better α score goes with a better
held-out metric" (by default: lower α score ⇔ better held-out), whatever the held-out direction.
Regrets are held-out gaps oriented so that 0 is the best and larger is worse.

The baseline: beside the α pick, the held-out oracle and a random pick, the report shows the trial with
the **lowest final training loss** (the last loss the task reported, ``wwtune.losses``) — the data-free
signal every user already has — with its held-out value and regret, and one sentence saying whether the
α score added anything over it. A task whose reported loss is not comparable across trials (e.g. it
includes a hyperparameter-dependent regulariser term) declares it with ``@task(loss_comparable=False)``
or ``objective.loss_comparable: false``; the baseline is then shown as unavailable with that reason. When
the study optimised another score (``fit_band``, ``pareto``, ``train_loss``), its own pick is judged too.

Verdict rule: "inconclusive" when fewer than ``min_trials`` (default 10) trials qualify, when either
rank correlation is undefined (constant scores or held-out values), or when the larger of the two
two-sided p-values (Spearman, Kendall) is at least ``p_threshold`` (default 0.05); "poorly" when the
oriented Spearman correlation is significantly negative. A significantly positive correlation gives
"well" only if the α pick itself is good: its regret is below half the best-vs-median gap
(``regret_vs_median < 0.5``) and not above the training-loss pick's regret; otherwise "mixed" (α ranked
the trials on the whole, but trusting its pick cost more than that), with the reason.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
from optuna.trial import FrozenTrial, TrialState
from scipy import stats

from wwtune.ranking import constraints
from wwtune.record import TrialRecord

__all__ = ["format_trust", "trust_report"]

#: the α pick is "good" when its regret is below this share of the best-vs-median gap
GOOD_PICK_VS_MEDIAN = 0.5
_DIRECTIONS = ("minimize", "maximize")


def trust_report(
    trials: Iterable[FrozenTrial],
    heldout_direction: str,
    *,
    score_direction: str = "minimize",
    min_trials: int = 10,
    p_threshold: float = 0.05,
    loss_comparable: bool | str = True,
    study_pick: int | None = None,
    study_pick_label: str | None = None,
) -> dict[str, Any]:
    """How well the α score ranked the trials, judged by the held-out metric.

    Args:
        trials: the study's trials (any state; only COMPLETE, feasible ones — ``wwtune.constraint`` not
            violated — with finite ``wwtune.score`` and ``wwtune.heldout`` user attrs count).
        heldout_direction: ``"maximize"`` (e.g. accuracy) or ``"minimize"`` (e.g. loss).
        score_direction: direction of the α score, ``"minimize"`` (default: wwtune's scores are
            distances) or ``"maximize"``.
        min_trials: fewest qualifying trials for a verdict other than "inconclusive". Default 10.
        p_threshold: the verdict is "inconclusive" unless both p-values are below this. Default 0.05.
        loss_comparable: False (or a string: the reason) when the task's reported loss cannot be compared
            across trials; the training-loss baseline is then reported as unavailable.
        study_pick: the trial number the study itself recommends when its objective is not the α score
            (e.g. ``score=fit_band``); judged like the α pick. ``study_pick_label`` names its score.

    Returns:
        A JSON-serialisable dict: ``n`` (qualifying trials), ``n_excluded`` (complete trials without a
        finite score or held-out value), ``heldout_direction``, ``score_direction``, ``convention``,
        ``spearman``/``spearman_p``, ``kendall``/``kendall_p`` (oriented correlations, two-sided
        p-values; :obj:`None` when undefined), ``alpha_best`` / ``heldout_best`` / ``median``
        (``{"trial": number, "score": ..., "heldout": ...}``; ``median`` has the median held-out value
        and the trial closest to it), ``regret`` (held-out gap of the α-best trial to the best, ≥ 0),
        ``regret_vs_median`` (regret divided by the best-vs-median gap: 0 = picked the best, 1 = no
        better than the median trial; :obj:`None` when that gap is 0), ``random_regret`` (expected regret
        of picking a trial at random), ``train_loss_best`` (the lowest-final-training-loss trial, with
        ``train_loss``) and ``train_loss_regret`` (:obj:`None` with ``train_loss_unavailable`` giving the
        reason when the baseline cannot be computed), ``study_pick`` / ``study_pick_regret`` (when given),
        ``alpha_vs_train_loss`` (the plain sentence), ``verdict`` (``"well"``, ``"mixed"``, ``"poorly"``
        or ``"inconclusive"``), ``reason`` and ``summary`` (one sentence with the numbers).
    """
    if heldout_direction not in _DIRECTIONS:
        raise ValueError(
            f"heldout_direction must be one of {list(_DIRECTIONS)} but got {heldout_direction!r}."
        )
    if score_direction not in _DIRECTIONS:
        raise ValueError(f"score_direction must be one of {list(_DIRECTIONS)} but got {score_direction!r}.")
    if min_trials < 3:
        raise ValueError(f"min_trials must be at least 3 but got {min_trials}.")
    if not 0.0 < p_threshold < 1.0:
        raise ValueError(f"p_threshold must be in (0, 1) but got {p_threshold}.")

    numbers, scores, heldouts, losses, n_excluded = [], [], [], [], 0
    for t in trials:
        if t.state != TrialState.COMPLETE or max(constraints(t), default=0.0) > 0:
            continue  # infeasible trials (diverged, loss did not fall) are never a pick: not compared
        record = TrialRecord(t)
        score, heldout = _number(record.stored_score), _number(record.heldout)
        if score is None or heldout is None:
            n_excluded += 1
            continue
        numbers.append(t.number)
        scores.append(score)
        heldouts.append(heldout)
        losses.append(final_train_loss(t))

    n = len(numbers)
    report: dict[str, Any] = {
        "n": n,
        "n_excluded": n_excluded,
        "heldout_direction": heldout_direction,
        "score_direction": score_direction,
        "convention": (
            f"+1 = a better α score ({'lower' if score_direction == 'minimize' else 'higher'}) goes with a "
            f"better held-out metric ({'higher' if heldout_direction == 'maximize' else 'lower'})"
        ),
        "min_trials": min_trials,
        "p_threshold": p_threshold,
    }
    if n == 0:
        report.update(
            dict.fromkeys(
                (
                    "spearman",
                    "spearman_p",
                    "kendall",
                    "kendall_p",
                    "alpha_best",
                    "heldout_best",
                    "median",
                    "regret",
                    "regret_vs_median",
                    "random_regret",
                    "train_loss_best",
                    "train_loss_regret",
                    "study_pick",
                    "study_pick_regret",
                    "alpha_vs_train_loss",
                ),
            )
        )
        return _with_verdict(
            report, "inconclusive", "no completed trial has both an α score and a held-out metric"
        )

    s = np.asarray(scores, dtype=float)
    h = np.asarray(heldouts, dtype=float)
    # Oriented copies: larger = better for both, so +1 correlation means α ranked like held-out.
    good_s = -s if score_direction == "minimize" else s
    good_h = h if heldout_direction == "maximize" else -h

    report.update(_correlations(good_s, good_h))

    i_alpha = _argbest(good_s, numbers)
    i_best = _argbest(good_h, numbers)
    median_value = float(np.median(h))
    i_median = int(np.argmin(np.abs(h - median_value)))
    report["alpha_best"] = _entry(numbers, s, h, i_alpha)
    report["heldout_best"] = _entry(numbers, s, h, i_best)
    report["median"] = {**_entry(numbers, s, h, i_median), "heldout": median_value}

    best_good = float(good_h[i_best])
    regret = best_good - float(good_h[i_alpha])
    median_gap = best_good - float(np.median(good_h))
    report["regret"] = regret
    report["regret_vs_median"] = regret / median_gap if median_gap > 0 else None
    report["random_regret"] = best_good - float(np.mean(good_h))

    # the baseline: the lowest final training loss (the data-free signal the user already has)
    report["train_loss_best"] = report["train_loss_regret"] = None
    report["train_loss_unavailable"] = None
    finite = [i for i, v in enumerate(losses) if v is not None]
    if loss_comparable is not True:
        report["train_loss_unavailable"] = (
            loss_comparable
            if isinstance(loss_comparable, str)
            else "the task declares its training loss not comparable across trials (loss_comparable=False)"
        )
    elif not finite:
        report["train_loss_unavailable"] = "no compared trial stored its training losses (wwtune.losses)"
    else:
        i_loss = min(finite, key=lambda i: (losses[i], numbers[i]))
        report["train_loss_best"] = {**_entry(numbers, s, h, i_loss), "train_loss": float(losses[i_loss])}
        report["train_loss_regret"] = best_good - float(good_h[i_loss])
    report["study_pick"] = report["study_pick_regret"] = None
    if study_pick is not None and study_pick in numbers:
        i_pick = numbers.index(study_pick)
        report["study_pick"] = {**_entry(numbers, s, h, i_pick), "score_kind": study_pick_label}
        report["study_pick_regret"] = best_good - float(good_h[i_pick])
    report["alpha_vs_train_loss"] = _versus(report, study_pick_label)

    if n < min_trials:
        return _with_verdict(report, "inconclusive", f"only {n} trials (fewer than {min_trials})")
    if report["spearman"] is None or report["kendall"] is None:
        return _with_verdict(report, "inconclusive", "α scores or held-out values are all equal")
    p = max(report["spearman_p"], report["kendall_p"])
    if p >= p_threshold:
        return _with_verdict(report, "inconclusive", f"p = {p:.3g} is not below {p_threshold:g}")
    if report["spearman"] <= 0:
        return _with_verdict(report, "poorly", f"p = {p:.3g} < {p_threshold:g}, correlation negative")
    why = f"p = {p:.3g} < {p_threshold:g}, correlation positive"
    share = report["regret_vs_median"]
    if share is not None and share >= GOOD_PICK_VS_MEDIAN:
        return _with_verdict(
            report, "mixed", f"{why}, but the α pick's regret is {share:.2f} of the best-vs-median gap"
        )
    baseline = report["train_loss_regret"]
    if baseline is not None and regret > baseline + 1e-12:
        return _with_verdict(
            report,
            "mixed",
            f"{why}, but the α pick (regret {regret:.4g}) did worse than the lowest training loss "
            f"(regret {baseline:.4g})",
        )
    return _with_verdict(report, "well", f"{why}; its pick beat the median and the training-loss pick")


def format_trust(report: dict[str, Any]) -> str:
    """Render a :func:`trust_report` result as a few plain-text lines for the CLI summary."""
    lines = [f"Trust in the α score: {report['summary']}"]
    if report["n"] == 0:
        return "\n".join(lines)
    lines.append(
        f"  trials compared: {report['n']}"
        + (
            f" ({report['n_excluded']} complete trials without score or held-out left out)"
            if report["n_excluded"]
            else ""
        )
    )
    lines.append(
        f"  Spearman {_fmt(report['spearman'])} (p = {_fmt(report['spearman_p'])}), "
        f"Kendall {_fmt(report['kendall'])} (p = {_fmt(report['kendall_p'])}); {report['convention']}"
    )
    for label, key in (("α-best", "alpha_best"), ("held-out-best", "heldout_best")):
        e = report[key]
        lines.append(
            f"  {label + ' trial':<20} #{e['trial']}: "
            f"held-out {_fmt(e['heldout'])}, α score {_fmt(e['score'])}"
        )
    if report.get("train_loss_best"):
        e = report["train_loss_best"]
        lines.append(
            f"  {'lowest-train-loss':<20} #{e['trial']}: held-out {_fmt(e['heldout'])}, "
            f"training loss {_fmt(e['train_loss'])}, regret {_fmt(report['train_loss_regret'])}"
        )
    elif report.get("train_loss_unavailable"):
        lines.append(f"  {'lowest-train-loss':<20} unavailable: {report['train_loss_unavailable']}")
    if report.get("study_pick"):
        e = report["study_pick"]
        lines.append(
            f"  {'study pick (' + str(e.get('score_kind')) + ')':<20} #{e['trial']}: held-out "
            f"{_fmt(e['heldout'])}, regret {_fmt(report['study_pick_regret'])}"
        )
    lines.append(f"  {'median held-out':<20} {_fmt(report['median']['heldout'])}")
    lines.append(
        f"  regret of trusting α: {_fmt(report['regret'])}"
        + (
            f" ({_fmt(report['regret_vs_median'])} of the best-vs-median gap)"
            if report["regret_vs_median"] is not None
            else ""
        )
        + f"; expected regret of a random pick: {_fmt(report['random_regret'])}"
    )
    if report.get("alpha_vs_train_loss"):
        lines.append(f"  {report['alpha_vs_train_loss']}")
    return "\n".join(lines)


def final_train_loss(trial: FrozenTrial) -> float | None:
    """The last training loss the task reported (``wwtune.losses``), or None when missing or non-finite."""
    return TrialRecord(trial).final_train_loss


def _versus(report: dict[str, Any], study_label: str | None) -> str:
    """The plain sentence: did the α score (and the study's own pick) add anything over the training loss?"""
    if report["train_loss_regret"] is None:
        return f"Training-loss baseline unavailable: {report['train_loss_unavailable']}."
    base, tol = report["train_loss_regret"], 1e-12
    parts = []
    pairs = [("the α score", report["regret"])]
    if study_label not in (None, "band_distance"):
        pairs.append((f"the study's score ({study_label})", report.get("study_pick_regret")))
    for label, regret in pairs:
        if regret is None:
            continue
        if regret < base - tol:
            verdict = f"{label} added something over the training loss"
        elif regret > base + tol:
            verdict = f"{label} did worse than the training loss alone"
        else:
            verdict = f"{label} added nothing over the training loss"
        parts.append(f"{verdict} (regret {regret:.4g} vs {base:.4g} for the lowest-training-loss pick)")
    return ("On this task " + "; ".join(parts) + ".") if parts else ""


# --------------------------------------------------------------------------------------------------


def _number(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _correlations(good_s: np.ndarray, good_h: np.ndarray) -> dict[str, float | None]:
    out: dict[str, float | None] = dict.fromkeys(("spearman", "spearman_p", "kendall", "kendall_p"))
    if len(good_s) < 3 or np.ptp(good_s) == 0 or np.ptp(good_h) == 0:
        return out  # rank correlation undefined (or meaningless) here
    rho = stats.spearmanr(good_s, good_h)
    tau = stats.kendalltau(good_s, good_h)
    out["spearman"], out["spearman_p"] = float(rho.statistic), float(rho.pvalue)
    out["kendall"], out["kendall_p"] = float(tau.statistic), float(tau.pvalue)
    return out


def _argbest(good: np.ndarray, numbers: list[int]) -> int:
    """Index of the largest value; ties go to the earliest trial."""
    best = np.flatnonzero(good == good.max())
    return int(min(best, key=lambda i: numbers[i]))


def _entry(numbers: list[int], s: np.ndarray, h: np.ndarray, i: int) -> dict[str, Any]:
    return {"trial": int(numbers[i]), "score": float(s[i]), "heldout": float(h[i])}


def _with_verdict(report: dict[str, Any], verdict: str, reason: str) -> dict[str, Any]:
    report["verdict"] = verdict
    report["reason"] = reason
    if verdict == "inconclusive":
        head = "inconclusive whether α ranked trials well on this task"
    else:
        head = f"α ranked trials {verdict} on this task"
    numbers = []
    if report.get("spearman") is not None:
        numbers.append(f"Spearman {report['spearman']:+.2f}, Kendall {report['kendall']:+.2f}")
    numbers.append(f"n = {report['n']}")
    if report.get("regret") is not None:
        numbers.append(f"regret {report['regret']:.4g}")
    report["summary"] = f"{head} ({', '.join(numbers)}; {reason})."
    return report


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4g}"
