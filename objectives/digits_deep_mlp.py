"""A deeper digits MLP where per-layer rules have layers to act on: ``fc1 … fc6`` (64 → 128 × 5 → 10).

TempBalance skips the first and the last layer and those with < 50 eigenvalues, so it balances
``fc2 … fc5`` (128 eigenvalues each). A ``drop`` (dropout, default 0) sits before ``fc6``. Same data,
held-out quarter and hyperparameters as ``digits_mlp`` (``schedule``, ``balance``, ``freeze``:
objectives/_training.py). Held-out metric: accuracy (maximize).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from wwtune.objective import Params, Reporter, task

from ._common import DIGITS_DATA_DEFAULTS, SGD_DEFAULTS, train_on_digits

DEFAULTS: dict[str, Any] = {**SGD_DEFAULTS, **DIGITS_DATA_DEFAULTS, "hidden": 128, "depth": 6}


class DeepMLP(nn.Module):
    """``fc1 → relu → … → fc<depth-1> → relu → drop → fc<depth>``."""

    def __init__(self, hidden: int = 128, depth: int = 6) -> None:
        super().__init__()
        if depth < 2:
            raise ValueError(f"depth must be at least 2 but got {depth!r}.")
        sizes = [64] + [hidden] * (depth - 1) + [10]
        for i in range(depth):
            self.add_module(f"fc{i + 1}", nn.Linear(sizes[i], sizes[i + 1]))
        self.drop = nn.Dropout(0.0)
        self.depth = depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i in range(1, self.depth):
            x = torch.relu(getattr(self, f"fc{i}")(x))
        return getattr(self, f"fc{self.depth}")(self.drop(x))


@task(supports_data_fraction=True, supports_resplit=True)
def train(params: Params, reporter: Reporter) -> dict[str, Any]:
    """Train for ``params.budget`` epochs; returns held-out accuracy and the training-set size."""
    return train_on_digits(
        params, reporter, "digits_deep_mlp", DEFAULTS, lambda hp: DeepMLP(int(hp["hidden"]), int(hp["depth"]))
    )
