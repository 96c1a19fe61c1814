"""The report's table cells: how a value is shown (``num``, ``cell``) and the trust report's rows."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["cell", "num", "text", "trust_items"]


def text(x: Any) -> str:
    return "" if x is None else str(x)


def num(x: Any, digits: int = 4) -> str:
    if isinstance(x, (bool, np.bool_)):
        return "yes" if x else "no"
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    try:
        v = float(x)
    except (TypeError, ValueError):
        return text(x)
    if math.isnan(v):
        return "–"
    return f"{v:.{digits}g}"


def cell(x: Any) -> dict[str, Any]:
    """A table cell: its text and whether it is a number (right-aligned)."""
    if isinstance(x, (bool, np.bool_, int, float, np.integer, np.floating)):
        return {"text": num(x), "num": True}
    if x is None:
        return {"text": "–", "num": False}
    return {"text": text(x), "num": False}


def trust_items(trust: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """The trust report's numbers as labelled rows; unknown scalar keys are listed as they are."""
    labels = {
        "n": "trials compared",
        "spearman": "Spearman correlation (+1 = perfect agreement)",
        "spearman_p": "Spearman p-value",
        "kendall": "Kendall correlation",
        "kendall_p": "Kendall p-value",
        "regret": "held-out loss from trusting α (regret)",
        "regret_vs_median": "regret as a share of the best-vs-median gap",
        "random_regret": "regret of a random pick, for comparison",
        "convention": "sign convention",
        "reason": "why this verdict",
    }
    items: list[tuple[str, Any]] = [(label, trust[k]) for k, label in labels.items() if k in trust]
    for key, label in (
        ("alpha_best", "lowest α score (distance to the band)"),
        ("heldout_best", "best held-out trial"),
        ("median", "median trial"),
    ):
        e = trust.get(key)
        if isinstance(e, Mapping):
            items.append(
                (label, f"#{e.get('trial')}: held-out {num(e.get('heldout'))}, score {num(e.get('score'))}")
            )
    e = trust.get("train_loss_best")
    if isinstance(e, Mapping):
        items.append(
            (
                "trial with the lowest final training loss",
                f"#{e.get('trial')}: held-out {num(e.get('heldout'))}, "
                f"training loss {num(e.get('train_loss'))}, regret {num(trust.get('train_loss_regret'))}",
            )
        )
    elif trust.get("train_loss_unavailable"):
        items.append(
            ("trial with the lowest final training loss", f"unavailable: {trust['train_loss_unavailable']}")
        )
    e = trust.get("study_pick")
    if isinstance(e, Mapping):
        items.append(
            (
                f"trial the study returned ({e.get('score_kind')})",
                f"#{e.get('trial')}: held-out {num(e.get('heldout'))}, "
                f"regret {num(trust.get('study_pick_regret'))}",
            )
        )
    for rank, r in enumerate(trust.get("selectors") or [], 1):  # calibrate once: every data-free selector
        if isinstance(r, Mapping):
            items.append(
                (
                    f"selector {rank}: {r.get('override')}",
                    f"#{r.get('trial')}: held-out {num(r.get('heldout'))}, regret {num(r.get('regret'))}",
                )
            )
    if trust.get("alpha_vs_train_loss"):
        items.append(("α against the training loss", trust["alpha_vs_train_loss"]))
    skip = set(labels) | {
        "alpha_best",
        "train_loss_best",
        "train_loss_regret",
        "train_loss_unavailable",
        "study_pick",
        "study_pick_regret",
        "alpha_vs_train_loss",
        "heldout_best",
        "median",
        "verdict",
        "summary",
        "n_excluded",
        "heldout_direction",
        "score_direction",
        "min_trials",
        "p_threshold",
    }
    for k, v in trust.items():
        if k not in skip and (v is None or isinstance(v, (str, int, float, bool))):
            items.append((k, v))
    return items
