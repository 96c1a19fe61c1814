"""Per-layer learning-rate factors from each layer's α (TempBalance), composed with any LR scheduler.

The rule (Zhou et al., NeurIPS 2023, "Temperature balancing"): a layer whose eigenvalue spectrum has a
heavier tail (smaller α) is better trained and gets a smaller learning rate; one with a larger α gets a
larger one. Only the facts of the rule are used here; the code is wwtune's own.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
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

__all__ = ["MAPS", "TempBalance", "balance_factors", "param_groups_per_layer"]

logger = logging.getLogger(__name__)

#: How α becomes a factor: ``linear`` maps [min α, max α] onto ``ratio`` (TempBalance's rule);
#: ``linear_mean`` is that divided by its mean; ``sqrt`` and ``log2`` are g(α) / mean g(α).
#: The last three are mean-preserving: the factors of the balanced layers average exactly 1.
MAPS = ("linear", "linear_mean", "sqrt", "log2")


def balance_factors(
    alphas: Mapping[str, float], map: str = "linear", ratio: tuple[float, float] = (0.5, 1.5)
):  # noqa: A002, ANN201
    """``{name: factor}`` from ``{name: α}`` (NaN α: factor 1, left out of the map).

    ``linear``: ``lo + (α - min α) / (max α - min α) × (hi - lo)`` with ``(lo, hi) = ratio``; every factor
    is 1 when all α are equal (or only one is finite). ``linear_mean``: the linear factors over their mean.
    ``sqrt`` / ``log2``: ``g(α) / mean_j g(α_j)``.

    Example:
        >>> balance_factors({"a": 2.0, "b": 3.0, "c": 4.0})
        {'a': 0.5, 'b': 1.0, 'c': 1.5}
    """
    check_choice(map, "map", MAPS)
    lo, hi = _check_ratio(ratio)
    names = [n for n, a in alphas.items() if math.isfinite(a)]
    out = {n: 1.0 for n in alphas}
    if not names:
        return out
    a = np.array([alphas[n] for n in names], dtype=np.float64)
    if map in ("linear", "linear_mean"):
        span = float(a.max() - a.min())
        if span <= 0.0:
            return out
        f = lo + (a - a.min()) / span * (hi - lo)
        if map == "linear_mean":
            f = f / f.mean()
    else:
        g = np.sqrt(a) if map == "sqrt" else np.log2(a)
        f = g / g.mean()
    out.update({n: float(v) for n, v in zip(names, f, strict=True)})
    return out


def _check_ratio(ratio: Any) -> tuple[float, float]:
    try:
        lo, hi = (float(r) for r in ratio)
    except (TypeError, ValueError):
        raise ValueError(f"ratio must be a pair (low, high) of positive numbers but got {ratio!r}.") from None
    if not (0.0 < lo <= hi and math.isfinite(hi)):
        raise ValueError(f"ratio must be a pair (low, high) with 0 < low ≤ high but got {ratio!r}.")
    return lo, hi


def param_groups_per_layer(
    model: nn.Module,
    groups: Sequence[Mapping[str, Any]] | None = None,
    *,
    layer_types: str | Sequence[str] = ("dense", "conv2d"),
    **group_options: Any,
) -> list[dict[str, Any]]:
    """Optimizer parameter groups with each layer of ``layer_types`` in groups of its own.

    Without ``groups``: one group per layer (its own parameters, named by the module) and one ``"rest"``
    group for every other trainable parameter. With ``groups`` (e.g. a weight-decay / no-decay split, or
    ``Params.param_groups(model)``): each group is split by layer, keeping its settings; the parts are
    named ``"<group name>/<module>"`` when the group has a name. ``group_options`` (e.g. ``lr=0.1``) are
    added to every group.

    Example:
        >>> from torch import nn
        >>> m = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
        >>> [g["name"] for g in param_groups_per_layer(m)]
        ['0', '2']
    """
    types = check_layer_types(layer_types)
    owner = {id(p): c.name for c in selected_layers(model, types) for p in c.module.parameters(recurse=False)}
    if groups is None:
        groups = [{"params": [p for p in model.parameters() if p.requires_grad]}]
    out: list[dict[str, Any]] = []
    for group in groups:
        if not isinstance(group, Mapping) or "params" not in group:
            raise ValueError(f"groups must be optimizer param-group dicts with 'params' but got {group!r}.")
        params = [group["params"]] if isinstance(group["params"], torch.Tensor) else list(group["params"])
        buckets: dict[str, list[torch.Tensor]] = {}
        for p in params:
            buckets.setdefault(owner.get(id(p), "rest"), []).append(p)
        base = group.get("name")
        for key, ps in buckets.items():
            name = key if base is None else f"{base}/{key}"
            out.append({**group, **group_options, "params": ps, "name": name})
    return out


class TempBalance(HookedLayers):
    """Sets each layer's learning-rate factor from its α; composes with any torch LR scheduler.

    Call :meth:`step` once per epoch (or every k optimizer steps): it computes each balanced layer's α and
    its factor. The factor multiplies the layer's param-group learning rate *only while*
    ``optimizer.step()`` runs (a step pre-hook multiplies, a post-hook restores the exact value), so
    ``group["lr"]`` always holds what the scheduler set and the rate the update uses is exactly
    ``scheduler(t) × factor(t)``, never compounded: any scheduler (cosine, step, warm-up,
    ``ReduceLROnPlateau``) works unchanged, stepped before or after this object.

    Each balanced layer's parameter group is found by the parameters it holds; a group holding the
    parameters of two balanced layers is an error (build the optimizer from
    :func:`param_groups_per_layer`). Parameters of non-balanced modules in a balanced layer's group get
    its factor too.

    Skip rules (the layers that keep factor 1), in this order, each switchable:

    * only modules of ``layer_types`` are considered (default ``("dense", "conv2d")``: ``nn.Linear``,
      ``nn.Conv2d``), in ``model.named_modules()`` order;
    * ``skip_first_last=True``: the first and the last of them (input and output layers);
    * ``min_evals=50``: layers with fewer eigenvalues (their α is noise).

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from wwtune.training import TempBalance, param_groups_per_layer
        >>> _ = torch.manual_seed(0)
        >>> model = nn.Sequential(*[nn.Linear(64, 64) for _ in range(5)])
        >>> opt = torch.optim.SGD(param_groups_per_layer(model), lr=0.1)
        >>> sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=10)
        >>> tb = TempBalance(model, opt, map="linear")
        >>> tb.layers
        ['1', '2', '3']
        >>> factors = tb.step()   # once per epoch, after training it
        >>> min(factors.values()), max(factors.values())
        (0.5, 1.5)

    Args:
        model: the model being trained.
        optimizer: its optimizer (any ``torch.optim.Optimizer``).
        map: ``"sqrt"`` (default: mean-preserving, the map the benchmark supports,
            benchmarks/results/training.md), ``"linear"`` (TempBalance's rule), ``"linear_mean"`` or
            ``"log2"``: see :func:`balance_factors`.
        ratio: ``(low, high)`` factors of the smallest and the largest α under ``linear`` (default
            ``(0.5, 1.5)``; the paper also uses ``(0.6, 1.4)``).
        estimator: ``"hill"`` (default: Hill estimator with xmin at the median eigenvalue, fast) or
            ``"power_law"`` (wwtune's power-law fit, as ``wwtune.analyze``).
        layer_types, skip_first_last, min_evals: the skip rules above.
        device: where eigenvalues are computed (default: the weights' device; CPU or CUDA).
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        *,
        map: str = "sqrt",  # noqa: A002 - the user-facing name
        ratio: tuple[float, float] = (0.5, 1.5),
        estimator: str = "hill",
        layer_types: str | Sequence[str] = ("dense", "conv2d"),
        skip_first_last: bool = True,
        min_evals: int = 50,
        device: str | torch.device | None = None,
    ) -> None:
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f"optimizer must be a torch.optim.Optimizer but got {type(optimizer).__name__}.")
        self.map = check_choice(map, "map", MAPS)
        self.ratio = _check_ratio(ratio)
        self.estimator = check_choice(estimator, "estimator", ("hill", "power_law"))
        if not isinstance(skip_first_last, bool):
            raise ValueError(f"skip_first_last must be True or False but got {skip_first_last!r}.")
        check_int(min_evals, "min_evals", 1)
        self.model, self.optimizer, self.device = model, optimizer, device
        types = check_layer_types(layer_types)
        self.layers = [
            c.name
            for c in selected_layers(model, types, skip_first_last=skip_first_last, min_evals=min_evals)
        ]
        self._groups = self._map_groups()
        self.factors: dict[str, float] = {n: 1.0 for n in self.layers}
        self.alphas: dict[str, float] = {}
        #: one entry per :meth:`step`: ``{"step", "alphas", "factors"}``
        self.history: list[dict[str, Any]] = []
        self._saved: list[tuple[dict[str, Any], Any]] = []
        self._hooks = [
            optimizer.register_step_pre_hook(self._apply),
            optimizer.register_step_post_hook(self._restore),
        ]

    def _map_groups(self) -> dict[str, list[int]]:
        """``{layer: [indices of the groups holding its parameters]}``; two layers in one group raise."""
        where = {id(p): i for i, g in enumerate(self.optimizer.param_groups) for p in g["params"]}
        modules = dict(self.model.named_modules())
        out: dict[str, list[int]] = {}
        owner: dict[int, str] = {}
        for name in self.layers:
            idx = sorted({where[id(p)] for p in modules[name].parameters(recurse=False) if id(p) in where})
            if not idx:
                logger.info("TempBalance: layer %r has no parameter in the optimizer; not balanced", name)
            for i in idx:
                if i in owner:
                    raise ValueError(
                        f"optimizer param group {i} holds the parameters of two balanced layers "
                        f"({owner[i]!r} and {name!r}); build the optimizer from "
                        "wwtune.training.param_groups_per_layer(model) (one group per layer)."
                    )
                owner[i] = name
            out[name] = idx
        return out

    def step(self) -> dict[str, float]:
        """Analyse the balanced layers and set their factors; returns ``{layer: factor}``."""
        self.alphas = layer_alphas(self.model, self.layers, self.estimator, self.device)
        self.factors = balance_factors(self.alphas, self.map, self.ratio)
        self.history.append(
            {"step": len(self.history) + 1, "alphas": dict(self.alphas), "factors": dict(self.factors)}
        )
        return dict(self.factors)

    def effective_lrs(self) -> dict[str, float]:
        """``{layer: group lr × factor}``: the rate the next ``optimizer.step()`` uses for each layer."""
        groups = self.optimizer.param_groups
        return {n: float(groups[i[0]]["lr"]) * self.factors[n] for n, i in self._groups.items() if i}

    def _apply(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        self._saved = []
        for name, idx in self._groups.items():
            for i in idx:
                group = optimizer.param_groups[i]
                self._saved.append((group, group["lr"]))
                group["lr"] = group["lr"] * self.factors[name]

    def _restore(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        for group, lr in self._saved:
            group["lr"] = lr  # the exact value the scheduler set, not lr × f / f
        self._saved = []

    def state(self) -> dict[str, Any]:
        """What was done, JSON-safe: settings, balanced layers, and each step's α and factors."""
        return {
            "map": self.map,
            "ratio": list(self.ratio),
            "estimator": self.estimator,
            "layers": list(self.layers),
            "history": [
                {"step": h["step"], "alphas": _finite(h["alphas"]), "factors": dict(h["factors"])}
                for h in self.history
            ],
        }


def _finite(d: Mapping[str, float]) -> dict[str, float | None]:
    return {k: (v if math.isfinite(v) else None) for k, v in d.items()}
