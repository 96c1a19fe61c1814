"""``WWTuneCallback`` and ``compute_objective`` for a Hugging Face ``Trainer``, with or without an eval set.

Two ways to use it, both through :class:`wwtune.TrialBridge` (the CLI's per-report step and trial record):

* your own ``objective(trial)`` building a ``Trainer``: ``WWTuneCallback(trial=trial)`` in ``callbacks``,
  then ``return callback.finish(heldout=...)`` after ``trainer.train()``;
* ``Trainer.hyperparameter_search(backend="optuna")``: ``WWTuneCallback(trainer)`` attaches itself to the
  trainer and takes each trial from it. **No eval dataset is needed**: transformers' Optuna loop calls
  ``trainer.evaluate()`` (which needs one) only when ``trainer.objective`` is still unset after
  ``train()`` (``run_hp_search_optuna``); the callback sets it to the trial's final α score at train end.
  Pass ``compute_objective=compute_objective`` as well, so a run that *does* evaluate during training
  reports the same α score instead of the eval loss::

      trainer = Trainer(model_init=model_init, args=args, train_dataset=train)   # no eval_dataset
      wwtune_cb = WWTuneCallback(trainer, heldout=held_out_accuracy)
      best = trainer.hyperparameter_search(backend="optuna", hp_space=hp_space, n_trials=10,
                                           direction="minimize", compute_objective=compute_objective,
                                           pruner=wwtune.AlphaPruner(), catch=(wwtune.TrialFailed,))
      wwtune.store_trust(wwtune_cb.study, heldout_direction="maximize")

The callback analyses the model at each epoch end (the training loss of that epoch, forcing a log there),
reports the α score at ``state.global_step`` (the step unit transformers reports in) and raises
``optuna.TrialPruned`` when the study's pruner says so (reason stored). (transformers reads
``study.best_trial`` after the search, so it raises "No trials are completed yet" when every trial was
pruned or failed; the trials and their reasons are stored all the same.) Requires ``transformers``
(``pip install 'wwtune[huggingface]'``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import optuna
from transformers import TrainerCallback

from wwtune.bridge import TrialBridge, TrialPruned
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
            raise ValueError("WWTuneCallback needs a trainer (hyperparameter_search) or a trial.")
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
        if trainer is not None:
            trainer.add_callback(self)

    def _trial(self) -> optuna.trial.Trial:
        trial = self.fixed_trial or getattr(self.trainer, "_trial", None)
        if not isinstance(trial, optuna.trial.Trial):
            raise RuntimeError(
                "WWTuneCallback: no Optuna trial for this run; run trainer.hyperparameter_search("
                "backend='optuna', ...) or pass WWTuneCallback(trial=trial)."
            )
        return trial

    def on_train_begin(self, args, state, control, **kwargs):
        trial = self._trial()
        self.study = trial.study
        budget = self.budget if self.budget is not None else int(state.max_steps)
        self.bridge = TrialBridge(trial, score=self.score, budget=budget, **self.bridge_kwargs)
        self._pending, self._last_log, self._stopped = None, None, False

    def on_log(self, args, state, control, logs=None, model=None, **kwargs):
        if not logs or "loss" not in logs:
            return
        self._last_log = (int(state.global_step), float(logs["loss"]))
        if self._pending is not None and state.global_step >= self._pending:
            self._pending = None
            self._report(state.global_step, model, float(logs["loss"]))

    def on_epoch_end(self, args, state, control, model=None, **kwargs):
        if self._last_log is not None and self._last_log[0] == state.global_step:
            self._report(state.global_step, model, self._last_log[1])  # logged at this very step
        else:
            self._pending = int(state.global_step)
            control.should_log = True  # the epoch's training loss, logged right after this hook

    def _report(self, step: int, model: Any, loss: float) -> None:
        assert self.bridge is not None
        try:
            self.bridge.report(step, model, loss)
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
        heldout = self.heldout(model) if self.heldout is not None else None
        self.trainer.objective = self.bridge.finish(heldout=heldout)  # so no trainer.evaluate() follows

    def finish(self, result: Mapping[str, Any] | None = None, *, heldout: float | None = None) -> float:
        """End the trial after ``trainer.train()`` (own objective): see :meth:`wwtune.TrialBridge.finish`."""
        if self.bridge is None:
            raise RuntimeError("WWTuneCallback.finish() before trainer.train(): the callback never ran.")
        return self.bridge.finish(result, heldout=heldout)
