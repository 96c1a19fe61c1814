"""Deeper digits tasks where per-layer rules have layers to act on (TempBalance skips the first and the
last layer and those with < 50 eigenvalues, so it needs ≥ 6 layers to balance 4).

- ``train_mlp``: ``fc1 … fc6`` (64 → 128 → 128 → 128 → 128 → 128 → 10); ``fc2 … fc5`` balanced.
- ``train_cnn``: ``conv1`` (1→16) → ``conv2`` (16→32) → pool → ``conv3``, ``conv4`` (32→32) → pool →
  ``fc1`` (128→64) → ``fc2`` (64→10), all 3×3 convs; ``conv2`` (144 eigenvalues), ``conv3``, ``conv4``
  (288) and ``fc1`` (64) balanced.

Same data, held-out quarter and hyperparameters as ``digits_mlp`` (``schedule``, ``balance``,
``freeze``: objectives/_training.py). Held-out metric: accuracy (maximize).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from wwtune.objective import Params, Reporter, task

from ._common import DIGITS_DATA_DEFAULTS, SGD_DEFAULTS, train_on_digits

DEFAULTS: dict[str, Any] = {**SGD_DEFAULTS, **DIGITS_DATA_DEFAULTS, "hidden": 128, "depth": 6, "channels": 32}


class DeepMLP(nn.Module):
    """``fc1 → relu → … → fc<depth>``."""

    def __init__(self, hidden: int = 128, depth: int = 6) -> None:
        super().__init__()
        if depth < 2:
            raise ValueError(f"depth must be at least 2 but got {depth!r}.")
        sizes = [64] + [hidden] * (depth - 1) + [10]
        for i in range(depth):
            self.add_module(f"fc{i + 1}", nn.Linear(sizes[i], sizes[i + 1]))
        self.depth = depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i in range(1, self.depth):
            x = torch.relu(getattr(self, f"fc{i}")(x))
        return getattr(self, f"fc{self.depth}")(x)


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
        self.fc1 = nn.Linear(channels * 4, 64)
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv1(x.view(-1, 1, 8, 8)))
        x = self.pool(torch.relu(self.conv2(x)))
        x = torch.relu(self.conv3(x))
        x = self.pool(torch.relu(self.conv4(x)))
        return self.fc2(torch.relu(self.fc1(x.flatten(1))))


@task(supports_data_fraction=True, supports_resplit=True)
def train_mlp(params: Params, reporter: Reporter) -> dict[str, Any]:
    """Train the deep MLP for ``params.budget`` epochs; returns held-out accuracy and the train size."""
    return train_on_digits(
        params, reporter, "digits_deep_mlp", DEFAULTS, lambda hp: DeepMLP(int(hp["hidden"]), int(hp["depth"]))
    )


@task(supports_data_fraction=True, supports_resplit=True)
def train_cnn(params: Params, reporter: Reporter) -> dict[str, Any]:
    """Train the deep CNN for ``params.budget`` epochs; returns held-out accuracy and the train size."""
    return train_on_digits(
        params, reporter, "digits_deep_cnn", DEFAULTS, lambda hp: DeepCNN(int(hp["channels"]))
    )
