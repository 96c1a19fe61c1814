"""The report's view of a stored study: plain tables read through :mod:`wwtune.record`.

Everything here accepts an Optuna study *or* a sequence of ``FrozenTrial`` so plots and the report work
from any storage and from trials built in tests.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

from wwtune.record import STUDY_BAND, TrialRecord, finite_or_none, study_attr, trials_of

__all__ = ["DEFAULT_BAND", "check_band", "layers_frame", "resolve_band", "trials_table"]

#: Target band used when neither the caller nor the study gives one (MLP/CNN default of the score).
DEFAULT_BAND = (2.0, 2.0)


def layers_frame(trial: Any) -> pd.DataFrame | None:
    """The trial's latest per-layer diagnostics as a DataFrame (:meth:`wwtune.record.TrialRecord.layers`)."""
    return TrialRecord(trial).layers()


def check_band(band: Sequence[float]) -> tuple[float, float]:
    """Validate a target band ``(low, high)``; a single number means ``(x, x)``."""
    if isinstance(band, (int, float)):
        band = (float(band), float(band))
    try:
        low, high = (float(b) for b in band)
    except (TypeError, ValueError):
        raise ValueError(f"band must be two numbers [low, high] but got {band!r}.") from None
    if not (math.isfinite(low) and math.isfinite(high)) or low > high:
        raise ValueError(f"band must be finite with low <= high but got {band!r}.")
    return low, high


def resolve_band(study_or_trials: Any, band: Sequence[float] | None) -> tuple[float, float]:
    """The explicit band, else the study's ``wwtune.band``, else :data:`DEFAULT_BAND`."""
    if band is None:
        band = study_attr(study_or_trials, STUDY_BAND, DEFAULT_BAND)
    return check_band(band)


def trials_table(study_or_trials: Any) -> pd.DataFrame:
    """One row per trial: number, state, score, heldout, and the recorded reasons and timings."""
    rows = []
    for t in trials_of(study_or_trials):
        record = TrialRecord(t)
        rows.append(
            {
                "number": t.number,
                "state": t.state.name,
                "score": record.score(),
                "heldout": finite_or_none(record.heldout),
                "fail_reason": record.fail_reason,
                "prune_reason": record.prune_reason,
                "time_train_s": finite_or_none(record.time_train_s()),
                "time_analysis_s": finite_or_none(record.time_analysis_s()),
            }
        )
    return pd.DataFrame(
        rows,
        columns=[
            "number",
            "state",
            "score",
            "heldout",
            "fail_reason",
            "prune_reason",
            "time_train_s",
            "time_analysis_s",
        ],
    )
