"""Several workers, one study: per-worker sampler seeds and a study-wide trial cap.

Every worker runs the same command against a shared storage (journal file on one host, PostgreSQL across
hosts) and joins the study with ``load_if_exists``. Two things differ between workers and are handled
here:

* the sampler seed: :func:`worker_seed` derives a distinct, reproducible seed from the study seed and the
  worker id (:func:`resolve_worker_id` reads it from the config, ``WWTUNE_WORKER_ID`` or SLURM);
* when to stop: :class:`StudyTrialCap` stops a worker once the *study* holds ``n_trials`` finished
  trials, whoever ran them, instead of each process counting its own.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping

import numpy as np
import optuna
from optuna.study import MaxTrialsCallback
from optuna.trial import FrozenTrial, TrialState

from wwtune.record import TrialRecord

__all__ = [
    "INTERRUPTED",
    "OVER_CAP",
    "WORKER_ID_ENV",
    "StudyTrialCap",
    "counted_trials",
    "resolve_worker_id",
    "worker_seed",
]

_logger = logging.getLogger(__name__)

#: Environment variable that sets a worker's id when the config does not.
WORKER_ID_ENV = "WWTUNE_WORKER_ID"
#: Scheduler variables consulted after WWTUNE_WORKER_ID, in order (SLURM array task, SLURM task rank).
_SCHEDULER_ENVS = ("SLURM_ARRAY_TASK_ID", "SLURM_PROCID")

_FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)

#: ``wwtune.fail_reason`` prefix of a trial whose worker process died (set by the next run on its host).
INTERRUPTED = "interrupted"
#: ``wwtune.fail_reason`` prefix of a trial created past the study-wide cap (two workers raced for the last
#: slot); it is ended at once, before any parameter is sampled, and does not count.
OVER_CAP = "over the study-wide cap"


def _as_worker_id(value: object, source: str) -> int:
    message = f"worker_id from {source} must be a non-negative integer but got {value!r}."
    try:
        worker_id = int(str(value).strip())
    except ValueError:
        raise ValueError(message) from None
    if worker_id < 0 or isinstance(value, bool):
        raise ValueError(message)
    return worker_id


def resolve_worker_id(
    configured: int | str | None = None, environ: Mapping[str, str] | None = None
) -> int | None:
    """This worker's id: the config's ``worker_id``, else ``$WWTUNE_WORKER_ID``, else the SLURM array task
    id or task rank, else ``None`` (a single worker, or workers that did not say who they are)."""
    env = os.environ if environ is None else environ
    if configured is not None and configured != "":
        return _as_worker_id(configured, "the config (worker_id)")
    for name in (WORKER_ID_ENV, *_SCHEDULER_ENVS):
        if env.get(name, "").strip():
            return _as_worker_id(env[name], f"${name}")
    return None


def worker_seed(study_seed: int | None, worker_id: int | None) -> int | None:
    """The sampler seed of worker ``worker_id`` in a study seeded with ``study_seed``.

    Worker 0 (or no worker id) uses the study seed itself, so a single-worker study is reproduced exactly
    by the same command. Other workers get ``SeedSequence([study_seed, worker_id])``'s first 32-bit word:
    deterministic, and distinct between workers so they do not propose the same first trials.
    ``study_seed=None`` stays ``None`` (unseeded).
    """
    if study_seed is None:
        return None
    if isinstance(study_seed, bool) or not isinstance(study_seed, (int, np.integer)) or study_seed < 0:
        raise ValueError(f"study seed must be a non-negative integer or None but got {study_seed!r}.")
    if worker_id is None or worker_id == 0:
        return int(study_seed)
    if isinstance(worker_id, bool) or not isinstance(worker_id, (int, np.integer)) or worker_id < 0:
        raise ValueError(f"worker_id must be a non-negative integer or None but got {worker_id!r}.")
    return int(np.random.SeedSequence([int(study_seed), int(worker_id)]).generate_state(1)[0])


def counted_trials(trials: list[FrozenTrial]) -> int:
    """How many of ``trials`` count towards the study's ``n_trials``.

    Finished trials count: COMPLETE, PRUNED and FAIL (a diverged run used its compute too), except FAIL
    trials whose worker died: those a heartbeat declared dead and re-queued (their number is in another
    trial's ``retry_history``, written by Optuna's :class:`~optuna.storages.RetryHeartbeatStaleTrialCallback`;
    the retry stands in for them), those marked :data:`INTERRUPTED` by a later run on the same host, and
    those ended as :data:`OVER_CAP` (never run). RUNNING and WAITING trials do not count yet.
    """
    retried = {n for t in trials for n in t.system_attrs.get("retry_history", ())}
    return sum(1 for t in trials if t.state in _FINISHED and not _void(t, retried))


def _void(t: FrozenTrial, retried: set[int]) -> bool:
    """A FAIL trial that stands for no work of its own: its worker died, or it was started past the cap."""
    if t.state != TrialState.FAIL:
        return False
    reason = str(TrialRecord(t).fail_reason or "")
    return t.number in retried or reason.startswith((INTERRUPTED, OVER_CAP))


class StudyTrialCap(MaxTrialsCallback):
    """Stop this worker once the study, across all workers, holds ``n_trials`` counted trials.

    Optuna's :class:`~optuna.study.MaxTrialsCallback` with the counting rule of :func:`counted_trials`:
    unlike a fixed set of states, it does not count a crashed worker's trial that was re-queued, so the
    retry still runs before the study ends. Pass it to ``study.optimize(..., n_trials=None,
    callbacks=[cap])`` in every worker; check :meth:`reached` before starting so a finished study runs no
    extra trial. Before a worker starts another trial it waits (:meth:`wait_for_room`) while the finished
    trials plus the trials other workers are running already fill the cap, so the study ends with exactly
    ``n_trials`` counted trials; while it waits, ``reap`` fails the trials of dead workers so their slots
    come free (and their re-queued retries run). Waiting alone leaves a race (two workers see the last
    free slot at once and both create a trial), so the objective also calls :meth:`admits` once its trial
    exists: trial numbers are handed out atomically by the storage, so the later of the two sees the
    earlier one RUNNING and ends its own trial as :data:`OVER_CAP` before sampling anything.

    Args:
        n_trials: the study-wide number of trials. Must be a positive integer.
        reap: called with the study while a worker waits for room: it should fail the RUNNING trials of
            dead workers (heartbeat, or a dead process on this host). Default: nothing.
        poll_s: seconds between checks while waiting. Default 0.2.
        timeout_s: stop waiting for room (and so stop the worker) this many seconds after the cap was made,
            like ``study.optimize``'s ``timeout``. Default: no limit.
        log_every_s: while waiting, log what it waits for every this many seconds. Default 60.
        log_progress: log the study-wide count after each of this worker's trials (for workers that show
            no progress bar). Default False.

    Example:
        .. code-block:: python

            import optuna
            from wwtune.workers import StudyTrialCap

            study = optuna.create_study()
            cap = StudyTrialCap(5)
            if not cap.reached(study):
                study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=None, callbacks=[cap])
            assert len(study.trials) == 5
    """

    def __init__(
        self,
        n_trials: int,
        *,
        reap: Callable[[optuna.Study], object] | None = None,
        poll_s: float = 0.2,
        timeout_s: float | None = None,
        log_every_s: float = 60.0,
        log_progress: bool = False,
    ) -> None:
        if isinstance(n_trials, bool) or not isinstance(n_trials, (int, np.integer)):
            raise TypeError(f"n_trials must be an integer but got {n_trials!r}.")
        if n_trials < 1:
            raise ValueError(f"n_trials must be positive but got {n_trials}.")
        if not poll_s > 0:
            raise ValueError(f"poll_s must be positive but got {poll_s!r}.")
        if timeout_s is not None and not timeout_s > 0:
            raise ValueError(f"timeout_s must be positive or None but got {timeout_s!r}.")
        super().__init__(int(n_trials), states=_FINISHED)
        self._reap, self._poll_s, self._log_every_s = reap, float(poll_s), float(log_every_s)
        self._deadline = None if timeout_s is None else time.monotonic() + float(timeout_s)
        self._log_progress = bool(log_progress)

    @property
    def n_trials(self) -> int:
        return self._n_trials

    def count(self, study: optuna.Study) -> int:
        return counted_trials(study.get_trials(deepcopy=False))

    def reached(self, study: optuna.Study) -> bool:
        return self.count(study) >= self._n_trials

    def wait_for_room(self, study: optuna.Study) -> bool:
        """Block until this worker may start a trial within the cap; False once the cap is reached.

        There is room when a re-queued (WAITING) trial is there to take, or when the counted trials plus
        the RUNNING ones (other workers' claims) are fewer than ``n_trials``. While it waits it says so in
        the log (once, then every ``log_every_s``), and it gives up (False) once ``timeout_s`` seconds have
        passed since the cap was made.
        """
        logged_at = None
        while True:
            trials = study.get_trials(deepcopy=False)
            counted = counted_trials(trials)
            if counted >= self._n_trials:
                return False
            states = [t.state for t in trials]
            running = [t.number for t in trials if t.state == TrialState.RUNNING]
            if TrialState.WAITING in states or counted + len(running) < self._n_trials:
                return True
            now = time.monotonic()
            if self._deadline is not None and now >= self._deadline:
                _logger.info("study.timeout reached while waiting for room in the study; stopping.")
                return False
            if logged_at is None or now - logged_at >= self._log_every_s:
                logged_at = now
                _logger.info(
                    "%d of %d trials finished and other workers are running trial(s) %s: waiting for "
                    "them (a dead worker's trial is failed after its heartbeat grace period on PostgreSQL, "
                    "or on this host once its process is found ended).",
                    counted,
                    self._n_trials,
                    ", ".join(f"#{n}" for n in running),
                )
            if self._reap is not None:
                self._reap(study)
            time.sleep(self._poll_s)

    def admits(self, study: optuna.Study, number: int) -> bool:
        """Whether trial ``number``, just created, is within the cap.

        It is when the trials numbered before it, counted plus RUNNING (claims not yet finished), are fewer
        than ``n_trials``. The rule only looks at lower numbers, so of two workers that raced for the last
        slot exactly one (the lower number) is admitted, on any storage.
        """
        trials = study.get_trials(deepcopy=False)
        # a retry can be numbered after the trial it replaces: look for retries among all trials
        retried = {n for t in trials for n in t.system_attrs.get("retry_history", ())}
        earlier = [t for t in trials if t.number < number]
        claimed = sum(
            1
            for t in earlier
            if t.state == TrialState.RUNNING or (t.state in _FINISHED and not _void(t, retried))
        )
        return claimed < self._n_trials

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if self._log_progress:
            done = self.count(study)
            _logger.info("Study %r: %d of %d trials done.", study.study_name, done, self._n_trials)
        if not self.wait_for_room(study):
            _logger.debug("study-wide trial cap %d reached after trial %d", self._n_trials, trial.number)
            study.stop()
