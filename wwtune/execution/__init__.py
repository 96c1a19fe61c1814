"""Running the analysis: serially, over this machine's cores, or on a Dask cluster; same DataFrame each way.

Layer 2 of the architecture: knows :mod:`wwtune.spectral` only. Its options, declared here and nowhere
else: ``workers`` (None or 1: serial in this process; N: N worker processes; ``"auto"``: as many as the
cores, the layers and the available memory allow, see :mod:`wwtune.execution.plan`) and ``cluster`` (a
Dask scheduler address, ``tcp://host:8786``; needs ``pip install 'wwtune[cluster]'``). Dask is imported
only when ``cluster`` is given.

Each layer is one task (:func:`analyze_layer`: its eigenvalues and its row); the rows are put back in the
serial order, so the result equals the serial one. Bit for bit when each layer's BLAS runs on the same
number of threads as in the serial run (a small layer always runs on one thread in a worker; the serial
run uses torch's thread count); otherwise the columns agree to round-off.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd
import torch

from wwtune.execution.local import run_local
from wwtune.execution.plan import check_workers, layer_bytes, make_plan
from wwtune.execution.tasks import LayerFailed, Task
from wwtune.spectral.analyze import AnalysisOptions, layer_row, select_specs
from wwtune.spectral.analyze import analyze as analyze_serial
from wwtune.spectral.esd import compute_esds
from wwtune.spectral.layers import WeightSpec, weight_specs

__all__ = ["LayerFailed", "Task", "analyze", "analyze_layer", "check_execution", "layer_task", "run_tasks"]

logger = logging.getLogger(__name__)
Progress = Callable[[int, int, str], None]


def check_execution(workers: Any = None, cluster: Any = None) -> tuple[int | str | None, str | None]:
    """Validate ``workers=`` / ``cluster=`` (ValueError naming the bad value); at most one of them."""
    workers = check_workers(workers)
    if cluster is not None and (not isinstance(cluster, str) or "://" not in cluster):
        raise ValueError(
            f"cluster must be a Dask scheduler address like 'tcp://host:8786' but got {cluster!r}."
        )
    if cluster is not None and workers not in (None, 1):
        raise ValueError(
            f"give workers= (this machine) or cluster= (a Dask cluster), not both: workers={workers!r}, "
            f"cluster={cluster!r}."
        )
    return workers, cluster


def layer_task(label: str, fn: Callable[..., Any], args: tuple[Any, ...], dtype: torch.dtype) -> Task:
    """A task whose weights are the :class:`WeightSpec` arguments in ``args`` (sized from their shapes)."""
    specs = [a for a in args if isinstance(a, WeightSpec)]
    return Task(
        label,
        fn,
        args,
        size=sum(layer_bytes(s, dtype) for s in specs),
        m=max((s.M for s in specs), default=0),
        specs=specs,
    )


def run_tasks(
    tasks: Sequence[Task], *, workers: Any = None, cluster: Any = None, progress: Progress | None = None
) -> list[Any]:
    """``[t.fn(*t.args) for t in tasks]`` serially, over worker processes or on a Dask cluster; in order.

    Raises:
        LayerFailed: a layer's task raised or its worker died (serial runs raise the error itself).
    """
    workers, cluster = check_execution(workers, cluster)
    if cluster is not None:
        # lazy: pulls in the optional Dask extra only when a cluster is asked for
        from wwtune.execution.cluster import run_cluster

        logger.info("analysis: %d layers on the Dask cluster at %s", len(tasks), cluster)
        return run_cluster(tasks, cluster, progress)
    plan = make_plan(workers or 1, [t.size for t in tasks])
    if plan.processes == 1:  # one process (asked, one task, or all memory allows): this one
        out = []
        for done, t in enumerate(tasks, 1):
            out.append(t.fn(*t.args))
            if progress is not None:
                progress(done, len(tasks), t.label)
        return out
    logger.info(
        "analysis: %d layers over %d worker processes (%s); at most %d layers resident at once",
        len(tasks),
        plan.processes,
        plan.reason,
        plan.processes,
    )
    return run_local(tasks, plan, progress)


def analyze_layer(spec: WeightSpec, opts: AnalysisOptions) -> dict[str, Any]:
    """One layer's row of :func:`wwtune.spectral.analyze.analyze` (run inside a worker)."""
    esd = compute_esds([spec], device=opts.device, dtype=opts.torch_dtype)[0]
    return layer_row(spec, esd, opts)


def analyze(
    source: Any,
    options: AnalysisOptions | None = None,
    /,
    *,
    workers: int | str | None = None,
    cluster: str | None = None,
    progress: Progress | None = None,
    **changes: Any,
) -> pd.DataFrame:
    """:func:`wwtune.spectral.analyze.analyze` (same ``source`` and options, same DataFrame), with the
    layers spread over ``workers`` processes of this machine or a Dask ``cluster``.

    Args:
        source: an ``nn.Module``, a state_dict, a checkpoint file or a Hugging Face folder. Workers read a
            safetensors checkpoint's tensors themselves; an in-memory model's weights are sent one matrix
            per task.
        options: an :class:`AnalysisOptions` (default: all defaults); ``**changes`` by name over it.
        workers: None or 1 (serial, default), N processes, or ``"auto"`` (from cores, layers and memory).
        cluster: a Dask scheduler address (``"tcp://host:8786"``); the workers must see file paths.
        progress: called as ``progress(done, total, layer_name)`` after each layer (parallel runs).

    Raises:
        LayerFailed: a layer failed in a worker or its worker died (the message names the layer).

    Example:
        >>> import torch
        >>> from torch import nn
        >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
        <torch._C.Generator object at ...>
        >>> model = nn.Sequential(nn.Linear(100, 50), nn.ReLU(), nn.Linear(50, 10))
        >>> analyze(model, workers=2)["num_evals"].tolist()
        [50, 10]
    """
    workers, cluster = check_execution(workers, cluster)
    opts = AnalysisOptions.of(options, **changes)
    if workers in (None, 1) and cluster is None:
        return analyze_serial(source, opts)
    specs = select_specs(weight_specs(source), opts)
    tasks = [layer_task(s.name, analyze_layer, (s, opts), opts.torch_dtype) for s in specs]
    rows = run_tasks(tasks, workers=workers, cluster=cluster, progress=progress)
    return pd.DataFrame(rows, columns=opts.columns)
