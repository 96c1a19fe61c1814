"""Which layers the in-training helpers act on, and their α now (eigenvalues from ``wwtune.spectral``).

A *candidate* is a module whose weight ``wwtune.spectral`` reads as one of ``layer_types`` (default
``dense`` = ``nn.Linear`` and ``conv2d``), in ``model.named_modules()`` order. Its α is the Hill estimator
with xmin at the median eigenvalue (``estimator="hill"``, fast) or wwtune's power-law fit
(``estimator="power_law"``, the one ``wwtune.analyze`` uses); conv kernels are pooled as in ``analyze``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from wwtune.spectral.esd import compute_esds, resolve_device
from wwtune.spectral.layers import WeightSpec, weight_specs
from wwtune.spectral.powerlaw import fit_hill, fit_power_law

__all__ = [
    "ESTIMATORS",
    "HookedLayers",
    "LAYER_TYPES",
    "Candidate",
    "candidates",
    "check_choice",
    "check_int",
    "check_layer_types",
    "layer_alphas",
    "model_device",
    "selected_layers",
]

#: α estimators the helpers accept.
ESTIMATORS = {"hill": fit_hill, "power_law": fit_power_law}
#: layer types wwtune.spectral names (``analyze``'s ``layer_types``).
LAYER_TYPES = ("dense", "embedding", "conv1d", "conv2d", "conv3d")


@dataclass(frozen=True)
class Candidate:
    """One layer: its module name, the module and its number of eigenvalues."""

    name: str
    module: nn.Module
    num_evals: int


def check_choice(value: object, option: str, allowed: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{option} must be one of {list(allowed)} but got {value!r}.")
    return value


def check_layer_types(layer_types: str | Sequence[str]) -> tuple[str, ...]:
    types = (layer_types,) if isinstance(layer_types, str) else tuple(layer_types)
    if not types:
        raise ValueError("layer_types cannot be empty; allowed: " + ", ".join(LAYER_TYPES) + ".")
    for t in types:
        check_choice(t, "layer_types", LAYER_TYPES)
    return types


def check_int(value: object, option: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{option} must be an integer ≥ {low} but got {value!r}.")
    return value


def candidates(model: nn.Module, layer_types: Sequence[str]) -> list[Candidate]:
    """The model's layers of ``layer_types`` in module order (split attention projections excluded)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module but got {type(model).__name__}.")
    modules = dict(model.named_modules())
    out = []
    for spec in weight_specs(model):
        if spec.layer_type in layer_types and spec.name in modules:
            out.append(Candidate(spec.name, modules[spec.name], spec.num_evals))
    return out


def selected_layers(
    model: nn.Module, layer_types: Sequence[str], *, skip_first_last: bool = False, min_evals: int = 1
) -> list[Candidate]:
    """The candidates left after the skip rules: first and last dropped, then those under ``min_evals``."""
    layers = candidates(model, layer_types)
    if skip_first_last:
        layers = layers[1:-1]
    return [c for c in layers if c.num_evals >= min_evals]


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (CPU for a model without parameters)."""
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def layer_alphas(
    model: nn.Module,
    names: Sequence[str],
    estimator: str = "hill",
    device: str | torch.device | None = None,
    dtype: torch.dtype = torch.float64,
) -> dict[str, float]:
    """α of the named layers now: ``{name: α}``, NaN where the fit failed (NaN/Inf weights, rank ≤ 1).

    ``device``: where the Gram matrices and eigenvalues are computed; default the weights' device.
    """
    if not names:
        return {}
    fit = ESTIMATORS[check_choice(estimator, "estimator", tuple(ESTIMATORS))]
    dev = resolve_device(device) if device is not None else model_device(model)
    wanted = set(names)
    # specs are made afresh each time: they hold the current weight tensors (model.to() swaps them)
    specs: list[WeightSpec] = [s for s in weight_specs(model) if s.name in wanted]
    esds = compute_esds(specs, device=dev, dtype=dtype)
    out = {}
    for spec, esd in zip(specs, esds, strict=True):
        result = fit(esd.evals) if esd.evals is not None else None
        ok = result is not None and result.status == "success" and math.isfinite(result.alpha)
        out[spec.name] = float(result.alpha) if ok else float("nan")
    return {n: out.get(n, float("nan")) for n in names}


class HookedLayers:
    """Base of the training helpers that put hooks on a model or an optimizer (``self._hooks``, the handles
    torch returns): :meth:`remove` takes them all off."""

    _hooks: list[Any]

    def remove(self) -> None:
        """Take off every hook this object registered (what it already changed stays: a frozen layer stays
        frozen, a learning rate set by a step stays set)."""
        for handle in self._hooks:
            handle.remove()
        self._hooks = []
