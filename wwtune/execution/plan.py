"""How many worker processes, and how many BLAS threads per layer: chosen from cores, memory and layer size.

One rule, declared here: layers run in parallel (one per process, one thread each) as long as memory
allows, because a layer's Gram matrix and eigensolver parallelise worse over threads than layers do over
processes. When memory allows fewer processes than cores, each large layer (Gram side ``M`` of at least
:data:`LARGE_M`) gets the cores left over as BLAS threads; small layers always run on one thread.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import torch

from wwtune.spectral.layers import WeightSpec

__all__ = [
    "CHUNK_BYTES",
    "LARGE_M",
    "MEMORY_SHARE",
    "Plan",
    "available_memory",
    "check_workers",
    "cpu_count",
    "layer_bytes",
    "make_plan",
    "threads_for",
]

#: Gram side from which a layer may use more than one BLAS thread (below it threads do not pay).
LARGE_M = 2048
#: Share of the available memory that ``workers="auto"`` plans to fill with resident layers.
MEMORY_SHARE = 0.5
#: Rows of a weight are converted to the compute dtype in chunks of about this size (spectral/esd.py).
CHUNK_BYTES = 64 << 20


def cpu_count() -> int:
    """The cores this process may run on (its CPU affinity where the OS tells it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def available_memory() -> int:
    """Bytes of memory available to new work (Linux ``MemAvailable``; else free physical pages)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 8 << 30


def layer_bytes(spec: WeightSpec, dtype: torch.dtype) -> int:
    """Peak bytes one layer needs while analysed: its weight (as stored, ≤ 4 bytes an element), the Gram
    matrices in the compute dtype, the eigensolver's copy and workspace, and one converted row chunk."""
    item = torch.empty((), dtype=dtype).element_size()
    weight = math.prod(spec.shape) * 4
    gram = spec.rf * spec.M * spec.M * item
    return weight + 3 * gram + CHUNK_BYTES


def check_workers(workers: Any) -> int | str | None:
    """``workers=``: None or 1 (serial, in this process), an integer ≥ 1, or ``"auto"``."""
    if workers is None or (isinstance(workers, str) and workers == "auto"):
        return workers
    if isinstance(workers, str) and workers.isdigit():
        workers = int(workers)
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer or 'auto' but got {workers!r}.")
    return workers


@dataclass(frozen=True)
class Plan:
    """Processes to start and why (``reason``, said in the log)."""

    processes: int
    cores: int
    reason: str


def make_plan(
    workers: int | str, sizes: list[int], cores: int | None = None, memory: int | None = None
) -> Plan:
    """Processes for tasks needing ``sizes`` bytes each: ``workers`` (at most one per task), or with
    ``"auto"`` as many as cores, tasks and :data:`MEMORY_SHARE` of the available memory allow."""
    cores = cores or cpu_count()
    n = max(1, len(sizes))
    if workers != "auto":
        return Plan(min(int(workers), n), cores, f"workers={workers}")
    memory = available_memory() if memory is None else memory
    biggest = max(sizes, default=1)
    by_memory = max(1, int(memory * MEMORY_SHARE // biggest))
    procs = max(1, min(cores, n, by_memory))
    reason = (
        f"auto: {cores} cores, {n} layers, {memory / 2**30:.1f} GiB available, "
        f"largest layer ≈ {biggest / 2**30:.2f} GiB → room for {by_memory}"
    )
    return Plan(procs, cores, reason)


def threads_for(m: int, processes: int, cores: int) -> int:
    """BLAS threads for a layer of Gram side ``m`` when ``processes`` run at once on ``cores`` cores."""
    return 1 if m < LARGE_M else max(1, cores // max(1, processes))
