"""One unit of work for a worker: a layer (or a pair of layers) and the function that analyses it.

A task's weights travel as little as possible: a weight read from a safetensors file travels as its file
path and key (the worker reads it where the file lies); a weight held in memory travels as one copy of
that matrix alone, made when the task is sent (never a view dragging its whole storage along).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from threadpoolctl import threadpool_limits

from wwtune.exceptions import LayerFailed
from wwtune.spectral.layers import WeightSpec

__all__ = ["HeldTensor", "LayerFailed", "Task", "run_task", "ship"]


@dataclass(frozen=True)
class HeldTensor:
    """A picklable loader of a tensor already in memory."""

    tensor: torch.Tensor

    def __call__(self) -> torch.Tensor:
        return self.tensor


@dataclass(frozen=True)
class Task:
    """``fn(*args)`` for the layer ``label``; ``size``: its peak bytes, ``m``: its largest Gram side."""

    label: str
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    size: int = 0
    m: int = 0
    specs: Sequence[WeightSpec] = field(default=(), repr=False)


def _own_copy(w: torch.Tensor) -> torch.Tensor:
    w = w.detach()
    exact = w.is_contiguous() and w.untyped_storage().nbytes() == w.numel() * w.element_size()
    return w if exact else w.contiguous().clone()


def ship(arg: Any) -> Any:
    """``arg`` as sent to another process: a file-backed spec as is, an in-memory one as one own copy."""
    if not isinstance(arg, WeightSpec) or getattr(arg.load, "from_file", False):
        return arg
    return replace(arg, load=HeldTensor(_own_copy(arg.load())))


def run_task(fn: Callable[..., Any], args: tuple[Any, ...], threads: int) -> Any:
    """Run ``fn(*args)`` with torch and the BLAS libraries held to ``threads`` threads."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with threadpool_limits(limits=threads, user_api="blas"):
            return fn(*args)
    finally:
        torch.set_num_threads(before)
