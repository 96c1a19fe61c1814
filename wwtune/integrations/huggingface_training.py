"""Hugging Face ``TrainerCallback`` s for :class:`wwtune.TempBalance` and :class:`wwtune.EarlyFreezing`.

The Trainer's default optimizer puts all weights in one or two groups; TempBalance needs one group per
layer, so pass an optimizer built from :func:`wwtune.training.param_groups_per_layer`::

    model = ...
    opt = torch.optim.AdamW(wwtune.training.param_groups_per_layer(model), lr=5e-5)
    balance, freeze = TempBalanceCallback(), EarlyFreezingCallback()
    trainer = Trainer(model=model, args=args, train_dataset=train, optimizers=(opt, None),
                      callbacks=[balance, freeze])
    trainer.train()
    balance.balance.history, freeze.freezing.frozen

Both step once per epoch (``on_epoch_end``), or every ``every_steps`` optimizer steps when given.
Requires ``transformers`` (``pip install 'wwtune[huggingface]'``).
"""

from __future__ import annotations

import math
from typing import Any

from transformers import TrainerCallback

from wwtune.training import EarlyFreezing, TempBalance

__all__ = ["EarlyFreezingCallback", "TempBalanceCallback"]


def _check_every(every_steps: int | None) -> int | None:
    if every_steps is not None and (
        isinstance(every_steps, bool) or not isinstance(every_steps, int) or every_steps < 1
    ):
        raise ValueError(f"every_steps must be a positive integer or None but got {every_steps!r}.")
    return every_steps


class _Stepper(TrainerCallback):
    """Calls ``self.step_helper()`` at each epoch end, or every ``every_steps`` optimizer steps."""

    def __init__(self, every_steps: int | None) -> None:
        self.every_steps = _check_every(every_steps)

    def helper(self) -> TempBalance | EarlyFreezing | None:
        """The training helper this callback built (None before training starts)."""
        raise NotImplementedError

    def step_helper(self) -> None:
        helper = self.helper()
        if helper is not None:
            helper.step()

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        helper = self.helper()
        if helper is not None:
            helper.remove()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.every_steps is not None and state.global_step % self.every_steps == 0:
            self.step_helper()

    def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.every_steps is None:
            self.step_helper()


class TempBalanceCallback(_Stepper):
    """Builds :class:`wwtune.TempBalance` on the Trainer's model and optimizer (``self.balance``).

    Args:
        every_steps: step every this many optimizer steps instead of once per epoch (default None).
        **kwargs: :class:`wwtune.TempBalance`'s options (``map``, ``ratio``, ``estimator``, ...).
    """

    def __init__(self, every_steps: int | None = None, **kwargs: Any) -> None:
        super().__init__(every_steps)
        self.kwargs = kwargs
        self.balance: TempBalance | None = None

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        model, optimizer = kwargs.get("model"), kwargs.get("optimizer")
        if optimizer is None:
            raise ValueError("TempBalanceCallback needs the Trainer's optimizer but the Trainer passed none.")
        optimizer = getattr(optimizer, "optimizer", optimizer)  # accelerate's AcceleratedOptimizer wraps it
        if self.balance is not None:
            self.balance.remove()
        self.balance = TempBalance(model, optimizer, **self.kwargs)

    def helper(self) -> TempBalance | None:
        return self.balance


class EarlyFreezingCallback(_Stepper):
    """Builds :class:`wwtune.EarlyFreezing` on the Trainer's model at train start; ``self.freezing``.

    Args:
        budget: the ``step()`` calls planned (default: the run's epochs, or its optimizer steps divided by
            ``every_steps``).
        every_steps: step every this many optimizer steps instead of once per epoch (default None).
        **kwargs: :class:`wwtune.EarlyFreezing`'s options (``warmup``, ``window``, ``tolerance``, ...).
    """

    def __init__(self, budget: int | None = None, every_steps: int | None = None, **kwargs: Any) -> None:
        super().__init__(every_steps)
        self.budget = budget
        self.kwargs = kwargs
        self.freezing: EarlyFreezing | None = None

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        budget = self.budget
        if budget is None:
            if self.every_steps is not None:
                budget = max(1, int(state.max_steps) // self.every_steps)
            else:
                budget = max(1, math.ceil(float(state.num_train_epochs or args.num_train_epochs)))
        self.freezing = EarlyFreezing(kwargs["model"], budget=int(budget), **self.kwargs)

    def helper(self) -> EarlyFreezing | None:
        return self.freezing
