"""``WWTuneCallback``: score, report and prune a Lightning run at each train-epoch end (no validation loop).

optuna-integration's ``PyTorchLightningPruningCallback`` reports in ``on_validation_end`` only, so a run
without a validation loop is never pruned. This callback acts in ``on_train_epoch_end``, on the weights
and the epoch's training loss, through :class:`wwtune.TrialBridge`::

    def objective(trial):
        model = MyModule(lr=trial.suggest_float("lr", 1e-3, 0.3, log=True))
        wwtune_cb = WWTuneCallback(trial)                  # monitor="train_loss" (logged with on_epoch=True)
        trainer = lightning.Trainer(max_epochs=6, callbacks=[wwtune_cb], logger=False,
                                    enable_checkpointing=False, enable_progress_bar=False)
        trainer.fit(model, train_dataloaders=loader)       # may raise optuna.TrialPruned (reason stored)
        return wwtune_cb.finish(heldout=accuracy(model))   # the α score, a float

Requires ``lightning`` (``pip install 'wwtune[lightning]'``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import lightning.pytorch as pl
import optuna

from wwtune.bridge import TrialBridge
from wwtune.score import Score

__all__ = ["WWTuneCallback"]


class WWTuneCallback(pl.Callback):
    """Analyse the LightningModule's weights at each train-epoch end, report the α score, maybe prune.

    Args:
        trial: the Optuna trial of this run.
        monitor: the logged training loss in ``trainer.callback_metrics``; default ``"train_loss"`` (log
            it with ``self.log("train_loss", loss, on_epoch=True)``).
        budget: the number of epochs the pruner's warm-up is a fraction of; default the Trainer's
            ``max_epochs``.
        report_every: analyse every this many epochs (and at the last); default 1.
        score: the α score; default ``Score()`` (band (2, 2), layers with at least 50 eigenvalues).
        **bridge: further :class:`wwtune.TrialBridge` arguments (``min_loss_drop``, ``on_violation``,
            ``analysis_kwargs``, ``check_weights``, ``objective``).

    Raises ``optuna.TrialPruned`` out of ``trainer.fit`` when the study's pruner says so and
    :class:`wwtune.TrialFailed` on a NaN/Inf loss or weights (reasons stored in the trial).
    """

    def __init__(
        self,
        trial: optuna.trial.Trial,
        *,
        monitor: str = "train_loss",
        budget: int | None = None,
        report_every: int = 1,
        score: Score | None = None,
        **bridge: Any,
    ) -> None:
        super().__init__()
        if not isinstance(monitor, str) or not monitor:
            raise ValueError(f"monitor must be the name of a logged metric but got {monitor!r}.")
        self.trial, self.monitor, self.budget, self.report_every = trial, monitor, budget, report_every
        self.score = Score() if score is None else score
        self.bridge_kwargs = bridge
        self.bridge: TrialBridge | None = None

    def _bridge(self, trainer: pl.Trainer) -> TrialBridge:
        if self.bridge is None:
            budget = self.budget if self.budget is not None else trainer.max_epochs
            if budget is None or budget < 1:
                raise ValueError(
                    "WWTuneCallback needs a budget: set Trainer(max_epochs=N) or WWTuneCallback(budget=N) "
                    f"but max_epochs is {trainer.max_epochs!r}."
                )
            self.bridge = TrialBridge(
                self.trial,
                score=self.score,
                budget=int(budget),
                report_every=self.report_every,
                **self.bridge_kwargs,
            )
        return self.bridge

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._bridge(trainer)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        metrics = trainer.callback_metrics
        if self.monitor not in metrics:
            raise KeyError(
                f"WWTuneCallback(monitor={self.monitor!r}): no such logged metric at epoch "
                f"{trainer.current_epoch + 1}; logged: {sorted(metrics)}. Log the training loss with "
                f"self.log({self.monitor!r}, loss, on_epoch=True) in training_step."
            )
        loss = float(metrics[self.monitor])
        self._bridge(trainer).report(trainer.current_epoch + 1, pl_module, loss)

    def finish(self, result: Mapping[str, Any] | None = None, *, heldout: float | None = None) -> float:
        """End the trial after ``trainer.fit``: see :meth:`wwtune.TrialBridge.finish`; returns the score."""
        if self.bridge is None:
            raise RuntimeError("WWTuneCallback.finish() before trainer.fit(): the callback never ran.")
        return self.bridge.finish(result, heldout=heldout)
