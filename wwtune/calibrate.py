"""Calibrate once: rank every data-free selector on a study's held-out metric, and name the override.

When a study stored a held-out metric, each data-free way of choosing its returned trial — the lowest
training loss, α alone, ``fit_band``, the default pick rule, the Pareto pick — is replayed on the same
trials (COMPLETE, feasible, with a held-out value, a final training loss and a per-layer table) and judged
by the held-out regret of its choice (0 = it chose the best trial). The best one's override
(``pick=train_loss``, ``score=fit_band pick=value`` …) is what a later study of the same task without
held-out data should use. It is measured on this study's own trials only: one task, one set of samples.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import pandas as pd
from optuna.trial import FrozenTrial, TrialState

from wwtune.pick import Candidate, PickRule
from wwtune.ranking import constraints, pareto_pick
from wwtune.record import TrialRecord
from wwtune.score import DEFAULT_BAND, Score

__all__ = ["SELECTORS", "format_calibration", "rank_selectors"]

#: the data-free selectors, by the override that selects them (the summary's words)
SELECTORS = (
    ("pick=train_loss", "the lowest training loss"),
    ("score=band pick=value", "α alone (distance to the band)"),
    ("score=fit_band pick=value", "fit_band (log10 loss + 5 × band distance)"),
    ("pick=default", "the default pick (lowest-loss 10%, fewest layers below the band)"),
    ("score=pareto", "the Pareto pick (training loss, band distance)"),
)


def rank_selectors(
    trials: Iterable[FrozenTrial],
    heldout_direction: str,
    band: Sequence[float] | None = None,
    min_evals: int = 50,
) -> list[dict[str, Any]]:
    """Each selector's choice and held-out regret on ``trials``, best (lowest regret) first; ties keep the
    order of :data:`SELECTORS`. Empty when fewer than 2 trials qualify or the held-out direction is
    unknown. Rows: ``override``, ``what``, ``trial``, ``heldout``, ``regret``."""
    if heldout_direction not in ("minimize", "maximize"):
        return []
    band = tuple(DEFAULT_BAND if band is None else band)
    rows = []
    for t in trials:
        if t.state != TrialState.COMPLETE or max(constraints(t), default=0.0) > 0:
            continue
        record = TrialRecord(t)
        held, loss, layers = record.heldout, record.final_train_loss, record.layers()
        if not _finite(held) or loss is None or layers is None or "alpha" not in layers.columns:
            continue
        rows.append((t.number, float(held), loss, layers))
    if len(rows) < 2:
        return []
    sign = 1.0 if heldout_direction == "maximize" else -1.0
    best = max(sign * h for _, h, _, _ in rows)
    out = []
    for order, (override, what) in enumerate(SELECTORS):
        i = _choose(override, rows, band, min_evals)
        if i is None:
            continue
        number, held = rows[i][0], rows[i][1]
        out.append(
            {"override": override, "what": what, "trial": number, "heldout": held,
             "regret": best - sign * held, "order": order}
        )  # fmt: skip
    out.sort(key=lambda r: (r["regret"], r["order"]))
    for r in out:
        del r["order"]
    return out


def format_calibration(rows: list[dict[str, Any]], n_trials: int | None = None) -> str:
    """The ranking as plain-text lines, and the exact override that would have picked best."""
    if not rows:
        return ""
    lines = [
        "Data-free selectors ranked on the held-out metric"
        + (f" ({n_trials} trials of this study)" if n_trials else "")
        + ":"
    ]
    for r in rows:
        row = f"#{r['trial']:<4} held-out {r['heldout']:.4g}, regret {r['regret']:.4g}  ({r['what']})"
        lines.append(f"  {r['override']:<26} {row}")
    top = rows[0]
    ties = [r["override"] for r in rows if abs(r["regret"] - top["regret"]) <= 1e-12]
    also = f" (tied: {', '.join(ties[1:])})" if len(ties) > 1 else ""
    lines.append(
        f"Calibration: on this task `{top['override']}` would have picked best{also}; use it for later "
        "studies of this task without held-out data (measured on this study's trials only)."
    )
    return "\n".join(lines)


def _choose(
    override: str, rows: list[tuple[int, float, float, pd.DataFrame]], band: tuple, min_evals: int
) -> int | None:
    """Index into ``rows`` of the selector's choice (ties: the lower loss, then the earlier trial)."""
    if override == "pick=train_loss" or override == "pick=default":
        rule = (
            PickRule(kind="train_loss")
            if override == "pick=train_loss"
            else PickRule(band=band, min_evals=min_evals)
        )
        got = rule.choose([Candidate(n, loss, layers) for n, _, loss, layers in rows])
        return None if got.number is None else [r[0] for r in rows].index(got.number)
    if override == "score=pareto":
        score = Score(kind="pareto", band=band, min_evals=min_evals)
        pairs = [score(layers, train_loss=loss).values or (math.nan, math.nan) for _, _, loss, layers in rows]
        return pareto_pick([p[0] for p in pairs], [p[-1] for p in pairs])
    kind, weight = ("band_distance", 5.0) if override.startswith("score=band") else ("fit_band", 5.0)
    score = Score(kind=kind, band=band, min_evals=min_evals, weight=weight)
    value: Callable[[int], float] = lambda i: _or_inf(score(rows[i][3], train_loss=rows[i][2]).value)  # noqa: E731
    return min(range(len(rows)), key=lambda i: (value(i), rows[i][2], rows[i][0]))


def _or_inf(x: float | None) -> float:
    return math.inf if x is None or not math.isfinite(x) else float(x)


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(float(x))
