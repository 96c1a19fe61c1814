"""Record what a pruner saw during a study, and replay a pruner on those records afterwards.

Used by ``benchmarks/bench_trust.py`` to measure a pruner without letting it stop anything: every trial
is trained to the end under a :class:`RecordingPruner` (which never prunes), and :func:`replay_pruner`
then asks a fresh pruner, step by step, exactly the questions the study would have asked it — same
``wwtune.layers`` table, same ``wwtune.budget``, same reported α scores as intermediate values, in the
same order. The first step at which it answers "prune" is the step it would have stopped the trial.

Only pruners that judge a trial by its own attrs and intermediate values replay faithfully (all of
:class:`~wwtune.pruners.AlphaPruner`'s layer rules). A wrapped Optuna pruner that compares a trial with
the *other* trials (Median, Percentile, Hyperband …) sees an empty study in a replay.

Example:

    .. code-block:: python

        import optuna

        from wwtune.pruners import AlphaPruner
        from wwtune.replay import RecordingPruner, replay_pruner


        def objective(trial):
            trial.set_user_attr("wwtune.budget", 4)
            for step in range(1, 5):
                alpha = 8.0 if trial.number == 0 else 2.5
                trial.set_user_attr(
                    "wwtune.layers",
                    {"step": step, "name": ["fc1"], "alpha": [alpha], "num_evals": [64], "eligible": [True]},
                )
                trial.report(abs(alpha - 2.0), step)
                trial.should_prune()  # the recorder answers False and keeps what it was shown
            return 0.0


        recorder = RecordingPruner()
        study = optuna.create_study(pruner=recorder)
        study.optimize(objective, n_trials=2)
        decisions = replay_pruner(AlphaPruner(), recorder.records, budgets={0: 4, 1: 4})
        assert decisions[0]["step"] == 2 and decisions[1] is None
"""

from __future__ import annotations

import copy
import datetime
import threading
from collections.abc import Mapping
from typing import Any

import optuna
from optuna.pruners import BasePruner
from optuna.trial import FrozenTrial, TrialState

from wwtune.record import BUDGET, LAYERS, TrialRecord

__all__ = ["RecordingPruner", "replay_pruner"]


class RecordingPruner(BasePruner):
    """Never prunes; keeps, per trial, what a pruner would have been shown at each ``should_prune()``.

    ``records[trial_number]`` is a list, one entry per call, of ``{"step": int | None, "score": float |
    None, "layers": dict | None}``: the trial's last reported step, the intermediate value reported at that
    step and a copy of its ``wwtune.layers`` user attr. ``budgets[trial_number]`` is its ``wwtune.budget``.

    Args:
        live: Optional pruner asked at every call as the study would ask it; its first "prune" answer per
            trial is kept in ``live_decisions[trial_number]`` (``{"step", "reason"}``, the reason from its
            ``reason_for`` when it has one) but never acted on. Default :obj:`None`. Lets a benchmark check
            that :func:`replay_pruner` reproduces the live decisions.

    Example: see the module docstring.
    """

    def __init__(self, live: BasePruner | None = None) -> None:
        if live is not None and not isinstance(live, BasePruner):
            raise TypeError(
                f"live must be an optuna.pruners.BasePruner or None but got {type(live).__name__}."
            )
        self._live = live
        self._lock = threading.Lock()
        self.records: dict[int, list[dict[str, Any]]] = {}
        self.budgets: dict[int, int | None] = {}
        self.live_decisions: dict[int, dict[str, Any]] = {}

    def prune(self, study: optuna.study.Study, trial: FrozenTrial) -> bool:
        step = trial.last_step
        record = TrialRecord(trial)
        layers = record.layers_attr
        entry = {
            "step": step,
            "score": None if step is None else trial.intermediate_values.get(step),
            "layers": None if layers is None else copy.deepcopy(dict(layers)),
        }
        budget = record.budget
        with self._lock:
            self.records.setdefault(trial.number, []).append(entry)
            self.budgets[trial.number] = None if budget is None else int(budget)
        if self._live is not None and trial.number not in self.live_decisions:
            if self._live.prune(study, trial):
                reason_for = getattr(self._live, "reason_for", None)
                reason = reason_for(trial, study) if reason_for is not None else None
                with self._lock:
                    self.live_decisions[trial.number] = {"step": step, "reason": reason}
        return False


def replay_pruner(
    pruner: BasePruner,
    records: Mapping[int, list[Mapping[str, Any]]],
    budgets: Mapping[int, int | None],
    *,
    study_name: str = "wwtune-replay",
) -> dict[int, dict[str, Any] | None]:
    """Ask ``pruner`` the recorded questions in order; the first "prune" per trial, or :obj:`None`.

    Args:
        pruner: the pruner to replay, fresh (an :class:`~wwtune.pruners.AlphaPruner` remembers each
            trial's first analysis, so reuse it only with another ``study_name``).
        records: per trial number, the entries of :attr:`RecordingPruner.records` (or the same structure
            loaded from JSON; integer-like string keys are accepted).
        budgets: per trial number, the ``wwtune.budget`` user attr to show (:obj:`None`: not set).
        study_name: name of the in-memory study the pruner is shown (it keys its memory by it).

    Returns:
        ``{trial_number: None | {"step": int, "reason": dict | None}}``; ``reason`` comes from the pruner's
        ``reason_for`` when it has one.
    """
    if not isinstance(pruner, BasePruner):
        raise TypeError(f"pruner must be an optuna.pruners.BasePruner but got {type(pruner).__name__}.")
    study = optuna.create_study(study_name=study_name, pruner=pruner)
    reason_for = getattr(pruner, "reason_for", None)
    start = datetime.datetime.now()
    out: dict[int, dict[str, Any] | None] = {}
    for key in sorted(records, key=int):
        number = int(key)
        budget = budgets.get(number, budgets.get(str(number)))  # type: ignore[call-overload]
        intermediate: dict[int, float] = {}
        out[number] = None
        for entry in records[key]:
            step = entry.get("step")
            if step is not None and entry.get("score") is not None:
                intermediate[int(step)] = float(entry["score"])
            attrs: dict[str, Any] = {}
            if entry.get("layers") is not None:
                attrs[LAYERS] = entry["layers"]
            if budget is not None:
                attrs[BUDGET] = int(budget)
            trial = FrozenTrial(
                number=number,
                state=TrialState.RUNNING,
                value=None,
                datetime_start=start,
                datetime_complete=None,
                params={},
                distributions={},
                user_attrs=attrs,
                system_attrs={},
                intermediate_values=dict(intermediate),
                trial_id=number,
            )
            if pruner.prune(study, trial):
                reason = reason_for(trial, study) if reason_for is not None else None
                out[number] = {"step": None if step is None else int(step), "reason": reason}
                break
    return out
