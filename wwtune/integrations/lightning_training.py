"""Lightning callbacks for :class:`wwtune.TempBalance` and :class:`wwtune.EarlyFreezing` (one step per epoch).

::

    class MyModule(lightning.LightningModule):
        def configure_optimizers(self):   # TempBalance needs one param group per layer
            return torch.optim.SGD(wwtune.training.param_groups_per_layer(self), lr=0.1, momentum=0.9)

    balance, freeze = TempBalanceCallback(), EarlyFreezingCallback()
    trainer = lightning.Trainer(max_epochs=20, callbacks=[balance, freeze])
    trainer.fit(model, loader)
    balance.balance.history, freeze.freezing.frozen   # factors per epoch, freeze epoch per layer

Requires ``lightning`` (``pip install 'wwtune[lightning]'``).
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl

from wwtune.training import EarlyFreezing, TempBalance

__all__ = ["EarlyFreezingCallback", "TempBalanceCallback"]


class _Stepped(pl.Callback):
    """Steps the training helper a subclass built at fit start (:meth:`helper`) at each train-epoch end,
    and takes its hooks off at fit end."""

    def helper(self) -> TempBalance | EarlyFreezing | None:
        """The training helper this callback built (None before fit starts)."""
        raise NotImplementedError

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        helper = self.helper()
        if helper is not None:
            helper.step()

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        helper = self.helper()
        if helper is not None:
            helper.remove()


class TempBalanceCallback(_Stepped):
    """Builds a :class:`wwtune.TempBalance` on the module and its (first) optimizer at fit start and steps
    it at each train-epoch end; the object is ``self.balance`` (its ``history`` holds the factors).

    Args:
        optimizer_index: which of ``trainer.optimizers`` to balance (default 0).
        **kwargs: :class:`wwtune.TempBalance`'s options (``map``, ``ratio``, ``estimator``, ...).
    """

    def __init__(self, optimizer_index: int = 0, **kwargs: Any) -> None:
        self.optimizer_index = optimizer_index
        self.kwargs = kwargs
        self.balance: TempBalance | None = None

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.balance is not None:
            self.balance.remove()
        self.balance = TempBalance(pl_module, trainer.optimizers[self.optimizer_index], **self.kwargs)

    def helper(self) -> TempBalance | None:
        return self.balance


class EarlyFreezingCallback(_Stepped):
    """Builds a :class:`wwtune.EarlyFreezing` at fit start and steps it at each train-epoch end; the object
    is ``self.freezing`` (``frozen``: the epoch each layer froze; ``saved_share``: backward FLOPs saved).

    Args:
        budget: the epochs planned (default the Trainer's ``max_epochs``).
        **kwargs: :class:`wwtune.EarlyFreezing`'s options (``warmup``, ``window``, ``tolerance``, ...).
    """

    def __init__(self, budget: int | None = None, **kwargs: Any) -> None:
        self.budget = budget
        self.kwargs = kwargs
        self.freezing: EarlyFreezing | None = None

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        budget = self.budget if self.budget is not None else trainer.max_epochs
        if budget is None or budget < 1:
            raise ValueError(
                f"EarlyFreezingCallback needs budget= or the Trainer's max_epochs ≥ 1 but got {budget!r}."
            )
        self.freezing = EarlyFreezing(pl_module, budget=int(budget), **self.kwargs)

    def helper(self) -> EarlyFreezing | None:
        return self.freezing
