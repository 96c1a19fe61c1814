"""Tasks over worker processes on this machine: one task per process at a time, results in task order.

Each worker is a fresh Python process (``python -c``, not multiprocessing's spawn, so a user's script is
never re-imported in the workers and needs no ``if __name__ == "__main__"`` guard) that talks to the
parent over its stdin/stdout pipes in length-prefixed pickles and holds one task at a time: the parent
always knows which layer a worker had when it died, and at most ``processes`` tasks' weights are resident
at once. Workers ignore SIGINT: on Ctrl-C (or any error) the parent stops them all (terminate, then kill)
and waits for each before the exception goes on, so no worker outlives the call. A worker whose parent
died reads end-of-file on its stdin and exits.
"""

from __future__ import annotations

import logging
import os
import pickle
import signal
import subprocess
import sys
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


_START = "from wwtune.execution.local import worker_main; worker_main()"


def worker_main() -> None:
    """A worker's loop on stdin/stdout: receive a pickled (index, fn, args, threads), send back
    (index, ok, value). Whatever the task prints goes to stderr."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops the workers
    inbox = Connection(os.dup(0), writable=False)
    conn = Connection(os.dup(1), readable=False)
    os.dup2(2, 1)  # stdout is the parent's channel: prints go to stderr
    sys.stdout = sys.stderr
    while True:
        try:
            data = inbox.recv_bytes()
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
    def __init__(self) -> None:
        # the workers import what the parent can: its sys.path (a test folder, a user's project) first
        path = os.pathsep.join([p for p in sys.path if p] + [os.environ.get("PYTHONPATH", "")])
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _START],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": path},
        )
        self.conn = Connection(os.dup(self.proc.stdin.fileno()), readable=False)
        self.inbox = Connection(os.dup(self.proc.stdout.fileno()), writable=False)
        self.proc.stdin.close()
        self.proc.stdout.close()
        self.task: int | None = None

    def alive(self) -> bool:
        return self.proc.poll() is None


def _death(worker: _Worker) -> str:
    code = worker.proc.returncode
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
        if clean and w.alive():
            try:
                w.conn.send_bytes(_STOP)
            except OSError:
                pass
        elif w.alive():
            w.proc.terminate()
    for w in workers:
        try:
            w.proc.wait(_JOIN_S)
        except subprocess.TimeoutExpired:
            w.proc.kill()
            w.proc.wait()
        w.conn.close()
        w.inbox.close()


def run_local(
    tasks: Sequence[Task], plan: Plan, progress: Callable[[int, int, str], None] | None = None
) -> list[Any]:
    """``[t.fn(*t.args) for t in tasks]`` over ``plan.processes`` worker processes, in task order.

    Raises:
        LayerFailed: a task raised, or its worker died; the message names the layer.
    """
    n = len(tasks)
    results: list[Any] = [None] * n
    workers: list[_Worker] = []
    clean = False
    try:
        for _ in range(min(plan.processes, n)):
            workers.append(_Worker())
        todo = iter(range(n))
        done = 0
        for w in workers:
            _assign(w, next(todo, None), tasks, plan)
        while done < n:
            busy = [w for w in workers if w.task is not None]
            ready = wait([w.inbox for w in busy])
            for w in busy:
                if w.inbox not in ready:
                    continue
                index = w.task
                try:
                    got, ok, value = pickle.loads(w.inbox.recv_bytes())
                except (EOFError, OSError):
                    w.proc.wait(_JOIN_S)
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
    try:
        w.conn.send_bytes(pickle.dumps((index, t.fn, args, threads), protocol=pickle.HIGHEST_PROTOCOL))
    except OSError:  # the worker died between two tasks
        w.proc.wait(_JOIN_S)
        raise LayerFailed(t.label, _death(w)) from None
