"""A deeper digits CNN where per-layer rules have layers to act on (all convs 3×3, padding 1):

``conv1`` (1→16) → ``conv2`` (16→32) → pool → ``conv3``, ``conv4`` (32→32) → pool → ``drop`` → ``fc1``
(128→64) → ``fc2`` (64→10). TempBalance skips the first and the last layer and those with < 50
eigenvalues, so it balances ``conv2`` (144 eigenvalues), ``conv3``, ``conv4`` (288) and ``fc1`` (64).
Same data, held-out quarter and hyperparameters as ``digits_cnn`` (``schedule``, ``balance``, ``freeze``:
objectives/_training.py). Held-out metric: accuracy (maximize).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from wwtune.objective import Params, Reporter, task

from ._common import DIGITS_DATA_DEFAULTS, SGD_DEFAULTS, train_on_digits

DEFAULTS: dict[str, Any] = {**SGD_DEFAULTS, **DIGITS_DATA_DEFAULTS, "channels": 32}


class DeepCNN(nn.Module):
    """Four 3×3 convs (two pools) and two linear layers; ``channels`` is the width of conv2 … conv4."""

    def __init__(self, channels: int = 32) -> None:
        super().__init__()
        half = max(channels // 2, 1)
        self.conv1 = nn.Conv2d(1, half, 3, padding=1)
        self.conv2 = nn.Conv2d(half, channels, 3, padding=1)
        self.conv3 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv4 = nn.Conv2d(channels, channels, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.drop = nn.Dropout(0.0)
        self.fc1 = nn.Linear(channels * 4, 64)
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv1(x.view(-1, 1, 8, 8)))
        x = self.pool(torch.relu(self.conv2(x)))
        x = torch.relu(self.conv3(x))
        x = self.pool(torch.relu(self.conv4(x)))
        return self.fc2(torch.relu(self.fc1(self.drop(x.flatten(1)))))


@task(supports_data_fraction=True, supports_resplit=True)
def train(params: Params, reporter: Reporter) -> dict[str, Any]:
    """Train for ``params.budget`` epochs; returns held-out accuracy and the training-set size."""
    return train_on_digits(
        params, reporter, "digits_deep_cnn", DEFAULTS, lambda hp: DeepCNN(int(hp["channels"]))
    )
