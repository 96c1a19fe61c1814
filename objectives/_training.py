"""The bundled tasks' schedule and in-training helpers, chosen by hyperparameters.

``schedule``: ``constant`` (default) or ``cosine`` (``CosineAnnealingLR`` over the epochs, stepped each
epoch). ``balance``: ``none`` (default) or ``tempbalance`` (:class:`wwtune.TempBalance` with
``balance_map``, stepped each epoch). ``freeze``: ``none`` (default) or ``early``
(:class:`wwtune.EarlyFreezing` over the budget with ``freeze_tolerance``). Both are searchable like any
other hyperparameter (``balance: {type: categorical, choices: [none, tempbalance]}``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from wwtune.training import MAPS, EarlyFreezing, TempBalance

__all__ = ["TRAINING_DEFAULTS", "InTraining"]

#: Hyperparameters of the schedule and the in-training helpers, with their defaults (all off).
TRAINING_DEFAULTS: dict[str, Any] = {
    "schedule": "constant",
    "balance": "none",
    "balance_map": "sqrt",
    "freeze": "none",
    "freeze_tolerance": 0.002,
}

_CHOICES = {
    "schedule": ("constant", "cosine"),
    "balance": ("none", "tempbalance"),
    "balance_map": MAPS,
    "freeze": ("none", "early"),
}


class InTraining:
    """The scheduler, TempBalance and EarlyFreezing of one run; call :meth:`epoch_end` after each epoch."""

    def __init__(
        self, model: nn.Module, optimizer: torch.optim.Optimizer, hp: Mapping[str, Any], budget: int
    ):
        for key, allowed in _CHOICES.items():
            if hp.get(key, TRAINING_DEFAULTS[key]) not in allowed:
                raise ValueError(f"{key} must be one of {list(allowed)} but got {hp[key]!r}.")
        self.scheduler = (
            torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(int(budget), 1))
            if hp.get("schedule", "constant") == "cosine"
            else None
        )
        self.balance = (
            TempBalance(model, optimizer, map=hp.get("balance_map", "sqrt"))
            if hp.get("balance", "none") == "tempbalance"
            else None
        )
        self.freeze = (
            EarlyFreezing(model, budget=int(budget), tolerance=float(hp.get("freeze_tolerance", 0.002)))
            if hp.get("freeze", "none") == "early"
            else None
        )
        self.analysis_s = 0.0
        self._start = time.perf_counter()

    def epoch_end(self) -> None:
        if self.scheduler is not None:
            self.scheduler.step()
        start = time.perf_counter()
        if self.freeze is not None:
            self.freeze.step()
        if self.balance is not None:
            self.balance.step()
        self.analysis_s += time.perf_counter() - start

    def record(self) -> dict[str, Any]:
        """``{"tempbalance", "freezing", "analysis_s"}`` for the trial record (empty when both are off)."""
        out: dict[str, Any] = {}
        if self.balance is not None:
            out["tempbalance"] = self.balance.state()
        if self.freeze is not None:
            out["freezing"] = self.freeze.state()
        if out:
            out["analysis_s"] = self.analysis_s  # of elapsed_s, the training loop's wall time
            out["elapsed_s"] = time.perf_counter() - self._start
        return out
