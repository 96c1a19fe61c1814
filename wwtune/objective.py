"""The objective interface: the one contract between a training task and wwtune.

A task is a plain function ``train(params, reporter) -> dict | None``:

* ``params`` (:class:`Params`) carries the hyperparameters of one run: global values (``params["lr"]``),
  per-layer settings matched by module-name patterns, the training budget, a seed and the fraction of
  the training data to use.
* ``reporter`` (:class:`Reporter`) is called every epoch (or every k steps) with the model and the
  current training loss. Inside a study it analyses the weights' spectra, reports the score to Optuna
  and may stop the run by raising :class:`Pruned`; outside a study (:class:`NullReporter`) it only
  records the losses.
* The optional return value is a dict; ``{"heldout": value}`` hands wwtune a held-out metric that is
  stored beside the α score (never optimised unless ``score=heldout`` is chosen). Any other keys are
  stored with the trial.

**Re-splitting (for the data-vs-tuning advisor).** A task declared with
``@task(supports_data_fraction=True, supports_resplit=True)`` honours ``params.split`` (a :class:`Split`):
when it is set, the task builds the training data it would use without it (``params.data_fraction`` of
its training set, for ``params.seed``), shuffles those examples with ``split.seed``, trains on the first
``split.fraction`` of them only, and returns ``{"unseen_loss": value}`` (key :data:`UNSEEN_LOSS`): its loss
(lower is better, in the units the advice should be given in, e.g. error rate or bits per character) on
the remaining examples of the training data, which that run never saw. The task's own held-out set is
never part of a split. ``split_indices`` in ``objectives/_common.py`` does the shuffling for
sample-indexed data; the bundled tasks all support it. Tasks that do not get spectral-only advice.

Nothing here imports Optuna: a task written against this module runs with or without a study.
"""

from __future__ import annotations

import fnmatch
import math
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from wwtune.exceptions import Pruned, TrainingDiverged

__all__ = [
    "LAYER_SETTINGS",
    "NullReporter",
    "Params",
    "Pruned",
    "Reporter",
    "Split",
    "Task",
    "TrainingDiverged",
    "UNSEEN_LOSS",
    "check_finite_loss",
    "check_finite_weights",
    "task",
]

#: Result key of a re-split run: the loss on the part of the training data the run did not see.
UNSEEN_LOSS = "unseen_loss"

#: The per-layer settings a search space may give a layer pattern.
LAYER_SETTINGS = ("lr_mult", "weight_decay", "dropout")

#: Normalisation modules whose parameters ``Params.param_groups(decay_bias_and_norm=False)`` never decays.
_NORM_TYPES: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._NormBase,
    nn.LayerNorm,
    nn.GroupNorm,
    *((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ()),
)


@dataclass(frozen=True)
class Split:
    """A re-split of the run's training data: train on the first ``fraction`` of a ``seed``-shuffled order.

    The rest (at least one example) is the unseen part on which the task reports ``unseen_loss``.
    """

    seed: int
    fraction: float

    def __post_init__(self) -> None:
        if not (0.0 < float(self.fraction) < 1.0):
            raise ValueError(f"Split.fraction must be in (0, 1) but got {self.fraction!r}.")


def check_finite_loss(step: int, loss: float) -> None:
    """Raise :class:`TrainingDiverged` when the reported training loss is NaN/Inf (every reporter does)."""
    if not math.isfinite(loss):
        raise TrainingDiverged(f"training loss became {loss} at step {step}")


