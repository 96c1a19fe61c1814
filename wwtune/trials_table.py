"""A study's trials as one flat, typed table: what ``study.trials_dataframe()`` shows, with wwtune's
per-trial record expanded into columns a user can sort and plot.

Optuna's own ``study.trials_dataframe()`` (and optuna-dashboard's trial table) already show each layer's
final α as a float column ``user_attrs_wwtune.alpha.<layer>`` (:meth:`wwtune.record.TrialWriter.alphas`).
:func:`trials_dataframe` goes further: JSON-valued attrs (the per-layer table, the losses, the prune
reason) become typed columns, and a study recorded before the flat attrs gets its α columns from the
stored per-layer table::

    df = wwtune.trials_dataframe(study)
    df.sort_values("alpha.fc1")[["number", "value", "alpha.fc1", "alpha.fc2", "train_loss", "feasible"]]
"""

from __future__ import annotations

import math
from typing import Any

import optuna
import pandas as pd
from optuna.trial import FrozenTrial

from wwtune.ranking import constraints
from wwtune.record import (
    ALPHA_PREFIX,
    FAIL_REASON,
    HELDOUT,
    INFEASIBLE_REASON,
    LAYERS,
    LOSSES,
    PRUNE_REASON,
    SCORE,
    TrialRecord,
    fit_failed,
)

__all__ = ["WWTUNE_COLUMNS", "trials_dataframe"]

#: the columns :func:`trials_dataframe` adds (besides one ``alpha.<layer>`` float per layer)
WWTUNE_COLUMNS = {
    "alpha_score": "the trial's α score (wwtune.score; the value unless the study optimises another)",
    "train_loss": "the last training loss the task reported",
    "heldout": "the task's held-out metric, if it gave one",
    "layers_step": "the step of the analysis the alpha.<layer> columns come from",
    "n_eligible": "how many layers the score counted",
    "mean_alpha": "the mean α of the eligible, successfully fitted layers",
    "feasible": "False when a sanity rule kept the trial as infeasible (constraint > 0)",
    "reason": "why the trial failed, was pruned or was kept as infeasible (one line), else empty",
}
#: the user attr columns replaced by the typed columns above (JSON blobs, or repeated there)
_REPLACED = (LAYERS, LOSSES, PRUNE_REASON, FAIL_REASON, INFEASIBLE_REASON, SCORE, HELDOUT)


def _row(trial: FrozenTrial) -> dict[str, Any]:
    record = TrialRecord(trial)
    row: dict[str, Any] = {
        "number": trial.number,
        "alpha_score": _float(record.stored_score),
        "train_loss": record.final_train_loss,
        "heldout": _float(record.heldout),
        "feasible": max(constraints(trial), default=0.0) <= 0.0,
    }
    prune = record.prune_reason
    reason = record.fail_reason or record.infeasible_reason
    if reason is None and isinstance(prune, dict):
        reason = prune.get("message")
    row["reason"] = str(reason) if reason is not None else ""
    layers = record.layers()
    row["layers_step"] = layers.attrs.get("step") if layers is not None else None
    eligible_alphas: list[float] = []
    if layers is not None:
        status = layers["status"] if "status" in layers.columns else [None] * len(layers)
        eligible = layers["eligible"] if "eligible" in layers.columns else [True] * len(layers)
        for name, alpha, st, ok in zip(layers["name"], layers["alpha"], status, eligible, strict=True):
            value = None if fit_failed(alpha, st) else float(alpha)
            row[f"alpha.{name}"] = value
            if ok and value is not None:
                eligible_alphas.append(value)
        row["n_eligible"] = int(sum(bool(e) for e in eligible))
    row["mean_alpha"] = sum(eligible_alphas) / len(eligible_alphas) if eligible_alphas else None
    return row


def _float(value: Any) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def trials_dataframe(study: optuna.Study) -> pd.DataFrame:
    """``study.trials_dataframe()`` with wwtune's record as flat, typed columns (one row per trial).

    Optuna's columns (``number``, ``value``/``values_*``, ``params_*``, ``state``, the datetimes, other
    user attrs) are kept; the JSON-valued wwtune attrs are replaced by :data:`WWTUNE_COLUMNS` and one
    float column ``alpha.<layer>`` per analysed layer (None where the fit failed), in layer order.

    Args:
        study: any study wwtune's bridge or CLI wrote (any storage).

    Returns:
        A DataFrame sorted by trial number; empty (with Optuna's columns) for a study without trials.
    """
    if not isinstance(study, optuna.Study):
        raise TypeError(f"trials_dataframe needs an optuna.Study but got {type(study).__name__}.")
    base = study.trials_dataframe()
    if base.empty:
        return base
    drop = [f"user_attrs_{key}" for key in _REPLACED] + [
        c for c in base.columns if c.startswith(f"user_attrs_{ALPHA_PREFIX}") or c.startswith("system_attrs_")
    ]
    base = base.drop(columns=[c for c in drop if c in base.columns])
    extra = pd.DataFrame([_row(t) for t in study.get_trials(deepcopy=False)])
    table = base.merge(extra, on="number", how="left").sort_values("number", ignore_index=True)
    return table.astype({"feasible": bool})
