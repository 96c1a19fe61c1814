"""Reading what a wwtune study stored (Optuna user attrs, see the team contract) into plain tables.

Everything here accepts an Optuna study *or* a sequence of ``FrozenTrial`` so plots and the report work
from any storage and from trials built in tests.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import optuna
import pandas as pd
from optuna.trial import FrozenTrial, TrialState

ATTR_LAYERS = "wwtune.layers"
ATTR_SCORE = "wwtune.score"
ATTR_HELDOUT = "wwtune.heldout"
ATTR_BUDGET = "wwtune.budget"
ATTR_FAIL = "wwtune.fail_reason"
ATTR_PRUNE = "wwtune.prune_reason"
ATTR_TIME_TRAIN = "wwtune.time_train_s"
ATTR_TIME_ANALYSIS = "wwtune.time_analysis_s"
STUDY_BAND = "wwtune.band"
STUDY_HELDOUT_DIRECTION = "wwtune.heldout_direction"
STUDY_HELDOUT_NAME = "wwtune.heldout_name"
STUDY_TRUST = "wwtune.trust"
STUDY_ADVICE = "wwtune.advice"
STUDY_CONFIG = "wwtune.config"

#: Target band used when neither the caller nor the study gives one (MLP/CNN default of the score).
DEFAULT_BAND = (2.0, 2.0)


def trials_of(study_or_trials: optuna.Study | Iterable[FrozenTrial]) -> list[FrozenTrial]:
    """The trials of a study (any storage), or the given trials as a list, sorted by trial number."""
    if isinstance(study_or_trials, optuna.Study):
        trials = study_or_trials.get_trials(deepcopy=False)
    else:
        try:
            trials = list(study_or_trials)
        except TypeError:
            raise TypeError(
                "Expected an optuna.Study or an iterable of optuna.trial.FrozenTrial but got "
                f"{type(study_or_trials).__name__}."
            ) from None
        for t in trials:
            if not isinstance(t, FrozenTrial):
                raise TypeError(f"Expected optuna.trial.FrozenTrial items but got {type(t).__name__}.")
    return sorted(trials, key=lambda t: t.number)


def study_attr(study_or_trials: Any, key: str, default: Any = None) -> Any:
    """A study user attr when a study is given, else ``default``."""
    if isinstance(study_or_trials, optuna.Study):
        return study_or_trials.user_attrs.get(key, default)
    return default


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


def finite_or_none(x: Any) -> float | None:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def trial_score(trial: FrozenTrial) -> float | None:
    """The α score of a trial: its value when complete, else its stored score or last intermediate value."""
    if trial.state == TrialState.COMPLETE and trial.values is not None and len(trial.values) == 1:
        return finite_or_none(trial.values[0])
    stored = finite_or_none(trial.user_attrs.get(ATTR_SCORE))
    if stored is not None:
        return stored
    if trial.intermediate_values:
        return finite_or_none(trial.intermediate_values[max(trial.intermediate_values)])
    return None


def layers_frame(trial: FrozenTrial) -> pd.DataFrame | None:
    """The trial's latest per-layer diagnostics (``wwtune.layers``, columnar) as a DataFrame, or None."""
    cols = trial.user_attrs.get(ATTR_LAYERS)
    if not isinstance(cols, Mapping) or "name" not in cols:
        return None
    names = list(cols["name"])
    data = {k: list(v) for k, v in cols.items() if isinstance(v, (list, tuple)) and len(v) == len(names)}
    df = pd.DataFrame(data)
    if "step" in cols and not isinstance(cols["step"], (list, tuple)):
        df.attrs["step"] = cols["step"]
    return df


def alpha_values(df: pd.DataFrame) -> np.ndarray:
    """α per row with failed fits (α = −1, status "failed", non-finite) as NaN."""
    alpha = pd.to_numeric(df["alpha"], errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(alpha) | (alpha <= 0)
    if "status" in df:
        bad |= df["status"].astype(str).to_numpy() == "failed"
    return np.where(bad, np.nan, alpha)


def trials_table(study_or_trials: Any) -> pd.DataFrame:
    """One row per trial: number, state, score, heldout, and the recorded reasons and timings."""
    rows = []
    for t in trials_of(study_or_trials):
        rows.append(
            {
                "number": t.number,
                "state": t.state.name,
                "score": trial_score(t),
                "heldout": finite_or_none(t.user_attrs.get(ATTR_HELDOUT)),
                "fail_reason": t.user_attrs.get(ATTR_FAIL),
                "prune_reason": t.user_attrs.get(ATTR_PRUNE),
                "time_train_s": finite_or_none(t.user_attrs.get(ATTR_TIME_TRAIN)),
                "time_analysis_s": finite_or_none(t.user_attrs.get(ATTR_TIME_ANALYSIS)),
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
