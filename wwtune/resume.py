"""Resuming a study safely: whose trial is still running, which seed a resumed run samples with, and
whether the config changed under the same study name.

* :func:`process_identity` / :func:`worker_alive`: a trial's worker is recorded as host, PID *and* the
  process's start time (from ``/proc``) with the boot id and a per-run token, so a PID that now belongs to
  another process (a restarted container's PID 1, possibly the new run itself) is not taken for the dead
  worker.
* :func:`resumed_seed`: a resumed run samples with a seed mixed with the number of trials already in the
  study, so it does not replay the start-up proposals of the first run; a fresh study keeps the seed.
* :func:`config_changes`: the keys whose values differ between the stored and the new config.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "RUN_TOKEN",
    "config_changes",
    "distribution_clash",
    "process_identity",
    "resumed_seed",
    "worker_alive",
]

#: this process's token, stored with each trial it runs
RUN_TOKEN = uuid.uuid4().hex


def _start_ticks(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks since boot, ``/proc/<pid>/stat`` field 22), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) is in parentheses and may hold spaces: split after its closing one
    fields = stat[stat.rfind(")") + 2 :].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def _boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


def process_identity(worker_id: int | None = None) -> dict[str, Any]:
    """What identifies this worker process beyond its PID (stored as the trial attr ``wwtune.worker``)."""
    pid = os.getpid()
    return {
        "host": socket.gethostname(),
        "pid": pid,
        "worker_id": worker_id,
        "started": _start_ticks(pid),
        "boot": _boot_id(),
        "token": RUN_TOKEN,
    }


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def worker_alive(worker: Mapping[str, Any]) -> bool:
    """Whether the process a ``wwtune.worker`` record names (on this host) still runs.

    Dead when its PID is gone, when the machine rebooted since (another boot id), when the process now
    holding that PID started at another time (PID reuse), or when the PID is this very process but the
    record carries another run's token. Records written before start times were stored fall back to the
    PID check, except that this process never counts as another run's live worker.
    """
    try:
        pid = int(worker.get("pid", -1))
    except (TypeError, ValueError):
        return False
    if pid == os.getpid():
        return worker.get("token") == RUN_TOKEN
    if not _pid_alive(pid):
        return False
    boot = _boot_id()
    if worker.get("boot") and boot and worker["boot"] != boot:
        return False
    started = worker.get("started")
    if started is not None:
        now = _start_ticks(pid)
        if now is not None and now != started:
            return False
    return True


def resumed_seed(seed: int | None, n_existing: int) -> int | None:
    """The sampler seed of a run that finds ``n_existing`` trials in its study.

    A fresh study (0 trials) samples with ``seed`` itself, so a seeded single-worker study is reproduced by
    the same command. A resumed one mixes in the trial count (``SeedSequence([seed, n])``): restarting the
    same seed would make a random or TPE sampler propose the first run's start-up trials again.
    """
    if seed is None or n_existing <= 0:
        return seed
    return int(np.random.SeedSequence([int(seed), int(n_existing)]).generate_state(1)[0])


def config_changes(old: Any, new: Any, prefix: str = "") -> list[str]:
    """The dotted keys whose values differ between two nested configs (added and removed keys too)."""
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        out: list[str] = []
        for key in sorted(set(old) | set(new), key=str):
            out += config_changes(old.get(key), new.get(key), f"{prefix}{key}.")
        return out
    return [] if old == new else [prefix.rstrip(".")]


def distribution_clash(dimensions: Any, trials: Any) -> str | None:
    """Which searched parameter's distribution (``SearchSpace.dimensions``) is incompatible with the one
    stored trials used (Optuna refuses every new trial of such a study), or None."""
    from optuna.distributions import check_distribution_compatibility

    stored: dict[str, Any] = {}
    for trial in trials:
        stored.update(trial.distributions)
    for dim in dimensions:
        old = stored.get(dim.name)
        if old is None:
            continue
        try:
            check_distribution_compatibility(old, dim.distribution)
        except ValueError as exc:
            return f"the search space of {dim.name!r} changed from {old} to {dim.distribution} ({exc})"
    return None
