"""Small helpers shared by the bundled tasks: hyperparameter defaults, subsets, optimizer, training loop.

A user copying a task can inline what they need from here; nothing in it knows about Optuna.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from wwtune.objective import Params, Reporter

__all__ = [
    "OPTIMIZERS",
    "SGD_DEFAULTS",
    "accuracy",
    "digits_indices",
    "digits_split",
    "fit_epochs",
    "make_optimizer",
    "resolve_hparams",
    "subset_size",
    "train_on_digits",
]

#: Optimizers a task's ``opt`` hyperparameter may name.
OPTIMIZERS = ("sgd", "adam", "adamw")

#: Fraction of the digits kept aside (never trained on) for the held-out metric.
DIGITS_HELDOUT_FRACTION = 0.25

#: Optimiser defaults shared by the SGD-trained tasks (digits_mlp, digits_cnn, teacher_student).
SGD_DEFAULTS: dict[str, Any] = {
    "lr": 0.05,
    "opt": "sgd",
    "momentum": 0.9,
    "weight_decay": 0.0,
    "dropout": 0.0,
    "batch_size": 64,
}


def resolve_hparams(params: Params, defaults: Mapping[str, Any], task_name: str) -> dict[str, Any]:
    """The task's ``defaults``, overridden by ``params.values["untuned"]``, overridden by ``params.values``.

    ``untuned`` (a mapping, usually under ``fixed:`` in an objective config) holds hyperparameter values
    used when the search space does not set them: a scenario's untuned configuration. Unknown names,
    at either level, are an error rather than ignored.
    """
    values = dict(params.values)
    untuned = values.pop("untuned", None) or {}
    if not isinstance(untuned, Mapping):
        raise ValueError(f"untuned must be a mapping of hyperparameter values but got {untuned!r}.")
    unknown = sorted((set(values) | set(untuned)) - set(defaults))
    if unknown:
        raise ValueError(
            f"Task {task_name!r} has no hyperparameter(s) {unknown}; known: {sorted(defaults)}."
        )
    hp = {**defaults, **untuned, **values}
    if hp.get("opt", "sgd") not in OPTIMIZERS:
        raise ValueError(f"opt must be one of {list(OPTIMIZERS)} but got {hp['opt']!r}.")
    for key in ("lr", "weight_decay", "momentum"):
        if key in hp and float(hp[key]) < 0:
            raise ValueError(f"{key} cannot be negative but got {hp[key]!r}.")
    if "batch_size" in hp and int(hp["batch_size"]) < 1:
        raise ValueError(f"batch_size must be a positive integer but got {hp['batch_size']!r}.")
    return hp


def subset_size(n_full: int, data_fraction: float) -> int:
    """Number of training examples used at ``data_fraction`` of ``n_full`` (at least one)."""
    return max(1, round(float(data_fraction) * n_full))


def make_optimizer(params: Params, model: nn.Module, hp: Mapping[str, Any]) -> torch.optim.Optimizer:
    """The optimizer named by ``hp["opt"]`` over ``params.param_groups(model)`` (per-layer lr/wd applied)."""
    groups = params.param_groups(model, lr=float(hp["lr"]), weight_decay=float(hp.get("weight_decay", 0.0)))
    opt = hp.get("opt", "sgd")
    if opt == "sgd":
        return torch.optim.SGD(groups, lr=float(hp["lr"]), momentum=float(hp.get("momentum", 0.0)))
    if opt == "adam":
        return torch.optim.Adam(groups, lr=float(hp["lr"]))
    return torch.optim.AdamW(groups, lr=float(hp["lr"]))


def fit_epochs(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    params: Params,
    hp: Mapping[str, Any],
    reporter: Reporter,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy,
) -> None:
    """Minibatch training for ``params.budget`` epochs; reports the loss before training (step 0, the
    reference of the study's loss-drop and norm-growth rules) and the epoch's mean loss after each epoch."""
    reporter.report(0, model, initial_loss(model, x, y, loss_fn))
    optimizer = make_optimizer(params, model, hp)
    order_rng = torch.Generator().manual_seed(int(params.seed) + 1)
    n = len(x)
    batch = min(int(hp["batch_size"]), n)
    for epoch in range(1, int(params.budget) + 1):
        model.train()
        order = torch.randperm(n, generator=order_rng)
        total = 0.0
        for start in range(0, n, batch):
            idx = order[start : start + batch]
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(x[idx]), y[idx])
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(idx)
        reporter.report(epoch, model, total / n)


@torch.no_grad()
def initial_loss(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy,
) -> float:
    """The training-set loss of the model as it is (before training), in eval mode."""
    was_training = model.training
    model.eval()
    try:
        return float(loss_fn(model(x), y))
    finally:
        model.train(was_training)


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of ``x`` classified as ``y`` (model in eval mode, no gradients)."""
    model.eval()
    return float((model(x).argmax(dim=1) == y).float().mean())


@lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits  # shipped with scikit-learn, no download

    data = load_digits()
    return (data.data / 16.0).astype(np.float32), data.target.astype(np.int64)


def digits_indices(seed: int, data_fraction: float, n_total: int) -> tuple[np.ndarray, np.ndarray]:
    """``(train, heldout)`` row indices into the digits: see :func:`digits_split`."""
    split = np.random.default_rng(0).permutation(n_total)
    n_heldout = round(DIGITS_HELDOUT_FRACTION * n_total)
    heldout, pool = split[:n_heldout], split[n_heldout:]
    pool = pool[np.random.default_rng(int(seed)).permutation(len(pool))]
    return pool[: subset_size(len(pool), data_fraction)], heldout


def train_on_digits(
    params: Params,
    reporter: Reporter,
    task_name: str,
    defaults: Mapping[str, Any],
    build: Callable[[Mapping[str, Any]], nn.Module],
) -> dict[str, Any]:
    """The digits tasks' training run: seeded model ``build(hp)``, ``params.budget`` epochs on the
    ``data_fraction`` training subset; returns held-out accuracy and the training-set size."""
    hp = resolve_hparams(params, defaults, task_name)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(params.seed))
        x, y, x_held, y_held = digits_split(params.seed, params.data_fraction)
        model = build(hp)
        params.apply_dropout(model)
        fit_epochs(model, x, y, params, hp, reporter)
        return {"heldout": accuracy(model, x_held, y_held), "n_train": len(x)}


def digits_split(
    seed: int, data_fraction: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """scikit-learn's 8×8 digits as ``(x_train, y_train, x_heldout, y_heldout)``, pixels in [0, 1].

    The held-out quarter is the same for every seed and fraction, so held-out metrics are comparable
    across trials. The training subset is the first ``data_fraction`` of a ``seed``-shuffled order of
    the remaining images, so smaller fractions are nested inside larger ones for one seed.
    """
    x, y = _digits()
    train, heldout = digits_indices(seed, data_fraction, len(x))
    as_t = torch.from_numpy
    return as_t(x[train]), as_t(y[train]), as_t(x[heldout]), as_t(y[heldout])
