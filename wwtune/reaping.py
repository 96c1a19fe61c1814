"""Trials whose worker died: find them and fail them, so a resumed or shared study does not wait on them.

On a storage with heartbeats (PostgreSQL) Optuna's stale-trial check fails a dead worker's trial after the
grace period and re-queues it; elsewhere a RUNNING trial whose worker process no longer exists on this
host is marked FAIL here. The worker is recorded (``wwtune.worker``, :func:`process_identity`) as host, PID
*and* the process's start time with the boot id and a per-run token, so a PID that now belongs to another
process (a restarted container's PID 1, possibly the new run itself) is not taken for the dead worker.
The failed trial's reason starts with :data:`wwtune.workers.INTERRUPTED` (such trials do not count
towards ``study.n_trials``).
"""

from __future__ import annotations

import contextlib
import datetime
import os
import socket
import uuid
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from wwtune.record import TrialRecord, fail_trial_in_storage
from wwtune.workers import INTERRUPTED

__all__ = [
    "RUN_TOKEN",
    "fail_silent_trials",
    "fail_stale_trials",
    "pid_alive",
    "process_identity",
    "reap_dead_workers",
    "running_here",
    "worker_alive",
]


def fail_stale_trials(study: optuna.Study) -> int:
    """Mark FAIL the RUNNING trials of dead workers on this host (a killed run); returns their count.

    Not on a storage with heartbeats (PostgreSQL): there Optuna's stale-trial check fails a dead worker's
    trial after the grace period *and re-queues it*, which marking it here first would pre-empt.
    """
    # Optuna has no public accessor for the study's storage settings
    if getattr(study._storage, "get_heartbeat_interval", lambda: None)() is not None:
        return 0
    host, n = socket.gethostname(), 0
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = TrialRecord(trial).worker
        key = (study.study_name, trial.number)
        if key in _STARTED_HERE:  # this process's own trial: stale once it no longer runs it
            if key in _RUNNING_HERE:
                continue
        elif not worker:  # the worker died (or its disk filled) before it could say who it is
            started = trial.datetime_start
            if started is None or (datetime.datetime.now() - started).total_seconds() < NO_RECORD_GRACE_S:
                continue
        elif worker.get("host") != host or worker_alive(worker):
            continue
        fail_trial_in_storage(
            study, trial, f"{INTERRUPTED}: worker process {worker.get('pid')} ended mid-trial"
        )
        n += 1
    return n


#: trials (study name, number) this process started, and those it is running now (:func:`running_here`)
_STARTED_HERE: set[tuple[str, int]] = set()
_RUNNING_HERE: set[tuple[str, int]] = set()
#: seconds after which a RUNNING trial without a worker record counts as stale (a worker writes its record
#: right after creating the trial; none means it died or its disk filled in between)
NO_RECORD_GRACE_S = 60.0


@contextlib.contextmanager
def running_here(study_name: str, number: int) -> Iterator[None]:
    """Mark trial ``number`` of ``study_name`` as run by this process while the block runs."""
    _STARTED_HERE.add((study_name, number))
    _RUNNING_HERE.add((study_name, number))
    try:
        yield
    finally:
        _RUNNING_HERE.discard((study_name, number))


def reap_dead_workers(study: optuna.Study) -> None:
    """Fail the RUNNING trials of dead workers: by heartbeat (PostgreSQL; re-queues them) or by pid here."""
    fail_silent_trials(study)
    fail_stale_trials(study)


def fail_silent_trials(study: optuna.Study) -> None:
    """On a storage with heartbeats: Optuna's check that fails (and re-queues) the trials whose heartbeat
    stopped, without the warning that it is experimental in every worker's log (the reason each gets is
    stored by :class:`wwtune.postgres.HeartbeatReasonStorage`)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid runs on this host.

    A process that has ended but that its parent has not reaped yet (a zombie: ``Z`` or ``X`` in
    ``/proc/<pid>/stat``) still answers ``kill(pid, 0)`` but runs nothing: it counts as dead.
    """
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return _proc_state(pid) not in ("Z", "X")


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` from field 3 (the state) on, or None where unreadable."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) is in parentheses and may hold spaces: split after its closing one
    return stat[stat.rfind(")") + 2 :].split()


def _proc_state(pid: int) -> str | None:
    """The state letter of process ``pid`` (``/proc/<pid>/stat`` field 3), or None where unreadable."""
    fields = _stat_fields(pid)
    return fields[0] if fields else None


#: this process's token, stored with each trial it runs
RUN_TOKEN = uuid.uuid4().hex


def _start_ticks(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks since boot, ``/proc/<pid>/stat`` field 22), or None."""
    fields = _stat_fields(pid)
    if fields is None:
        return None
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
    if not pid_alive(pid):
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
