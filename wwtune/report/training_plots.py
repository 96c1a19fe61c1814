"""What TempBalance and EarlyFreezing did in a study's trials: the factor plot and the report section.

A bundled task (or any task) returns ``{"training": {"tempbalance": TempBalance.state(), "freezing":
EarlyFreezing.state(), "analysis_s": ...}}``; the trial runner stores it in ``wwtune.result``. The section
shows, for the best trial that used them, each balanced layer's factor per step and each layer's freeze
step, and a table of every trial that used either.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping
from typing import Any

from matplotlib.figure import Figure
from optuna.trial import FrozenTrial, TrialState

from wwtune.record import RESULT, TrialRecord
from wwtune.report.figures import figure_data_uri, new_figure

__all__ = ["plot_balance_factors", "training_of", "training_section"]

EXPLAIN = (
    "Trials that used TempBalance (per-layer learning-rate factors from each layer's α: a larger α, a "
    "less-trained layer, gets a larger rate) or early freezing (a layer stops training once its α stops "
    "moving). The figure shows the factors applied at each step of the best such trial; the table lists "
    "every such trial with the step each layer froze and the share of backward compute saved."
)


def training_of(trial: FrozenTrial) -> Mapping[str, Any] | None:
    """The ``training`` record a trial's task returned, or None."""
    result = trial.user_attrs.get(RESULT)
    training = result.get("training") if isinstance(result, Mapping) else None
    return training if isinstance(training, Mapping) and training else None


def plot_balance_factors(tempbalance: Mapping[str, Any], title: str = "") -> Figure:
    """Each balanced layer's learning-rate factor (y) at each ``step()`` (x), from ``TempBalance.state()``."""
    fig = new_figure(6.4, 3.6)
    ax = fig.add_subplot()
    history = list(tempbalance.get("history") or [])
    for name in tempbalance.get("layers") or []:
        steps = [h["step"] for h in history if name in (h.get("factors") or {})]
        values = [h["factors"][name] for h in history if name in (h.get("factors") or {})]
        ax.plot(steps, values, marker="o", markersize=3, label=str(name))
    ax.axhline(1.0, color="#888888", linewidth=0.8, linestyle="--")
    ax.set_xlabel("step (epoch)")
    ax.set_ylabel("learning-rate factor")
    ax.set_title(title or f"TempBalance factors ({tempbalance.get('map', '?')})")
    if tempbalance.get("layers"):
        ax.legend(fontsize=7, ncols=2)
    return fig


def _frozen_text(freezing: Mapping[str, Any] | None) -> str:
    if not freezing:
        return "–"
    frozen = freezing.get("frozen") or {}
    return ", ".join(f"{k} @ {v}" for k, v in frozen.items()) or "none"


def _row(trial: FrozenTrial, training: Mapping[str, Any]) -> str:
    tb, fr = training.get("tempbalance"), training.get("freezing")
    last = (tb.get("history") or [{}])[-1].get("factors", {}) if tb else {}
    spread = f"{min(last.values()):.2f} – {max(last.values()):.2f}" if last else "–"
    saved = f"{100 * float(fr.get('saved_share', 0.0)):.0f}%" if fr else "–"
    heldout = TrialRecord(trial).heldout
    cells = [
        str(trial.number),
        tb.get("map", "–") if tb else "off",
        spread,
        "on" if fr else "off",
        _frozen_text(fr),
        saved,
        "–" if heldout is None else f"{float(heldout):.4g}",
    ]
    return "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>"


def training_section(trials: Iterable[FrozenTrial], best: FrozenTrial | None, fmt: str = "png") -> str:
    """The report's "Training helpers" section (empty string when no trial used them)."""
    used = [(t, tr) for t in trials if t.state == TrialState.COMPLETE and (tr := training_of(t)) is not None]
    if not used:
        return ""
    pick = next(((t, tr) for t, tr in used if best is not None and t.number == best.number), used[0])
    body = ""
    with_tb = [(t, tr) for t, tr in used if tr.get("tempbalance")]
    if with_tb:
        t, tr = next(((t, tr) for t, tr in with_tb if t.number == pick[0].number), with_tb[0])
        fig = plot_balance_factors(tr["tempbalance"], f"TempBalance factors, trial #{t.number}")
        body += f'<img src="{figure_data_uri(fig, fmt)}" alt="TempBalance factors of trial {t.number}">'
        fig.clear()
    head = "".join(
        f"<th>{h}</th>"
        for h in (
            "trial",
            "balance map",
            "last factors",
            "freeze",
            "frozen (layer @ step)",
            "backward saved",
            "held-out",
        )
    )
    rows = "".join(_row(t, tr) for t, tr in used)
    body += f"<table><tr>{head}</tr>{rows}</table>"
    return (
        '<section id="training"><h2>Training helpers: TempBalance and early freezing</h2>'
        f'<p class="explain">{html.escape(EXPLAIN)}</p>{body}</section>'
    )
