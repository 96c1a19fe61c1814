"""The data-vs-tuning advisor's figure (:func:`plot_advice`), for ``advice.png`` and the study report."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from wwtune.record import finite_or_none
from wwtune.report.plots import COLORS, new_figure

__all__ = ["ADVICE_PLOT_KEYS", "plot_advice"]


#: Keys :func:`plot_advice` reads for the one-curve figure (others are ignored by the plot).
ADVICE_PLOT_KEYS = ("data_fraction", "score", "score_err", "tuning_headroom", "metric")
#: Keys of the advisor's own dict, which gets the three-panel figure.
ADVISOR_KEYS = ("runs", "trends", "settings", "verdict")


def plot_advice(advice: Mapping[str, Any]) -> Figure:
    """The data-vs-tuning advice (study attr ``wwtune.advice``) as a figure.

    The advisor's own dict (:func:`wwtune.advice.advise`: it has ``runs``, ``trends`` and ``settings``)
    gets three panels against the data fraction (log2 axis, 2× = extrapolated): the α score of both
    configurations with the tuning gap at 1× and the study's best…median band; the mean α with the data
    effect per doubling; the cross-layer α spread, each with its fitted line (gid ``trend_<config>_<attr>``).
    Any other dict is drawn as one curve, score against training-data fraction, from the keys below.

    Args:
        advice: a plain dict (study attr ``wwtune.advice``) with
            ``data_fraction`` (list of fractions in (0, 1], ascending), ``score`` (the α score reached at
            each fraction, same length), optionally ``score_err`` (its spread, same length, ≥ 0),
            ``tuning_headroom`` (≥ 0: how much the score improved between a typical trial and the best
            trial at full data, in score units) and ``metric`` (y-axis label, default "α score").

    The headroom is drawn as a green band hanging below the full-data score: if the curve falls by more
    than the band's height as data grows, more data buys more than more tuning.
    """
    if not isinstance(advice, Mapping):
        raise TypeError(f"advice must be a dict but got {type(advice).__name__}.")
    if all(k in advice for k in ADVISOR_KEYS):
        return _plot_advisor_runs(advice)
    missing = [k for k in ("data_fraction", "score") if k not in advice]
    if missing:
        raise ValueError(
            f"advice is missing key(s) {missing}; plot_advice needs 'data_fraction' and 'score'."
        )
    frac = np.asarray(advice["data_fraction"], dtype=float)
    score = np.asarray(advice["score"], dtype=float)
    if frac.ndim != 1 or frac.shape != score.shape or frac.size == 0:
        raise ValueError(
            "advice['data_fraction'] and advice['score'] must be non-empty lists of the same length but got "
            f"{frac.size} and {score.size} values."
        )
    if np.any(~np.isfinite(frac)) or np.any((frac <= 0) | (frac > 1)):
        raise ValueError(f"advice['data_fraction'] must lie in (0, 1] but got {frac.tolist()}.")
    err = advice.get("score_err")
    err = None if err is None else np.asarray(err, dtype=float)
    if err is not None and (err.shape != score.shape or np.any(err < 0)):
        raise ValueError(
            f"advice['score_err'] must be {score.size} non-negative values but got {err.tolist()}."
        )
    headroom = finite_or_none(advice.get("tuning_headroom"))
    if advice.get("tuning_headroom") is not None and (headroom is None or headroom < 0):
        raise ValueError(
            f"advice['tuning_headroom'] cannot be negative but got {advice['tuning_headroom']!r}."
        )
    order = np.argsort(frac)
    frac, score = frac[order], score[order]
    err = None if err is None else err[order]
    metric = str(advice.get("metric", "α score"))
    fig = new_figure()
    ax = fig.add_subplot()
    ax.errorbar(
        frac,
        score,
        yerr=err,
        marker="o",
        color=COLORS["ok"],
        lw=2,
        capsize=3,
        label=f"{metric} vs data used",
        gid="score_vs_data",
    )
    if headroom is not None:
        top = score[-1]
        ax.axhspan(
            top - headroom,
            top,
            color=COLORS["band"],
            alpha=0.2,
            gid="tuning_headroom",
            label=f"tuning headroom at full data ({headroom:.3g})",
        )
    if frac.size > 1 and frac[-1] / frac[0] >= 4:
        ax.set_xscale("log", base=2)
    ax.set_xticks(frac, [f"{f:g}" for f in frac])
    ax.set_xlabel("fraction of the training data")
    ax.set_ylabel(f"{metric} (lower is better)")
    ax.set_title("More data or more tuning?")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="best")
    return fig


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
            axis.plot(
                xs, tr["intercept"] + tr["slope"] * xs, "-", color=color, lw=1, gid=f"trend_{label}_{attr}"
            )
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


def _plot_advisor_runs(advice: Mapping[str, Any]) -> Figure:
    """Three panels against the data fraction (log2 axis, 2× = extrapolated): the α score of both
    configurations with the tuning gap at 1× and the study's best…median band (tuning headroom); the mean α
    with the data effect per doubling; the cross-layer spread of α."""
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
