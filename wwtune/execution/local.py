"""Tasks over worker processes on this machine: one task per process at a time, results in task order.

Each worker is a fresh (spawned) Python process that holds one task at a time, so the parent always knows
which layer a worker had when it died, and at most ``processes`` tasks' weights are resident at once.
Workers ignore SIGINT: on Ctrl-C (or any error) the parent stops them all (terminate, then kill) and
waits for each before the exception goes on, so no worker outlives the call. A worker whose parent died
reads end-of-file on its pipe and exits.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import pickle
import signal
import traceback
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection, wait
from typing import Any

from wwtune.execution.plan import Plan, threads_for
from wwtune.execution.tasks import LayerFailed, Task, run_task, ship

__all__ = ["run_local", "worker_main"]

logger = logging.getLogger(__name__)
_STOP = b""
_JOIN_S = 10.0


def worker_main(conn: Connection) -> None:
    """A worker's loop: receive a pickled (index, fn, args, threads), send back (index, ok, value)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops the workers
    while True:
        try:
            data = conn.recv_bytes()
        except (EOFError, OSError):
            return  # the parent is gone
        if data == _STOP:
            return
        index, fn, args, threads = pickle.loads(data)
        try:
            msg = (index, True, run_task(fn, args, threads))
        except Exception as e:  # noqa: BLE001 - sent to the parent, which names the layer
            last = traceback.extract_tb(e.__traceback__)[-1]
            msg = (index, False, f"{type(e).__name__}: {e} (at {last.filename}:{last.lineno})")
        conn.send_bytes(pickle.dumps(msg, protocol=pickle.HIGHEST_PROTOCOL))


class _Worker:
    def __init__(self, ctx: Any) -> None:
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=worker_main, args=(child,), daemon=True, name="wwtune-worker")
        self.proc.start()
        child.close()
        self.task: int | None = None


def _death(worker: _Worker) -> str:
    code = worker.proc.exitcode
    if code is not None and code < 0:
        try:
            how = f"killed by {signal.Signals(-code).name}"
        except ValueError:
            how = f"killed by signal {-code}"
    else:
        how = f"exit code {code}"
    return f"the worker process (pid {worker.proc.pid}) died while analysing it ({how}; out of memory?)"


def _stop(workers: list[_Worker], clean: bool) -> None:
    """Stop every worker and wait for each: politely after success, at once after an error."""
    for w in workers:
        if clean and w.proc.is_alive():
            try:
                w.conn.send_bytes(_STOP)
            except OSError:
                pass
        elif w.proc.is_alive():
            w.proc.terminate()
    for w in workers:
        w.proc.join(_JOIN_S)
        if w.proc.is_alive():
            w.proc.kill()
            w.proc.join()
        w.conn.close()


def run_local(
    tasks: Sequence[Task], plan: Plan, progress: Callable[[int, int, str], None] | None = None
) -> list[Any]:
    """``[t.fn(*t.args) for t in tasks]`` over ``plan.processes`` worker processes, in task order.

    Raises:
        LayerFailed: a task raised, or its worker died; the message names the layer.
    """
    ctx = mp.get_context("spawn")
    n = len(tasks)
    results: list[Any] = [None] * n
    workers: list[_Worker] = []
    clean = False
    try:
        workers = [_Worker(ctx) for _ in range(min(plan.processes, n))]
        todo = iter(range(n))
        done = 0
        for w in workers:
            _assign(w, next(todo, None), tasks, plan)
        while done < n:
            busy = [w for w in workers if w.task is not None]
            ready = wait([w.conn for w in busy] + [w.proc.sentinel for w in busy])
            for w in busy:
                if w.conn not in ready and w.proc.sentinel not in ready:
                    continue
                index = w.task
                try:
                    got, ok, value = pickle.loads(w.conn.recv_bytes())
                except (EOFError, OSError):
                    w.proc.join(_JOIN_S)
                    raise LayerFailed(tasks[index].label, _death(w)) from None
                if not ok:
                    raise LayerFailed(tasks[got].label, f"failed in a worker process: {value}")
                results[got] = value
                done += 1
                if progress is not None:
                    progress(done, n, tasks[got].label)
                _assign(w, next(todo, None), tasks, plan)
        clean = True
    finally:
        _stop(workers, clean)
    return results


def _assign(w: _Worker, index: int | None, tasks: Sequence[Task], plan: Plan) -> None:
    w.task = index
    if index is None:
        return
    t = tasks[index]
    args = tuple(ship(a) for a in t.args)
    threads = threads_for(t.m, plan.processes, plan.cores)
    w.conn.send_bytes(pickle.dumps((index, t.fn, args, threads), protocol=pickle.HIGHEST_PROTOCOL))
