"""Tasks on a Dask distributed cluster (the optional extra ``wwtune[cluster]``), results in task order.

The cluster is the user's: a scheduler address such as ``tcp://10.0.0.5:8786`` (started by ``dask
scheduler`` / ``dask worker``, dask-jobqueue on SLURM, or dask-kubernetes). A weight read from a
safetensors file travels as its path and key, so the workers must see the checkpoint at the same path
(a shared file system); an in-memory weight travels as one matrix per task. At most twice as many tasks
as the cluster has worker threads are submitted at once, so memory stays bounded by tensors, not models.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from wwtune.execution.tasks import LayerFailed, Task, run_task, ship

__all__ = ["CONNECT_TIMEOUT_S", "INSTALL_HINT", "run_cluster"]

#: Seconds to wait for the scheduler before giving up with a clear error.
CONNECT_TIMEOUT_S = 30
INSTALL_HINT = "cluster= needs Dask distributed: pip install 'wwtune[cluster]'"


def _client(address: str) -> Any:
    try:
        # lazy: the optional extra wwtune[cluster]; `import wwtune` never loads Dask
        from distributed import Client
    except ImportError:
        raise ImportError(INSTALL_HINT) from None
    try:
        return Client(address, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
    except OSError as e:
        raise ConnectionError(f"cannot reach the Dask scheduler at {address!r}: {e}") from None


def run_cluster(
    tasks: Sequence[Task], address: str, progress: Callable[[int, int, str], None] | None = None
) -> list[Any]:
    """``[t.fn(*t.args) for t in tasks]`` on the Dask cluster at ``address``, in task order.

    Raises:
        LayerFailed: a task raised, or its worker died (Dask's KilledWorker); the message names the layer.
    """
    # lazy: the optional extra wwtune[cluster]
    from distributed import as_completed

    n = len(tasks)
    results: list[Any] = [None] * n
    client = _client(address)
    live: dict[Any, int] = {}
    try:
        window = max(1, 2 * sum(client.nthreads().values()))
        todo = iter(range(n))

        def submit(i: int) -> Any:
            t = tasks[i]
            fut = client.submit(
                run_task, t.fn, tuple(ship(a) for a in t.args), 1, key=f"wwtune-{i}-{t.label}", pure=False
            )
            live[fut] = i
            return fut

        with client.as_current():  # as_completed finds the client through the current one
            queue = as_completed([submit(i) for _, i in zip(range(window), todo, strict=False)])
            done = 0
            for fut in queue:
                i = live.pop(fut)
                if fut.status != "finished":
                    exc = fut.exception()
                    raise LayerFailed(tasks[i].label, f"failed on the cluster: {type(exc).__name__}: {exc}")
                results[i] = fut.result()
                fut.release()
                done += 1
                if progress is not None:
                    progress(done, n, tasks[i].label)
                nxt = next(todo, None)
                if nxt is not None:
                    queue.add(submit(nxt))
    finally:
        if live:
            client.cancel(list(live))
        client.close()
    return results
