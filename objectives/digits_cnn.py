"""A small CNN on scikit-learn's 8×8 digits.

``conv1`` (1→64, 3×3) → pool → ``conv2`` (64→64, 3×3) → pool → ``fc1`` (256→128) → ``fc2`` (128→10).
``conv2`` (64 eigenvalues per kernel slice) and ``fc1`` (128) have ≥ 50 eigenvalues.
Held-out metric: accuracy on a fixed quarter of the digits never used for training (maximize).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from wwtune.objective import Params, Reporter, task

from ._common import DIGITS_DATA_DEFAULTS, SGD_DEFAULTS, train_on_digits

DEFAULTS: dict[str, Any] = {
    **SGD_DEFAULTS,
    **DIGITS_DATA_DEFAULTS,
    "channels": 64,
}


class DigitsCNN(nn.Module):
    """``conv1 → pool → conv2 → pool → drop1 → fc1 → drop2 → fc2``, ReLU after each conv/fc."""

    def __init__(self, channels: int = 64) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.drop1 = nn.Dropout(0.0)
        self.fc1 = nn.Linear(channels * 2 * 2, 128)
        self.drop2 = nn.Dropout(0.0)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(torch.relu(self.conv1(x.view(-1, 1, 8, 8))))
        x = self.pool(torch.relu(self.conv2(x)))
        x = self.drop1(x.flatten(1))
        x = self.drop2(torch.relu(self.fc1(x)))
        return self.fc2(x)


def _model(hp: dict[str, Any]) -> DigitsCNN:
    return DigitsCNN(int(hp["channels"]))


@task(supports_data_fraction=True, supports_resplit=True)
def train(params: Params, reporter: Reporter) -> dict[str, Any]:
    """Train for ``params.budget`` epochs; returns held-out accuracy and the training-set size."""
    return train_on_digits(params, reporter, "digits_cnn", DEFAULTS, _model)
