"""Teacher–student classification: a fixed random teacher MLP labels Gaussian inputs; a student MLP learns.

The teacher (``d_in → teacher_width → n_classes``, tanh, Gaussian weights, fixed by ``teacher_seed``)
labels x ~ N(0, I) by the argmax of its outputs. The student (``fc1 → drop1 → fc2 → drop2 → fc3``,
ReLU) trains on ``n_train × data_fraction`` samples whose labels are replaced by a uniformly random class
with probability ``noise``. Held-out metric: the student's error rate against the teacher's clean
labels on ``n_heldout`` fresh inputs drawn from a stream never used for training (minimize).

Every knob is a hyperparameter (set them under ``fixed:`` in the objective config), so data size,
noise, difficulty and the untuned defaults can be varied to build scenarios with known answers for the
data-vs-tuning advisor: see ``conf/objective/teacher_student_{starved,untuned,mixed}.yaml``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from wwtune.objective import Params, Reporter, task

from ._common import (
    SGD_DEFAULTS,
    accuracy,
    apply_split,
    constant_predictor_loss,
    fit_epochs,
    resolve_hparams,
    subset_size,
    unseen_error,
)

DEFAULTS: dict[str, Any] = {
    **SGD_DEFAULTS,  # optimisation
    # the problem
    "n_train": 2000,
    "noise": 0.1,
    "d_in": 64,
    "teacher_width": 32,
    "student_width": 256,
    "n_classes": 10,
    "n_heldout": 5000,
    "teacher_seed": 0,
    # seed of the training sample and its label noise; None: the trial's seed (every trial its own
    # sample), an int: the same training data for every trial of a study
    "data_seed": None,
}


class Teacher(nn.Module):
    def __init__(self, d_in: int, width: int, n_classes: int, seed: int) -> None:
        super().__init__()
        rng = torch.Generator().manual_seed(seed)
        self.register_buffer("w1", torch.randn(d_in, width, generator=rng) / d_in**0.5)
        self.register_buffer("w2", torch.randn(width, n_classes, generator=rng) / width**0.5)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (torch.tanh(x @ self.w1) @ self.w2).argmax(dim=1)


class Student(nn.Module):
    def __init__(self, d_in: int, width: int, n_classes: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(d_in, width)
        self.drop1 = nn.Dropout(0.0)
        self.fc2 = nn.Linear(width, width)
        self.drop2 = nn.Dropout(0.0)
        self.fc3 = nn.Linear(width, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.drop1(torch.relu(self.fc1(x)))
        x = self.drop2(torch.relu(self.fc2(x)))
        return self.fc3(x)


def _check_problem(hp: dict[str, Any]) -> None:
    for key in ("n_train", "d_in", "teacher_width", "student_width", "n_heldout"):
        if int(hp[key]) < 1:
            raise ValueError(f"{key} must be a positive integer but got {hp[key]!r}.")
    if int(hp["n_classes"]) < 2:
        raise ValueError(f"n_classes must be at least 2 but got {hp['n_classes']!r}.")
    if not 0.0 <= float(hp["noise"]) < 1.0:
        raise ValueError(f"noise must be in [0, 1) but got {hp['noise']!r}.")


def make_data(hp: dict[str, Any], seed: int, data_fraction: float):
    """``(x_train, y_train_noisy, x_heldout, y_heldout_clean)`` for the problem described by ``hp``.

    The training pool of ``n_train`` samples depends on ``seed``; smaller fractions take its prefix, so
    they are nested. The held-out inputs come from a separate stream fixed by ``teacher_seed``.
    """
    d_in, k = int(hp["d_in"]), int(hp["n_classes"])
    teacher = Teacher(d_in, int(hp["teacher_width"]), k, int(hp["teacher_seed"]))
    rng = torch.Generator().manual_seed(1_000_003 * (int(hp["teacher_seed"]) + 1) + int(seed))
    x = torch.randn(int(hp["n_train"]), d_in, generator=rng)
    y = teacher(x)
    flip = torch.rand(len(y), generator=rng) < float(hp["noise"])
    y = torch.where(flip, torch.randint(k, y.shape, generator=rng), y)
    n = subset_size(len(x), data_fraction)
    held_rng = torch.Generator().manual_seed(2**31 - 1 - int(hp["teacher_seed"]))
    x_held = torch.randn(int(hp["n_heldout"]), d_in, generator=held_rng)
    return x[:n], y[:n], x_held, teacher(x_held)


@task(supports_data_fraction=True, supports_resplit=True)
def train(params: Params, reporter: Reporter) -> dict[str, Any]:
    """Train for ``params.budget`` epochs; returns the held-out error rate, the training-set size, the
    training loss before training (``loss_init``) and the best constant predictor's (``loss_trivial``)."""
    hp = resolve_hparams(params, DEFAULTS, "teacher_student")
    _check_problem(hp)
    data_seed = int(params.seed if hp.get("data_seed") is None else hp["data_seed"])
    x, y, x_held, y_held = make_data(hp, data_seed, params.data_fraction)
    x, y, unseen = apply_split(x, y, params.split)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(params.seed))
        model = Student(int(hp["d_in"]), int(hp["student_width"]), int(hp["n_classes"]))
        params.apply_dropout(model)
        training: dict[str, Any] = {}
        loss_init = fit_epochs(model, x, y, params, hp, reporter, record=training)
        return {
            "heldout": 1.0 - accuracy(model, x_held, y_held),
            "n_train": len(x),
            "loss_init": loss_init,
            "loss_trivial": constant_predictor_loss(y, int(hp["n_classes"])),
            **unseen_error(model, unseen),
            **({"training": training} if training else {}),
        }
