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

__all__ = [
    "LAYER_SETTINGS",
    "NullReporter",
    "Params",
    "Pruned",
    "Reporter",
    "Task",
    "TrainingDiverged",
    "check_finite_loss",
    "check_finite_weights",
    "task",
]

#: The per-layer settings a search space may give a layer pattern.
LAYER_SETTINGS = ("lr_mult", "weight_decay", "dropout")


class Pruned(Exception):  # noqa: N818 - reads as "the run was pruned"
    """Raised by a reporter to stop a run early; the study records the reason."""

    def __init__(self, reason: str, step: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.step = step


class TrainingDiverged(Exception):  # noqa: N818
    """Raised when a run's loss or weights became NaN/Inf; the trial fails with this reason."""


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
    """

    values: dict[str, Any] = field(default_factory=dict)
    layers: dict[str, dict[str, Any]] = field(default_factory=dict)
    budget: int = 10
    seed: int = 0
    data_fraction: float = 1.0

    def __post_init__(self) -> None:
        if not (0.0 < float(self.data_fraction) <= 1.0):
            raise ValueError(f"data_fraction must be in (0, 1] but got {self.data_fraction!r}.")
        if int(self.budget) < 1:
            raise ValueError(f"budget must be a positive integer but got {self.budget!r}.")
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
        self, model: nn.Module, lr: float | None = None, weight_decay: float | None = None
    ) -> list[dict[str, Any]]:
        """Optimizer parameter groups with the per-layer ``lr_mult`` and ``weight_decay`` applied.

        Each trainable parameter goes to the group of its owning module's first matching pattern;
        parameters of unmatched modules share the default group. Every group carries ``"name"`` (the
        pattern, or ``"default"``) so a test or a user can see what reached the optimizer.
        """
        self._warn_unmatched(model)
        base_lr = float(self["lr"] if lr is None else lr)
        base_wd = float(self.get("weight_decay", 0.0) if weight_decay is None else weight_decay)
        groups: dict[str, dict[str, Any]] = {}
        for param_name, param in model.named_parameters():
            if not param.requires_grad:
                continue
            module_name = param_name.rpartition(".")[0]
            pattern = next((p for p in self.layers if fnmatch.fnmatchcase(module_name, p)), "default")
            if pattern not in groups:
                settings = self.layers.get(pattern, {})
                groups[pattern] = {
                    "name": pattern,
                    "params": [],
                    "lr": base_lr * float(settings.get("lr_mult", 1.0)),
                    "weight_decay": float(settings.get("weight_decay", base_wd)),
                }
            groups[pattern]["params"].append(param)
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


def task(*, supports_data_fraction: bool = False, reports: Iterable[str] = ()) -> Callable[[Task], Task]:
    """Mark a function as a wwtune task and declare what it supports.

    ``supports_data_fraction=True`` tells the data-vs-tuning advisor that the task honours
    ``params.data_fraction``; the advisor refuses tasks that do not declare it.
    """

    def mark(fn: Task) -> Task:
        fn.supports_data_fraction = bool(supports_data_fraction)  # type: ignore[attr-defined]
        fn.reports = tuple(reports)  # type: ignore[attr-defined]
        return fn

    return mark
