"""Plots of a whole study: score history, α across trials and layers, α score against held-out metric.

Each takes an Optuna study (any storage) or its ``FrozenTrial`` list, reads the stored record through
:mod:`wwtune.record`, and returns a ``matplotlib.figure.Figure`` (object API, no pyplot state).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure
from optuna.trial import FrozenTrial, TrialState

from wwtune.record import (
    STUDY_HELDOUT_DIRECTION,
    TrialRecord,
    alpha_values,
    finite_or_none,
    study_attr,
    trial_score,
    trials_of,
)
from wwtune.report.data import layers_frame, resolve_band
from wwtune.report.plots import COLORS, new_figure

__all__ = [
    "alpha_matrix",
    "plot_alpha_heatmap",
    "plot_pareto_front",
    "plot_score_history",
    "plot_trust_scatter",
]


# ---------------------------------------------------------------------------------------------- studies
def _direction(study_or_trials: Any, direction: str | None) -> str:
    if direction is None:
        directions = getattr(study_or_trials, "directions", None)
        direction = directions[0].name.lower() if directions and len(directions) == 1 else "minimize"
    if direction not in ("minimize", "maximize"):
        raise ValueError(f"direction must be 'minimize' or 'maximize' but got {direction!r}.")
    return direction


def plot_score_history(
    study_or_trials: Any, *, direction: str | None = None, score_label: str = "score"
) -> Figure:
    """Score of every trial in order, the best score so far, pruned and failed trials marked.

    Args:
        study_or_trials: an Optuna study (any storage) or a sequence of ``FrozenTrial``.
        direction: ``"minimize"`` or ``"maximize"``; default: the study's direction (minimize for trials).
        score_label: the y-axis' name of the per-trial value (the summary's words).

    The y-limits are robust: scores more than 3 inter-quartile ranges beyond the quartiles are drawn as
    arrows at the edge ("off the scale"), so one outlier does not flatten the others.

    Completed trials are blue dots, pruned trials orange triangles at their last reported score, failed
    trials grey crosses along the top edge (Optuna gives them no value, so they are not ranked).
    """
    trials = trials_of(study_or_trials)
    direction = _direction(study_or_trials, direction)
    fig = new_figure(width=9.0)
    ax = fig.add_subplot()
    complete = [(t.number, trial_score(t)) for t in trials if t.state == TrialState.COMPLETE]
    complete = [(n, s) for n, s in complete if s is not None]
    pruned = [(t.number, trial_score(t)) for t in trials if t.state == TrialState.PRUNED]
    pruned = [(n, s) for n, s in pruned if s is not None]
    failed = [t.number for t in trials if t.state == TrialState.FAIL]
    if complete:
        xs, ys = (np.array(v, dtype=float) for v in zip(*complete, strict=True))
        ax.scatter(xs, ys, color=COLORS["ok"], s=30, zorder=3, label="completed trial", gid="complete")
        best = np.minimum.accumulate(ys) if direction == "minimize" else np.maximum.accumulate(ys)
        ax.step(
            np.append(xs, trials[-1].number),
            np.append(best, best[-1]),
            where="post",
            color=COLORS["band"],
            lw=2,
            label="best so far",
            gid="best_so_far",
        )
    if pruned:
        xs, ys = (np.array(v, dtype=float) for v in zip(*pruned, strict=True))
        ax.scatter(
            xs,
            ys,
            marker="v",
            color=COLORS["pruned"],
            s=36,
            zorder=3,
            label="pruned (last reported score)",
            gid="pruned",
        )
    if failed:
        ax.scatter(
            failed,
            np.full(len(failed), 0.97),
            marker="x",
            color=COLORS["failed"],
            s=40,
            transform=ax.get_xaxis_transform(),
            clip_on=False,
            label="failed (not ranked)",
            gid="failed",
        )
    if not trials:
        ax.text(0.5, 0.5, "no trials yet", ha="center", va="center", transform=ax.transAxes)
    _robust_ylim(ax, [s for _, s in complete + pruned], [n for n, _ in complete + pruned])
    better = "lower" if direction == "minimize" else "higher"
    ax.set_xlabel("trial number")
    ax.set_ylabel(f"{score_label} ({better} is better)")
    ax.set_title("Score history")
    ax.grid(alpha=0.3)
    if complete or pruned or failed:
        ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    return fig


def _robust_ylim(ax: Any, values: list[float], numbers: list[int]) -> None:
    """Limit the y-axis to the quartiles ± 3 IQR when some scores lie beyond; mark those at the edge."""
    ys = np.asarray(values, dtype=float)
    if len(ys) < 4:
        return
    q1, q3 = np.percentile(ys, [25, 75])
    iqr = q3 - q1
    lo, hi = q1 - 3 * iqr, q3 + 3 * iqr
    off = (ys < lo) | (ys > hi)
    if iqr <= 0 or not off.any():
        return
    inside = ys[~off]
    pad = 0.08 * max(float(np.ptp(inside)), 1e-9)
    bottom, top = float(inside.min()) - pad, float(inside.max()) + pad
    ax.set_ylim(bottom, top)
    xs = np.asarray(numbers, dtype=float)[off]
    edge = np.where(ys[off] > hi, top, bottom)
    marker = ["^" if y > hi else "v" for y in ys[off]]
    for x, y, m in zip(xs, edge, marker, strict=True):
        ax.scatter([x], [y], marker=m, color=COLORS["failed"], s=50, zorder=4, clip_on=False, gid="off_scale")
    ax.scatter([], [], marker="^", color=COLORS["failed"], label=f"off the scale ({int(off.sum())})")


def alpha_matrix(study_or_trials: Any) -> tuple[np.ndarray, list[FrozenTrial], list[str]]:
    """α of each trial (rows, trials with stored layers) × layer (columns, first-seen order); NaN = no fit."""
    rows, names, index = [], [], {}
    for t in trials_of(study_or_trials):
        df = layers_frame(t)
        if df is None or "alpha" not in df.columns:
            continue
        values = dict(zip(df["name"].astype(str), alpha_values(df), strict=True))
        for name in values:
            if name not in index:
                index[name] = len(names)
                names.append(name)
        rows.append((t, values))
    mat = np.full((len(rows), len(names)), np.nan)
    for i, (_, values) in enumerate(rows):
        for name, a in values.items():
            mat[i, index[name]] = a
    return mat, [t for t, _ in rows], names


def plot_alpha_heatmap(study_or_trials: Any, *, band: Sequence[float] | None = None) -> Figure:
    """Trials × layers heatmap of α from each trial's stored ``wwtune.layers``.

    Args:
        study_or_trials: an Optuna study or a sequence of ``FrozenTrial``.
        band: target band; the colour scale is centred on its middle (white = on target, blue = lower α,
            red = higher α). Default: the study's ``wwtune.band``, else [2, 2].

    Failed fits and layers a trial did not report are grey.
    """
    low, high = resolve_band(study_or_trials, band)
    mat, trials, names = alpha_matrix(study_or_trials)
    n_t, n_l = mat.shape
    fig = new_figure(
        width=float(np.clip(3 + 0.6 * n_l, 6.4, 16)), height=float(np.clip(1.6 + 0.28 * n_t, 3.2, 14))
    )
    ax = fig.add_subplot()
    if mat.size == 0:
        ax.text(
            0.5,
            0.5,
            "no trial has stored layer diagnostics yet",
            ha="center",
            va="center",
            transform=ax.transAxes,
        )
        ax.set_axis_off()
        return fig
    centre = (low + high) / 2
    finite = mat[np.isfinite(mat)]
    # A robust colour range: one blown-up layer (α = 19) must not wash every other cell out to white;
    # cells beyond it take the end colours and keep their printed value.
    spread = float(np.clip(np.percentile(np.abs(finite - centre), 95), 0.5, 4.0)) if finite.size else 1.0
    # α ≤ 1 cannot come out of a power-law fit, so the blue side stops at 1 (or just below the centre).
    low_end = min(max(centre - spread, 1.0), centre - 0.1)
    norm = TwoSlopeNorm(vmin=low_end, vcenter=centre, vmax=centre + spread)
    cmap = _diverging_cmap()
    im = ax.imshow(np.ma.masked_invalid(mat), aspect="auto", cmap=cmap, norm=norm, interpolation="nearest")
    im.set_gid("alpha_heatmap")
    if n_t * n_l <= 300:
        for i in range(n_t):
            for j in range(n_l):
                v = mat[i, j]
                dark = not np.isnan(v) and abs(v - centre) > 0.6 * spread
                ax.text(
                    j,
                    i,
                    "–" if np.isnan(v) else f"{v:.2f}",
                    ha="center",
                    va="center",
                    fontsize="x-small",
                    color="white" if dark else "black",
                )
    ax.set_xticks(
        np.arange(n_l),
        names,
        rotation=45 if n_l > 4 else 0,
        ha="right" if n_l > 4 else "center",
        fontsize="small",
    )
    ylabels = [
        f"#{t.number}" + ("" if t.state == TrialState.COMPLETE else f" ({t.state.name.lower()})")
        for t in trials
    ]
    ax.set_yticks(np.arange(n_t), ylabels, fontsize="small" if n_t <= 30 else "xx-small")
    ax.set_xlabel("layer")
    ax.set_ylabel("trial")
    ax.set_title(f"α per trial and layer (white = {centre:g})")
    fig.colorbar(im, ax=ax, label="α", extend="both")
    return fig


def _diverging_cmap():

    return colormaps["RdBu_r"].with_extremes(bad="#d9d9d9")


def plot_trust_scatter(
    study_or_trials: Any,
    *,
    trust: Mapping[str, Any] | None = None,
    heldout_name: str = "held-out metric",
    heldout_direction: str | None = None,
    score_label: str = "α score",
    pick: int | None = None,
) -> Figure:
    """The study's per-trial score (x) against the held-out metric (y) of completed trials that have both.

    Args:
        study_or_trials: an Optuna study or a sequence of ``FrozenTrial``.
        trust: the trust report dict (study attr ``wwtune.trust``); its ``verdict`` goes in the title.
        heldout_name: axis label for the held-out metric.
        heldout_direction: ``"maximize"`` or ``"minimize"``; default the study's ``wwtune.heldout_direction``,
            else maximize.
        score_label: the x-axis' name of the per-trial value (the summary's words; default "α score").
        pick: the trial the study returned (its pick rule), starred as such; None: the lowest score is
            starred, labelled "lowest <score_label>".

    The star is the trial the study returns (or the lowest score); the trial the held-out metric would pick
    is circled green. When they coincide, trusting the pick cost nothing on this study.
    """
    if heldout_direction is None:
        heldout_direction = study_attr(study_or_trials, STUDY_HELDOUT_DIRECTION, "maximize")
    if heldout_direction not in ("minimize", "maximize"):
        raise ValueError(f"heldout_direction must be 'minimize' or 'maximize' but got {heldout_direction!r}.")
    points = []
    for t in trials_of(study_or_trials):
        if t.state != TrialState.COMPLETE:
            continue
        s, h = trial_score(t), finite_or_none(TrialRecord(t).heldout)
        if s is not None and h is not None:
            points.append((t.number, s, h))
    fig = new_figure()
    ax = fig.add_subplot()
    if not points:
        ax.text(
            0.5,
            0.5,
            "no completed trial has both an α score and a held-out metric",
            ha="center",
            va="center",
            transform=ax.transAxes,
            wrap=True,
        )
        ax.set_axis_off()
        return fig
    arr = np.array(points, dtype=float)
    ax.scatter(
        arr[:, 1], arr[:, 2], color=COLORS["ok"], s=32, zorder=3, label="completed trial", gid="trials"
    )
    i_alpha = int(np.argmin(arr[:, 1]))
    star = f"lowest {score_label}"
    if pick is not None and pick in arr[:, 0].astype(int).tolist():
        i_alpha, star = arr[:, 0].astype(int).tolist().index(pick), "returned by the pick rule"
    i_held = int(np.argmax(arr[:, 2]) if heldout_direction == "maximize" else np.argmin(arr[:, 2]))
    picked = {"marker": "*", "color": COLORS["fit"], "zorder": 4, "gid": "alpha_best"}
    held = {"marker": "o", "facecolors": "none", "linewidths": 2, "edgecolors": COLORS["band"], "zorder": 5}
    for i, style, label in (
        (i_alpha, picked, star),
        (i_held, {**held, "gid": "heldout_best"}, "best held-out"),
    ):
        ax.scatter(arr[i, 1], arr[i, 2], s=260, label=f"{label} (#{int(arr[i, 0])})", **style)
    ax.set_xlabel(f"{score_label} (lower is better)")
    ax.set_ylabel(f"{heldout_name} ({'higher' if heldout_direction == 'maximize' else 'lower'} is better)")
    ax.set_title(
        f"Does the {score_label} agree with held-out data? (n = {len(points)})" + _trust_line(trust),
        fontsize="medium",
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="best")
    return fig


def _trust_line(trust: Mapping[str, Any] | None) -> str:
    """Second title line from a ``wwtune.trust`` report: its verdict and Spearman correlation."""
    verdict = (trust or {}).get("verdict")
    if not isinstance(verdict, str):
        return ""
    text = "inconclusive" if verdict == "inconclusive" else f"α ranked trials {verdict}"
    rho = finite_or_none((trust or {}).get("spearman"))
    return f"\nverdict: {text}" + (f" (Spearman {rho:+.2f})" if rho is not None else "")


def plot_pareto_front(study: Any, pick: int | None = None) -> Figure:
    """A two-objective study (``score=pareto``): every feasible complete trial as (final training loss,
    band distance B), the Pareto front joined and highlighted, the recommended trial (``pick``, a trial
    number) marked with a star. The loss axis is logarithmic when all losses are positive."""
    from wwtune.ranking import pareto_front  # lazy: only Pareto studies draw it

    trials = [
        t
        for t in trials_of(study)
        if t.state == TrialState.COMPLETE
        and t.values is not None
        and len(t.values) == 2
        and all(math.isfinite(v) for v in t.values)
    ]
    fig = new_figure(width=7.0)
    ax = fig.add_subplot()
    if not trials:
        ax.text(0.5, 0.5, "no complete two-objective trial", ha="center", va="center", transform=ax.transAxes)
        return fig
    pts = np.array([t.values for t in trials], dtype=float)
    ax.scatter(pts[:, 0], pts[:, 1], color=COLORS["ok"], s=28, alpha=0.6, label="trial", gid="trials")
    front = sorted(pareto_front(pts), key=lambda i: pts[i, 0])
    ax.plot(
        pts[front, 0],
        pts[front, 1],
        "-o",
        color=COLORS["band"],
        lw=1.5,
        ms=6,
        label="Pareto front",
        gid="front",
    )
    numbers = [t.number for t in trials]
    if pick in numbers:
        i = numbers.index(pick)
        ax.scatter(
            [pts[i, 0]],
            [pts[i, 1]],
            marker="*",
            s=260,
            color="#d62728",
            zorder=5,
            label=f"pick (trial #{pick})",
            gid="pick",
        )
    if (pts[:, 0] > 0).all():
        ax.set_xscale("log")
    ax.set_xlabel("final training loss (lower is better)")
    ax.set_ylabel("band distance B (lower is better)")
    ax.set_title("Pareto front: fit against spectra")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return fig
