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

from ._common import DIGITS_DATA_DEFAULTS, SGD_DEFAULTS, train_on_digits

#: Hyperparameters this task reads, with the values used when neither search space nor config sets them.
DEFAULTS: dict[str, Any] = {
    **SGD_DEFAULTS,
    **DIGITS_DATA_DEFAULTS,
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


@task(supports_data_fraction=True, supports_resplit=True)
def train(params: Params, reporter: Reporter) -> dict[str, Any]:
    """Train for ``params.budget`` epochs; returns held-out accuracy and the training-set size."""
    return train_on_digits(params, reporter, "digits_mlp", DEFAULTS, lambda hp: DigitsMLP(int(hp["hidden"])))
