"""Small helpers shared by the bundled tasks: hyperparameter defaults, subsets, optimizer, training loop.

A user copying a task can inline what they need from here; nothing in it knows about Optuna.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from functools import lru_cache
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from wwtune.objective import UNSEEN_LOSS, Params, Reporter, Split
from wwtune.training import param_groups_per_layer

from ._training import TRAINING_DEFAULTS, InTraining

__all__ = [
    "DIGITS_DATA_DEFAULTS",
    "OPTIMIZERS",
    "SGD_DEFAULTS",
    "accuracy",
    "apply_split",
    "constant_predictor_loss",
    "digits_indices",
    "digits_split",
    "fit_epochs",
    "flip_labels",
    "initial_loss",
    "make_optimizer",
    "resolve_hparams",
    "split_indices",
    "subset_size",
    "train_on_digits",
    "unseen_error",
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
    # how weight decay reaches the parameters: see Params.param_groups (defaults: the behaviour before
    # these options existed; the AdamW search spaces set decay_bias_and_norm: false, the usual practice)
    "decay_bias_and_norm": True,
    "decay_follows_lr_mult": True,
    # schedule and in-training helpers (objectives/_training.py); all off by default
    **TRAINING_DEFAULTS,
}

#: Data knobs of the digits tasks. ``label_noise``: fraction of the training labels flipped to another
#: class (held-out labels stay clean). ``data_seed``: seed of the training subset and of the flips;
#: ``None`` uses the trial's seed (every trial its own subset), an int fixes the data across trials.
#: ``steps_per_epoch``: None trains full passes over the data; N makes each epoch exactly N minibatch steps
#: (drawn pass after pass), so the number of optimizer steps does not grow with the data
DIGITS_DATA_DEFAULTS: dict[str, Any] = {"label_noise": 0.0, "data_seed": None, "steps_per_epoch": None}


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
        raise ValueError(f"Task {task_name!r} has no hyperparameter(s) {unknown}; known: {sorted(defaults)}.")
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


def split_indices(n: int, split: Split) -> tuple[np.ndarray, np.ndarray]:
    """``(train, unseen)`` positions in ``range(n)`` for ``params.split``: the first ``split.fraction`` of
    a ``split.seed``-shuffled order train (at least 1, at most ``n - 1``); fractions of one seed nest."""
    if n < 2:
        raise ValueError(f"A re-split needs at least 2 training examples but got {n}.")
    order = np.random.default_rng([7919, int(split.seed)]).permutation(n)
    k = min(n - 1, max(1, round(float(split.fraction) * n)))
    return order[:k], order[k:]


def apply_split(
    x: torch.Tensor, y: torch.Tensor, split: Split | None
) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, torch.Tensor] | None]:
    """``(x_train, y_train, unseen)``: all of ``x, y`` and ``None`` without a split, else its two parts."""
    if split is None:
        return x, y, None
    train, unseen = (torch.from_numpy(i) for i in split_indices(len(x), split))
    return x[train], y[train], (x[unseen], y[unseen])


def unseen_error(model: nn.Module, unseen: tuple[torch.Tensor, torch.Tensor] | None) -> dict[str, float]:
    """``{"unseen_loss": error rate}`` on the unseen part of a re-split, ``{}`` without one."""
    return {} if unseen is None else {UNSEEN_LOSS: 1.0 - accuracy(model, *unseen)}


def make_optimizer(params: Params, model: nn.Module, hp: Mapping[str, Any]) -> torch.optim.Optimizer:
    """The optimizer named by ``hp["opt"]`` over ``params.param_groups(model)`` (per-layer lr/wd applied)."""
    groups = params.param_groups(
        model,
        lr=float(hp["lr"]),
        weight_decay=float(hp.get("weight_decay", 0.0)),
        decay_bias_and_norm=bool(hp.get("decay_bias_and_norm", True)),
        decay_follows_lr_mult=bool(hp.get("decay_follows_lr_mult", True)),
    )
    if hp.get("balance", "none") == "tempbalance":  # TempBalance needs one param group per layer
        groups = param_groups_per_layer(model, groups)
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
    record: dict[str, Any] | None = None,
) -> float:
    """Minibatch training for ``params.budget`` epochs; reports the loss before training (step 0, the
    reference of the study's loss-drop and norm-growth rules) and the epoch's mean loss after each epoch.

    An epoch is one pass over the data, or with ``hp["steps_per_epoch"] = N`` exactly N minibatches
    (consecutive batches of shuffled passes, a new shuffle when a pass ends), so that the optimizer steps do
    not grow with the data: a fixed step budget. ``hp``'s ``schedule``, ``balance`` and ``freeze`` choose the
    LR schedule and the in-training helpers (``objectives/_training.py``); what they did goes into
    ``record`` (when given and they are on). Returns the training loss before the first step
    (:func:`initial_loss`).
    """
    loss_init = initial_loss(model, x, y, loss_fn)
    reporter.report(0, model, loss_init)
    optimizer = make_optimizer(params, model, hp)
    helpers = InTraining(model, optimizer, hp, int(params.budget))
    order_rng = torch.Generator().manual_seed(int(params.seed) + 1)
    n = len(x)
    batch = min(int(hp["batch_size"]), n)
    steps = hp.get("steps_per_epoch")
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 1):
        raise ValueError(f"steps_per_epoch must be a positive integer or None but got {steps!r}.")
    batches = _batches(n, batch, order_rng)
    for epoch in range(1, int(params.budget) + 1):
        model.train()
        total, seen = 0.0, 0
        for _ in range(steps if steps is not None else -(-n // batch)):
            idx = next(batches)
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(x[idx]), y[idx])
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(idx)
            seen += len(idx)
        helpers.epoch_end()
        reporter.report(epoch, model, total / seen)
    if record is not None:
        record.update(helpers.record())
    return loss_init


def _batches(n: int, batch: int, rng: torch.Generator) -> Iterator[torch.Tensor]:
    """Minibatch indices forever: each pass a new permutation of ``range(n)``, cut into ``batch``-sized
    pieces (the last one of a pass may be smaller)."""
    while True:
        order = torch.randperm(n, generator=rng)
        for start in range(0, n, batch):
            yield order[start : start + batch]


@torch.no_grad()
def initial_loss(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy,
) -> float:
    """Mean ``loss_fn`` of ``model`` on ``(x, y)`` in eval mode: the training loss before training.

    Draws no random numbers (eval mode, no dropout), so calling it leaves the run unchanged.
    """
    was_training = model.training
    model.eval()
    batches = zip(x.split(512), y.split(512), strict=True)
    total = sum(float(loss_fn(model(xb), yb)) * len(xb) for xb, yb in batches)
    model.train(was_training)
    return total / max(len(x), 1)


def constant_predictor_loss(y: torch.Tensor, n_classes: int) -> float:
    """Cross-entropy (nats) of the best input-independent predictor of labels ``y``: their entropy.

    A model whose training loss is not below this has learned nothing from the inputs.
    """
    counts = torch.bincount(y.reshape(-1), minlength=int(n_classes)).double()
    p = counts[counts > 0] / counts.sum()
    return float(-(p * p.log()).sum())


def flip_labels(y: torch.Tensor, fraction: float, n_classes: int, seed: int) -> torch.Tensor:
    """A copy of ``y`` with ``round(fraction × len(y))`` labels (chosen by ``seed``) set to another class."""
    if not 0.0 <= float(fraction) < 1.0:
        raise ValueError(f"label_noise must be in [0, 1) but got {fraction!r}.")
    rng = torch.Generator().manual_seed(int(seed) + 7_919)
    n_flip = round(float(fraction) * len(y))
    idx = torch.randperm(len(y), generator=rng)[:n_flip]
    shift = torch.randint(1, int(n_classes), (n_flip,), generator=rng)
    out = y.clone()
    out[idx] = (y[idx] + shift) % int(n_classes)
    return out


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
    ``data_fraction`` training subset (chosen by ``hp["data_seed"]``, default the trial's seed, with
    ``hp["label_noise"]`` of its labels flipped); returns held-out accuracy, the training-set size, the
    training loss before training (``loss_init``) and that of the best constant predictor
    (``loss_trivial``, the entropy of the training labels)."""
    hp = resolve_hparams(params, defaults, task_name)
    data_seed = int(params.seed if hp.get("data_seed") is None else hp["data_seed"])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(params.seed))
        x, y, x_held, y_held = digits_split(data_seed, params.data_fraction)
        if float(hp.get("label_noise", 0.0)):
            y = flip_labels(y, float(hp["label_noise"]), 10, data_seed)
        x, y, unseen = apply_split(x, y, params.split)
        model = build(hp)
        params.apply_dropout(model)
        training: dict[str, Any] = {}
        loss_init = fit_epochs(model, x, y, params, hp, reporter, record=training)
        return {
            "heldout": accuracy(model, x_held, y_held),
            "n_train": len(x),
            "loss_init": loss_init,
            "loss_trivial": constant_predictor_loss(y, 10),
            **unseen_error(model, unseen),
            **({"training": training} if training else {}),
        }


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
