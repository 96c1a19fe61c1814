"""Trials whose worker died: find them and fail them, so a resumed or shared study does not wait on them.

On a storage with heartbeats (PostgreSQL) Optuna's stale-trial check fails a dead worker's trial after the
grace period and re-queues it; elsewhere a RUNNING trial whose worker process (by host and pid, stored in
``wwtune.worker``) no longer exists on this host is marked FAIL here, its reason starting with
:data:`wwtune.workers.INTERRUPTED` (such trials do not count towards ``study.n_trials``).
"""

from __future__ import annotations

import os
import socket

import optuna
from optuna.trial import TrialState

from wwtune.record import TrialRecord, fail_trial_in_storage
from wwtune.workers import INTERRUPTED

__all__ = ["fail_stale_trials", "pid_alive", "reap_dead_workers"]


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
        if worker.get("host") != host or pid_alive(int(worker.get("pid", -1))):
            continue
        fail_trial_in_storage(
            study, trial, f"{INTERRUPTED}: worker process {worker.get('pid')} ended mid-trial"
        )
        n += 1
    return n


def reap_dead_workers(study: optuna.Study) -> None:
    """Fail the RUNNING trials of dead workers: by heartbeat (PostgreSQL; re-queues them) or by pid here."""
    optuna.storages.fail_stale_trials(study)
    fail_stale_trials(study)


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
