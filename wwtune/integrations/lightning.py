"""``WWTuneCallback``: score, report and prune a Lightning run at each train-epoch end (no validation loop).

optuna-integration's ``PyTorchLightningPruningCallback`` reports in ``on_validation_end`` only, so a run
without a validation loop is never pruned. This callback acts in ``on_train_epoch_end``, on the weights
and the epoch's training loss, through :class:`wwtune.TrialBridge`::

    def objective(trial):
        model = MyModule(lr=trial.suggest_float("lr", 1e-3, 0.3, log=True))
        wwtune_cb = WWTuneCallback(trial)                  # reads "train_loss", logged with on_epoch=True
        trainer = lightning.Trainer(max_epochs=6, callbacks=[wwtune_cb], logger=False,
                                    enable_checkpointing=False, enable_progress_bar=False)
        trainer.fit(model, train_dataloaders=loader)       # may raise optuna.TrialPruned (reason stored)
        return wwtune_cb.finish(heldout=accuracy(model))   # the α score, a float

**The training loss it reads** is the epoch mean of the metric named ``monitor`` (default ``"train_loss"``):
``train_loss_epoch`` when ``training_step`` logs ``self.log("train_loss", loss, on_epoch=True)`` (Lightning
then keeps ``train_loss_step`` and ``train_loss_epoch``), or ``train_loss`` itself when it is logged with
``on_step=False, on_epoch=True``. A metric logged per step only (``self.log``'s default in
``training_step``) holds the last batch's loss, not the epoch's: the callback stops with a one-line error
saying to add ``on_epoch=True``, as it does when the metric is not logged at all.

Defaults as the CLI's: a run whose loss did not fall completes as infeasible (``on_violation="infeasible"``;
runs shorter than :data:`wwtune.bridge.LOSS_RULE_MIN_REPORTS` epochs need only fall at every epoch); a
NaN/Inf loss stops training (``trainer.should_stop``) and :meth:`WWTuneCallback.finish` completes the trial
as infeasible with the worst value. :meth:`WWTuneCallback.finish` runs once.

Requires ``lightning`` (``pip install 'wwtune[lightning]'``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import lightning.pytorch as pl
import optuna

from wwtune.bridge import TrialBridge
from wwtune.exceptions import TrainingDiverged
from wwtune.score import Score

__all__ = ["WWTuneCallback"]


class WWTuneCallback(pl.Callback):
    """Analyse the LightningModule's weights at each train-epoch end, report the α score, maybe prune.

    Args:
        trial: the Optuna trial of this run.
        monitor: the logged training loss whose epoch mean is read (see the module docstring); default
            ``"train_loss"`` (log it with ``self.log("train_loss", loss, on_epoch=True)``).
        budget: the number of epochs the pruner's warm-up is a fraction of; default the Trainer's
            ``max_epochs``.
        report_every: analyse every this many epochs (and at the last); default 1.
        score: the α score; default ``Score()`` (band (2, 2), layers with at least 50 eigenvalues).
        **bridge: further :class:`wwtune.TrialBridge` arguments (``min_loss_drop``, ``on_violation``,
            ``analysis_kwargs``, ``check_weights``, ``objective``).

    Raises ``optuna.TrialPruned`` out of ``trainer.fit`` when the study's pruner says so (reason stored);
    a NaN/Inf loss or weights stop the run, completed as infeasible by :meth:`finish`
    (``on_violation="fail"``: :class:`wwtune.TrialFailed` is raised instead).
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
        self.diverged: str | None = None

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
                **{"keeps_diverged": True, **self.bridge_kwargs},
            )
        return self.bridge

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._bridge(trainer)

    def epoch_loss(self, trainer: pl.Trainer) -> float:
        """The epoch mean of the ``monitor`` metric (see the module docstring), or a one-line error."""
        metrics, epoch, key = trainer.callback_metrics, trainer.current_epoch + 1, self.monitor
        fix = f"log it in training_step with self.log({key!r}, loss, on_epoch=True)"
        if f"{key}_epoch" in metrics:  # logged with on_step=True and on_epoch=True
            return float(metrics[f"{key}_epoch"])
        if key not in metrics:
            raise KeyError(
                f"WWTuneCallback(monitor={key!r}): no such logged metric at epoch {epoch}; logged: "
                f"{sorted(metrics)}; {fix}."
            )
        # how the metric was logged: Lightning keeps it in its result collection only (no public API)
        results = getattr(trainer, "_results", None)
        logged = [m.meta for name, m in (results or {}).items() if name.rsplit(".", 1)[-1] == key]
        if logged and not any(meta.on_epoch for meta in logged):
            raise ValueError(
                f"WWTuneCallback(monitor={key!r}) reads the epoch's mean training loss, but {key!r} is "
                f"logged per step only (its value is the last batch's loss); {fix}."
            )
        return float(metrics[key])

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.diverged is not None:
            return
        loss = self.epoch_loss(trainer)
        bridge = self._bridge(trainer)
        try:
            bridge.report(trainer.current_epoch + 1, pl_module, loss)
        except TrainingDiverged as exc:
            if bridge.on_violation == "fail":
                raise
            self.diverged = exc.reason  # infeasible: stop here; finish() completes it with the penalty
            trainer.should_stop = True

    def finish(self, result: Mapping[str, Any] | None = None, *, heldout: float | None = None) -> float:
        """End the trial after ``trainer.fit``: see :meth:`wwtune.TrialBridge.finish`; returns the score."""
        if self.bridge is None:
            raise RuntimeError("WWTuneCallback.finish() before trainer.fit(): the callback never ran.")
        if self.diverged is not None:
            if self.bridge.finished is None:
                self.bridge.finished = [self.bridge.infeasible_penalty(self.diverged)]
            return self.bridge.finished[0]
        return self.bridge.finish(result, heldout=heldout)
