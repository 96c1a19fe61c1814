"""Early freezing: a layer whose α has stopped moving stops training, front to back, never the last.

An absolute α threshold is unsafe (α can sit below 2 after one fine-tuning epoch, far from converged, or
fall from ~29 to ~4 while quality still improves), so the rule is *stability over a window*: after the
warm-up, a layer freezes once its α has stayed within a relative ``tolerance`` over the last ``window``
analyses, and only after every layer before it froze (as AutoFreeze freezes a prefix of blocks).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from wwtune.training.layers import (
    HookedLayers,
    check_choice,
    check_int,
    check_layer_types,
    layer_alphas,
    selected_layers,
)

__all__ = ["EarlyFreezing"]


class EarlyFreezing(HookedLayers):
    """Freezes layers (``requires_grad_(False)``, grads dropped) once their α is stable; counts compute saved.

    Call :meth:`step` once per epoch (or every k optimizer steps); ``budget`` is the number of
    :meth:`step` calls planned. Steps ``1 .. warmup`` never freeze. At a later step, the layers of
    ``layer_types`` (module order) are visited front to back, the last one excluded (it never freezes): a
    layer with ≥ ``min_evals`` eigenvalues freezes when its last ``window`` α values satisfy
    ``(max - min) ≤ tolerance × mean``, else the visit stops there; a smaller layer (its α is noise)
    freezes together with the next layer after it that does. Optimizers skip parameters whose grad is
    None, so nothing else needs to change; ``frozen`` records the step at which each layer froze.

    Backward compute saved is *counted*, not timed: forward hooks on the layers record, for every
    training forward pass, the multiply-adds of each layer's weight-gradient matmul and of its
    input-gradient matmul (``2 × output elements × fan-in`` each; an input gradient is needed only when
    some parameter registered before the layer still trains). ``backward_flops`` holds the totals
    (``total``: all layers training, ``spent``: as run) and :attr:`saved_share` their ratio. Bias,
    activation and normalisation gradients are not counted.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> model = nn.Sequential(*[nn.Linear(64, 64) for _ in range(4)])
        >>> ef = EarlyFreezing(model, budget=10)
        >>> ef.warmup, ef.window
        (5, 3)
        >>> for epoch in range(10):  # train an epoch, then:
        ...     newly_frozen = ef.step()  # (untrained here, so α is perfectly stable)
        >>> ef.frozen
        {'0': 6, '1': 6, '2': 6}

    Args:
        model: the model being trained.
        budget: the number of :meth:`step` calls planned (≥ 1).
        warmup: steps before any layer may freeze (default ``budget // 2``).
        window: the number of consecutive analyses α must stay stable over (default 3).
        tolerance: the allowed relative spread of α over the window (default 0.002: with 0.02 layers froze
            at the end of the warm-up and held-out accuracy fell, benchmarks/results/training.md).
        estimator: ``"hill"`` (default, fast) or ``"power_law"`` (wwtune's fit).
        layer_types: layers considered (default ``("dense", "conv2d")``).
        min_evals: layers with fewer eigenvalues follow the next layer instead of being judged (default 50).
        device: where eigenvalues are computed (default: the weights' device).
    """

    def __init__(
        self,
        model: nn.Module,
        budget: int,
        *,
        warmup: int | None = None,
        window: int = 3,
        tolerance: float = 0.002,
        estimator: str = "hill",
        layer_types: str | Sequence[str] = ("dense", "conv2d"),
        min_evals: int = 50,
        device: str | torch.device | None = None,
    ) -> None:
        self.budget = check_int(budget, "budget", 1)
        self.warmup = self.budget // 2 if warmup is None else check_int(warmup, "warmup", 0)
        self.window = check_int(window, "window", 1)
        if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not tolerance >= 0:
            raise ValueError(f"tolerance must be a number ≥ 0 but got {tolerance!r}.")
        self.tolerance = float(tolerance)
        self.estimator = check_choice(estimator, "estimator", ("hill", "power_law"))
        check_int(min_evals, "min_evals", 1)
        self.model, self.device = model, device
        layers = selected_layers(model, check_layer_types(layer_types))
        self.layers = [c.name for c in layers]
        self._modules = {c.name: c.module for c in layers}
        self._judged = {c.name for c in layers if c.num_evals >= min_evals}
        #: ``{layer: step at which it froze}``
        self.frozen: dict[str, int] = {}
        #: one entry per analysis: ``{"step", "alphas"}``
        self.history: list[dict[str, Any]] = []
        self.steps = 0
        self.backward_flops = {"total": 0, "spent": 0}
        order = {id(p): i for i, p in enumerate(model.parameters())}
        self._params = list(model.parameters())
        self._first_param = {
            c.name: min((order[id(p)] for p in c.module.parameters(recurse=False)), default=0) for c in layers
        }
        self._first_trainable = self._first_trainable_index()
        self._hooks = [c.module.register_forward_hook(self._count(c.name)) for c in layers]

    def _first_trainable_index(self) -> int:
        return next((i for i, p in enumerate(self._params) if p.requires_grad), len(self._params))

    def _count(self, name: str):  # noqa: ANN202 - a forward hook
        module = self._modules[name]

        def hook(mod: nn.Module, inputs: Any, output: Any) -> None:
            if not (torch.is_grad_enabled() and mod.training and isinstance(output, torch.Tensor)):
                return
            w = module.weight
            per = 2 * output.numel() * (w.numel() // max(w.shape[0], 1))
            first = self._first_param[name]
            self.backward_flops["total"] += per + (per if first > 0 else 0)
            self.backward_flops["spent"] += (per if w.requires_grad else 0) + (
                per if self._first_trainable < first else 0
            )

        return hook

    @property
    def saved_share(self) -> float:
        """Share of the counted backward FLOPs saved so far by freezing (0 before any training pass)."""
        total = self.backward_flops["total"]
        return 1.0 - self.backward_flops["spent"] / total if total else 0.0

    def _stable(self, name: str) -> bool:
        values = [h["alphas"].get(name, math.nan) for h in self.history[-self.window :]]
        if len(values) < self.window or not all(math.isfinite(v) for v in values):
            return False
        return max(values) - min(values) <= self.tolerance * (sum(values) / len(values))

    def step(self) -> list[str]:
        """Analyse, then freeze what the rule allows; returns the layers frozen at this step."""
        self.steps += 1
        movable = [n for n in self.layers[:-1] if n not in self.frozen]
        judged = [n for n in movable if n in self._judged]
        if not judged or self.steps < self.warmup + 2 - self.window:
            return []
        alphas = layer_alphas(self.model, judged, self.estimator, self.device)
        self.history.append({"step": self.steps, "alphas": alphas})
        if self.steps <= self.warmup:
            return []
        newly: list[str] = []
        pending: list[str] = []
        for name in movable:
            if name not in self._judged:
                pending.append(name)
                continue
            if not self._stable(name):
                break
            newly += [*pending, name]
            pending = []
        for name in newly:
            self.frozen[name] = self.steps
            for p in self._modules[name].parameters(recurse=False):
                p.requires_grad_(False)
                p.grad = None
        self._first_trainable = self._first_trainable_index()
        return newly

    def state(self) -> dict[str, Any]:
        """What was done, JSON-safe: settings, the freeze step of each layer, the compute saved, α history."""
        return {
            "budget": self.budget,
            "warmup": self.warmup,
            "window": self.window,
            "tolerance": self.tolerance,
            "layers": list(self.layers),
            "frozen": dict(self.frozen),
            "backward_flops": dict(self.backward_flops),
            "saved_share": self.saved_share,
            "history": [
                {
                    "step": h["step"],
                    "alphas": {k: (v if math.isfinite(v) else None) for k, v in h["alphas"].items()},
                }
                for h in self.history
            ],
        }
