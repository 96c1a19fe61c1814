"""Quickstart task: an MLP on scikit-learn's 8×8 digits (64 → 256 → 256 → 10).

Two layers have ≥ 50 eigenvalues (``fc1``: 64, ``fc2``: 256), so the α score has layers to count; one
trial of the default budget (20 epochs on ~1,350 images) takes well under a second of training.
Held-out metric: accuracy on a fixed quarter of the digits never used for training (maximize).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from wwtune.objective import Params, Reporter, task

from ._common import accuracy, digits_split, fit_epochs, resolve_hparams

#: Hyperparameters this task reads, with the values used when neither search space nor config sets them.
DEFAULTS: dict[str, Any] = {
    "lr": 0.05,
    "opt": "sgd",
    "momentum": 0.9,
    "weight_decay": 0.0,
    "dropout": 0.0,
    "batch_size": 64,
    "hidden": 256,
}


class DigitsMLP(nn.Module):
    """``fc1 → relu → drop1 → fc2 → relu → drop2 → fc3``."""

    def __init__(self, hidden: int = 256, dropout: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(64, hidden)
        self.drop1 = nn.Dropout(dropout)
        self.fc2 = nn.Linear(hidden, hidden)
        self.drop2 = nn.Dropout(dropout)
        self.fc3 = nn.Linear(hidden, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.drop1(torch.relu(self.fc1(x)))
        x = self.drop2(torch.relu(self.fc2(x)))
        return self.fc3(x)


@task(supports_data_fraction=True)
def train(params: Params, reporter: Reporter) -> dict[str, Any]:
    """Train for ``params.budget`` epochs; returns held-out accuracy and the training-set size."""
    hp = resolve_hparams(params, DEFAULTS, "digits_mlp")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(params.seed))
        x, y, x_held, y_held = digits_split(params.seed, params.data_fraction)
        model = DigitsMLP(int(hp["hidden"]))
        params.apply_dropout(model)
        fit_epochs(model, x, y, params, hp, reporter)
        return {"heldout": accuracy(model, x_held, y_held), "n_train": len(x)}