def check_finite_weights(model: nn.Module, step: int | None = None) -> None:
    """Raise :class:`TrainingDiverged` when any parameter of ``model`` holds a NaN/Inf."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if not bool(torch.isfinite(p).all()):
                at = "" if step is None else f" at step {step}"
                raise TrainingDiverged(f"weights of {name!r} became NaN/Inf{at}")


@dataclass
class Params:
    """Hyperparameters of one training run.

    Args:
        values: global hyperparameters (sampled and fixed), read with ``params["lr"]`` or
            ``params.get("dropout", 0.0)``.
        layers: per-layer settings, ``{pattern: {"lr_mult": 2.0, "dropout": 0.1, "weight_decay": 0.0}}``.
            Patterns are shell-style (``fnmatch``) matched against full module names such as
            ``"blocks.0.attn"`` or ``"fc*"``; the first pattern that matches a module wins.
        budget: training budget in the task's own unit (epochs or steps).
        seed: random seed for the run.
        data_fraction: fraction of the training set to use, in (0, 1].
        split: ``None`` (train on all of it), or a :class:`Split` of that data for tasks that declare
            ``supports_resplit`` (see the module docstring).
    """

    values: dict[str, Any] = field(default_factory=dict)
    layers: dict[str, dict[str, Any]] = field(default_factory=dict)
    budget: int = 10
    seed: int = 0
    data_fraction: float = 1.0
    split: Split | None = None

    def __post_init__(self) -> None:
        if not (0.0 < float(self.data_fraction) <= 1.0):
            raise ValueError(f"data_fraction must be in (0, 1] but got {self.data_fraction!r}.")
        if int(self.budget) < 1:
            raise ValueError(f"budget must be a positive integer but got {self.budget!r}.")
        if self.split is not None and not isinstance(self.split, Split):
            raise TypeError(f"split must be None or a wwtune.objective.Split but got {self.split!r}.")
        for pattern, settings in self.layers.items():
            unknown = sorted(set(settings) - set(LAYER_SETTINGS))
            if unknown:
                raise ValueError(
                    f"Unknown per-layer setting(s) {unknown} for pattern {pattern!r}; "
                    f"allowed: {list(LAYER_SETTINGS)}."
                )

    def __getitem__(self, key: str) -> Any:
        try:
            return self.values[key]
        except KeyError:
            raise KeyError(
                f"Hyperparameter {key!r} is not set; known: {sorted(self.values)}. "
                "Add it to the search space or to the objective's fixed values."
            ) from None

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def layer_setting(self, module_name: str, key: str, default: Any = None) -> Any:
        """The per-layer ``key`` of the first pattern matching ``module_name``, else ``default``."""
        for pattern, settings in self.layers.items():
            if fnmatch.fnmatchcase(module_name, pattern) and key in settings:
                return settings[key]
        return default

    def unmatched_patterns(self, model: nn.Module) -> list[str]:
        """The per-layer patterns that match no module name of ``model``."""
        names = [name for name, _ in model.named_modules() if name]
        return [p for p in self.layers if not any(fnmatch.fnmatchcase(n, p) for n in names)]

    def _warn_unmatched(self, model: nn.Module) -> None:
        names = [name for name, _ in model.named_modules() if name]
        for pattern in self.unmatched_patterns(model):
            shown = names[:40] + (["…"] if len(names) > 40 else [])
            warnings.warn(
                f"per-layer pattern {pattern!r} (search_space.layers) matches no module of the "
                f"{type(model).__name__}; its settings {sorted(self.layers[pattern])} are not applied. "
                f"Module names: {shown}",
                UserWarning,
                stacklevel=3,
            )

    def param_groups(
        self,
        model: nn.Module,
        lr: float | None = None,
        weight_decay: float | None = None,
        *,
        decay_bias_and_norm: bool = True,
        decay_follows_lr_mult: bool = True,
    ) -> list[dict[str, Any]]:
        """Optimizer parameter groups with the per-layer ``lr_mult`` and ``weight_decay`` applied.

        Each trainable parameter goes to the group of its owning module's first matching pattern;
        parameters of unmatched modules share the default group. Every group carries ``"name"`` (the
        pattern, or ``"default"``) so a test or a user can see what reached the optimizer.

        Args:
            model: the model whose ``named_parameters()`` are grouped.
            lr: base learning rate (default ``params["lr"]``); a group's lr is ``lr × lr_mult``.
            weight_decay: base weight decay (default ``params.get("weight_decay", 0.0)``); a layer
                pattern's own ``weight_decay`` setting replaces it for that layer.
            decay_bias_and_norm: ``False`` puts biases and normalisation weights (every parameter with
                fewer than 2 dimensions, and every parameter of a ``LayerNorm``/``GroupNorm``/
                ``BatchNorm``/``RMSNorm`` module) into a companion group ``"<name>/no_decay"`` with
                ``weight_decay=0`` (same lr): the usual AdamW practice. Default ``True`` (every
                parameter decays, the behaviour before this option existed).
            decay_follows_lr_mult: how a layer's ``lr_mult`` meets weight decay. PyTorch shrinks a
                weight by ``lr × weight_decay`` per step — exactly for AdamW's decoupled decay, and
                for SGD's L2 term too — and ``lr`` is the group's, so by default (``True``) a layer
                with ``lr_mult=2`` also decays twice as fast. ``False`` divides the group's weight
                decay by its ``lr_mult``, so ``lr × weight_decay`` stays at its base value and
                ``lr_mult`` changes only the gradient step. (Adam's coupled L2 goes through the
                adaptive step; the compensation is exact only for AdamW and plain SGD.)
        """
        self._warn_unmatched(model)
        base_lr = float(self["lr"] if lr is None else lr)
        base_wd = float(self.get("weight_decay", 0.0) if weight_decay is None else weight_decay)
        norm_modules = {name for name, module in model.named_modules() if isinstance(module, _NORM_TYPES)}
        groups: dict[str, dict[str, Any]] = {}
        for param_name, param in model.named_parameters():
            if not param.requires_grad:
                continue
            module_name = param_name.rpartition(".")[0]
            pattern = next((p for p in self.layers if fnmatch.fnmatchcase(module_name, p)), "default")
            no_decay = not decay_bias_and_norm and (param.ndim < 2 or module_name in norm_modules)
            key = f"{pattern}/no_decay" if no_decay else pattern
            if key not in groups:
                settings = self.layers.get(pattern, {})
                lr_mult = float(settings.get("lr_mult", 1.0))
                wd = float(settings.get("weight_decay", base_wd))
                if not decay_follows_lr_mult and lr_mult > 0:
                    wd /= lr_mult
                groups[key] = {
                    "name": key,
                    "params": [],
                    "lr": base_lr * lr_mult,
                    "weight_decay": 0.0 if no_decay else wd,
                }
            groups[key]["params"].append(param)
        return list(groups.values())

    def apply_dropout(self, model: nn.Module) -> dict[str, float]:
        """Set ``p`` of every dropout module matched by a pattern with a ``dropout`` setting.

        Unmatched dropout modules get the global ``dropout`` value when one is set. Returns
        ``{module_name: p}`` for the modules it changed.
        """
        self._warn_unmatched(model)
        changed: dict[str, float] = {}
        global_p = self.get("dropout")
        for name, module in model.named_modules():
            if not isinstance(module, nn.modules.dropout._DropoutNd):
                continue
            p = self.layer_setting(name, "dropout", global_p)
            if p is None:
                continue
            if not (0.0 <= float(p) < 1.0):
                raise ValueError(f"dropout for {name!r} must be in [0, 1) but got {p!r}.")
            module.p = float(p)
            changed[name] = float(p)
        return changed


class Reporter:
    """What a task calls while it trains. Subclassed by the study; :class:`NullReporter` stands alone."""

    def report(self, step: int, model: nn.Module, loss: float) -> None:
        """Record the training ``loss`` after ``step`` (epoch or step count, starting at 1).

        ``step=0`` (optional, before the first update) gives the loss before training: in a study it is
        the reference of the "training loss must fall" rule (``sanity.min_loss_drop``) and its spectra the
        reference of the exploding-norm rule (``sanity.norm_growth``); it is not scored. A task that cannot
        afford a pass before training may report the trivial predictor's loss there (e.g. ``log(classes)``
        for cross-entropy, the target variance for squared error) with the untrained model.

        May raise :class:`Pruned` (stop the run) or :class:`TrainingDiverged` (NaN/Inf loss).
        """
        raise NotImplementedError


class NullReporter(Reporter):
    """Records losses and checks for divergence; no analysis. Useful to run a task on its own."""

    def __init__(self) -> None:
        self.losses: list[tuple[int, float]] = []

    def report(self, step: int, model: nn.Module, loss: float) -> None:
        loss = float(loss)
        self.losses.append((int(step), loss))
        check_finite_loss(step, loss)


#: The type of a task function.
Task = Callable[[Params, Reporter], "Mapping[str, Any] | None"]


def task(
    *,
    supports_data_fraction: bool = False,
    reports: Iterable[str] = (),
    supports_resplit: bool = False,
    loss_comparable: bool = True,
) -> Callable[[Task], Task]:
    """Mark a function as a wwtune task and declare what it supports.

    ``supports_data_fraction=True`` tells the data-vs-tuning advisor that the task honours
    ``params.data_fraction``; the advisor refuses tasks that do not declare it.
    ``supports_resplit=True`` says it also honours ``params.split`` and returns ``unseen_loss`` (module
    docstring): the advisor then measures learning curves on the training data; without it the advice
    is spectral only.

    ``loss_comparable=False`` says the loss the task reports cannot be compared across trials (e.g. it
    includes a hyperparameter-dependent regulariser term such as ``weight_decay * ||W||²``): the trust
    report then shows the lowest-training-loss baseline as unavailable, and the scores that rank by the
    training loss (``train_loss``, ``fit_band``, ``pareto``) refuse the task. ``objective.loss_comparable``
    in the config overrides it.
    """

    def mark(fn: Task) -> Task:
        fn.loss_comparable = bool(loss_comparable)  # type: ignore[attr-defined]
        fn.supports_data_fraction = bool(supports_data_fraction)  # type: ignore[attr-defined]
        fn.supports_resplit = bool(supports_resplit)  # type: ignore[attr-defined]
        fn.reports = tuple(reports)  # type: ignore[attr-defined]
        return fn

    return mark
