"""``WWTuneCallback`` and ``compute_objective`` for a Hugging Face ``Trainer``, with or without an eval set.

Two ways to use it, both through :class:`wwtune.TrialBridge` (the CLI's per-report step and trial record),
each attached in one way:

* your own ``objective(trial)`` building a ``Trainer``: ``WWTuneCallback(trial=trial)``, given to the
  trainer as ``Trainer(callbacks=[cb])`` (or ``trainer.add_callback(cb)``), then
  ``return cb.finish(heldout=...)`` after ``trainer.train()``;
* ``Trainer.hyperparameter_search(backend="optuna")``: ``WWTuneCallback(trainer)`` attaches itself to the
  trainer (the only way it can see each trial) and takes each trial from it.

Attaching is idempotent: the same callback given to a trainer twice (``trainer.add_callback(cb)`` after
``WWTuneCallback(trainer)``, or both ``callbacks=[cb]`` and ``add_callback``) acts once per event, and
:meth:`WWTuneCallback.finish` runs once (a second call returns the first value).

**No eval dataset is needed** with ``hyperparameter_search``: transformers' Optuna loop calls
``trainer.evaluate()`` (which needs one) only when ``trainer.objective`` is still unset after ``train()``
(``run_hp_search_optuna``); the callback sets it to the trial's final α score at train end. Pass
``compute_objective=compute_objective`` as well, so a run that *does* evaluate during training reports the
same α score instead of the eval loss::

      trainer = Trainer(model_init=model_init, args=args, train_dataset=train)   # no eval_dataset
      wwtune_cb = WWTuneCallback(trainer, heldout=held_out_accuracy)
      best = trainer.hyperparameter_search(backend="optuna", hp_space=hp_space, n_trials=10,
                                           direction="minimize", compute_objective=compute_objective,
                                           pruner=wwtune.AlphaPruner(), catch=(wwtune.TrialFailed,))
      wwtune.store_trust(wwtune_cb.study, heldout_direction="maximize")

The callback analyses the model at each epoch end (the training loss of that epoch, forcing a log there),
reports the α score at ``state.global_step`` (the step unit transformers reports in) and raises
``optuna.TrialPruned`` when the study's pruner says so (reason stored). A run whose loss did not fall
completes as infeasible (``on_violation="infeasible"``, the CLI's default); a 3-epoch fine-tune has too
few reports for the 10% loss-drop rule, so its loss need only fall at every epoch
(:data:`wwtune.bridge.LOSS_RULE_MIN_REPORTS`). A NaN/Inf loss stops training and completes the trial as
infeasible with the worst value (``on_violation="fail"``: raises :class:`wwtune.TrialFailed`).
(transformers reads ``study.best_trial`` after the search, so it raises "No trials are completed yet"
when every trial was pruned or failed; the trials and their reasons are stored all the same.) Requires
``transformers`` (``pip install 'wwtune[huggingface]'``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import optuna
from transformers import TrainerCallback

from wwtune.bridge import TrialBridge, TrialPruned
from wwtune.exceptions import TrainingDiverged
from wwtune.score import Score

__all__ = ["SCORE_KEY", "WWTuneCallback", "compute_objective"]

#: The key under which the callback adds the α score to ``trainer.evaluate()``'s metrics.
SCORE_KEY = "wwtune_score"


def compute_objective(metrics: Mapping[str, float]) -> float:
    """``compute_objective`` for ``hyperparameter_search``: the α score the :class:`WWTuneCallback` added."""
    if SCORE_KEY not in metrics:
        raise KeyError(
            f"compute_objective: no {SCORE_KEY!r} in the metrics {sorted(metrics)}; add "
            "WWTuneCallback(trainer) to the trainer (it writes the α score there)."
        )
    return float(metrics[SCORE_KEY])


class WWTuneCallback(TrainerCallback):
    """Analyse the model at each epoch end, report the α score to the Optuna trial, maybe prune.

    Args:
        trainer: the ``Trainer`` whose ``hyperparameter_search`` runs the trials; the callback adds itself
            to it, takes each trial from it and sets ``trainer.objective`` at train end. None (default):
            give ``trial`` instead.
        trial: the Optuna trial, for your own ``objective(trial)``; default None (from ``trainer``).
        heldout: optional ``fn(model) -> float``, a held-out metric computed at train end and stored beside
            the α score (for the trust report); default None.
        budget: the pruner's warm-up budget in optimizer steps; default the run's ``state.max_steps``.
        score: the α score; default ``Score()`` (band (2, 2); use ``Score(band=(3, 4))`` for transformers
            trained long enough to reach it).
        **bridge: further :class:`wwtune.TrialBridge` arguments (``min_loss_drop``, ``on_violation``,
            ``analysis_kwargs``, ``check_weights``).
    """

    def __init__(
        self,
        trainer: Any = None,
        *,
        trial: optuna.trial.Trial | None = None,
        heldout: Callable[[Any], float] | None = None,
        budget: int | None = None,
        score: Score | None = None,
        **bridge: Any,
    ) -> None:
        if trainer is None and trial is None:
            raise ValueError(
                "WWTuneCallback needs a trial or a trainer: WWTuneCallback(trial=trial) in "
                "Trainer(callbacks=[cb]) for your own objective, or WWTuneCallback(trainer) for "
                "trainer.hyperparameter_search (it attaches itself)."
            )
        if heldout is not None and not callable(heldout):
            raise TypeError(f"heldout must be a function model -> float but got {heldout!r}.")
        self.trainer, self.fixed_trial, self.heldout, self.budget = trainer, trial, heldout, budget
        self.score = Score() if score is None else score
        self.bridge_kwargs = bridge
        self.bridge: TrialBridge | None = None
        self.study: optuna.Study | None = trial.study if trial is not None else None
        self._pending: int | None = None
        self._last_log: tuple[int, float] | None = None
        self._stopped = False
        self._diverged: str | None = None
        self._last_event: dict[str, tuple[Any, ...]] = {}
        if trainer is not None and not any(cb is self for cb in trainer.callback_handler.callbacks):
            trainer.add_callback(self)

    def _first(self, event: str, *key: Any) -> bool:
        """False for a repeat of the same event with the same arguments: the callback registered twice."""
        key = tuple(id(k) if not isinstance(k, (int, float, str)) else k for k in key)
        if self._last_event.get(event) == key:
            return False
        self._last_event[event] = key
        return True

    def _trial(self) -> optuna.trial.Trial:
        trial = self.fixed_trial or getattr(self.trainer, "_trial", None)
        if not isinstance(trial, optuna.trial.Trial):
            raise RuntimeError(
                "WWTuneCallback: no Optuna trial for this run; run trainer.hyperparameter_search("
                "backend='optuna', ...) or pass WWTuneCallback(trial=trial)."
            )
        return trial

    def on_train_begin(self, args, state, control, **kwargs):
        if not self._first("train_begin", state):
            return
        trial = self._trial()
        self.study = trial.study
        budget = self.budget if self.budget is not None else int(state.max_steps)
        bridge = {"keeps_diverged": True, **self.bridge_kwargs}
        self.bridge = TrialBridge(trial, score=self.score, budget=budget, **bridge)
        self._pending, self._last_log, self._stopped, self._diverged = None, None, False, None

    def on_log(self, args, state, control, logs=None, model=None, **kwargs):
        if not logs or "loss" not in logs or not self._first("log", state, state.global_step, logs):
            return
        self._last_log = (int(state.global_step), float(logs["loss"]))
        if self._pending is not None and state.global_step >= self._pending:
            self._pending = None
            self._report(state.global_step, model, float(logs["loss"]), control)

    def on_epoch_end(self, args, state, control, model=None, **kwargs):
        if not self._first("epoch_end", state, state.global_step):
            return
        if self._last_log is not None and self._last_log[0] == state.global_step:
            self._report(state.global_step, model, self._last_log[1], control)  # logged at this very step
        else:
            self._pending = int(state.global_step)
            control.should_log = True  # the epoch's training loss, logged right after this hook

    def _report(self, step: int, model: Any, loss: float, control: Any) -> None:
        assert self.bridge is not None
        if self._diverged is not None:
            return
        try:
            self.bridge.report(step, model, loss)
        except TrainingDiverged as exc:
            if self.bridge.on_violation == "fail":
                self._stopped = True
                raise
            self._diverged = exc.reason  # infeasible: stop here, finish() completes it with the penalty
            control.should_training_stop = True
        except (TrialPruned, Exception):
            self._stopped = True
            raise

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        bridge = self.bridge
        # the study's score (the bridge's objective: the CLI's default uses the training loss), else α's
        latest = None if bridge is None else (bridge.last_objective or bridge.last_result)
        if metrics is not None and latest is not None and latest.value is not None:
            metrics[SCORE_KEY] = latest.value  # read by compute_objective

    def on_train_end(self, args, state, control, model=None, **kwargs):
        if self.trainer is None or self.bridge is None or self._stopped:
            return  # own objective: finish() is called by the user; a stopped trial is already recorded
        if not self._first("train_end", state):
            return
        heldout = self.heldout(model) if self.heldout is not None and self._diverged is None else None
        self.trainer.objective = self.finish(heldout=heldout)  # so no trainer.evaluate() follows

    def finish(self, result: Mapping[str, Any] | None = None, *, heldout: float | None = None) -> float:
        """End the trial after ``trainer.train()`` (own objective): see :meth:`wwtune.TrialBridge.finish`.
        Runs once; a diverged run (``on_violation="infeasible"``) returns the infeasible penalty."""
        if self.bridge is None:
            raise RuntimeError("WWTuneCallback.finish() before trainer.train(): the callback never ran.")
        if self._diverged is not None:
            if self.bridge.finished is None:
                self.bridge.finished = [self.bridge.infeasible_penalty(self._diverged)]
            return self.bridge.finished[0]
        return self.bridge.finish(result, heldout=heldout)
