"""Worker ids, per-worker seeds and the study-wide trial cap (no subprocesses here)."""

from __future__ import annotations

import optuna
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from wwtune.workers import OVER_CAP, StudyTrialCap, counted_trials, resolve_worker_id, worker_seed

optuna.logging.set_verbosity(optuna.logging.WARNING)


# --- seeds ------------------------------------------------------------------------------------------


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n_workers=st.integers(2, 64))
def test_worker_seeds_are_deterministic_and_distinct(seed: int, n_workers: int) -> None:
    seeds = [worker_seed(seed, w) for w in range(n_workers)]
    assert seeds == [worker_seed(seed, w) for w in range(n_workers)]
    assert len(set(seeds)) == n_workers
    assert seeds[0] == seed == worker_seed(seed, None)
    assert all(0 <= s < 2**32 for s in seeds)


def test_distinct_seeds_give_distinct_first_proposals() -> None:
    firsts = set()
    for w in range(4):
        study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=worker_seed(7, w)))
        firsts.add(study.ask().suggest_float("x", 0, 1))
    assert len(firsts) == 4


def test_unseeded_study_stays_unseeded_and_bad_values_are_named() -> None:
    assert worker_seed(None, 3) is None
    with pytest.raises(ValueError, match="study seed must be a non-negative integer or None but got -1"):
        worker_seed(-1, 0)
    with pytest.raises(ValueError, match="worker_id must be a non-negative integer or None but got -2"):
        worker_seed(1, -2)


def test_worker_id_precedence_config_then_env_then_slurm() -> None:
    env = {"WWTUNE_WORKER_ID": "3", "SLURM_ARRAY_TASK_ID": "5", "SLURM_PROCID": "6"}
    assert resolve_worker_id(1, env) == 1
    assert resolve_worker_id(None, env) == 3
    assert resolve_worker_id(None, {"SLURM_ARRAY_TASK_ID": "5", "SLURM_PROCID": "6"}) == 5
    assert resolve_worker_id(None, {"SLURM_PROCID": "6"}) == 6
    assert resolve_worker_id(None, {}) is None
    assert resolve_worker_id("2", {}) == 2


@pytest.mark.parametrize(
    ("configured", "env", "source"),
    [
        (-1, {}, "the config"),
        ("x", {}, "the config"),
        (None, {"WWTUNE_WORKER_ID": "two"}, r"\$WWTUNE_WORKER_ID"),
    ],
)
def test_bad_worker_id_names_its_source(configured, env, source) -> None:
    with pytest.raises(ValueError, match=f"worker_id from {source}.*must be a non-negative integer"):
        resolve_worker_id(configured, env)


# --- counting and the cap ---------------------------------------------------------------------------


def _trial(state: TrialState, **system_attrs) -> optuna.trial.FrozenTrial:
    value = 1.0 if state == TrialState.COMPLETE else None
    return create_trial(
        state=state,
        value=value,
        params={"x": 0.5},
        distributions={"x": FloatDistribution(0, 1)},
        system_attrs=system_attrs,
    )


def test_counted_trials_skips_retried_failures_and_unfinished_trials() -> None:
    study = optuna.create_study()
    for t in [
        _trial(TrialState.COMPLETE),
        _trial(TrialState.FAIL),
        _trial(TrialState.PRUNED),
        _trial(TrialState.FAIL),  # number 3: a dead worker's trial, re-queued below
        _trial(TrialState.COMPLETE, failed_trial=3, retry_history=[3]),
        _trial(TrialState.WAITING, failed_trial=3, retry_history=[3, 4]),
    ]:
        study.add_trial(t)
    trials = study.get_trials()
    # 0 complete, 1 diverged (counts), 2 pruned, 3 retried (does not count), 4 complete retry, 5 waiting
    assert counted_trials(trials) == 4


def test_cap_stops_exactly_at_n_in_one_worker_and_a_finished_study_runs_nothing() -> None:
    study = optuna.create_study()
    cap = StudyTrialCap(5)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=None, callbacks=[cap])
    assert len(study.trials) == 5 and cap.reached(study)


def test_cap_terminates_when_every_trial_fails() -> None:
    def diverges(trial: optuna.Trial) -> float:
        trial.suggest_float("x", 0, 1)
        raise FloatingPointError("loss became nan")

    study = optuna.create_study()
    study.optimize(diverges, n_trials=None, callbacks=[StudyTrialCap(4)], catch=(FloatingPointError,))
    assert [t.state for t in study.trials] == [TrialState.FAIL] * 4


def test_cap_lets_a_requeued_trial_run_before_stopping() -> None:
    study = optuna.create_study()
    for _ in range(2):
        study.add_trial(_trial(TrialState.COMPLETE))
    study.add_trial(_trial(TrialState.FAIL))  # number 2 died; its retry waits in the queue
    study.add_trial(_trial(TrialState.WAITING, failed_trial=2, retry_history=[2]))
    cap = StudyTrialCap(3)
    assert not cap.reached(study)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=None, callbacks=[cap])
    states = [t.state for t in study.trials]
    assert states == [TrialState.COMPLETE, TrialState.COMPLETE, TrialState.FAIL, TrialState.COMPLETE]
    assert study.trials[3].params == {"x": 0.5}


def test_cap_alone_keeps_concurrent_workers_within_n_plus_workers_minus_one() -> None:
    import time

    def slow(trial: optuna.Trial) -> float:
        time.sleep(0.01)
        return trial.suggest_float("x", 0, 1)

    study = optuna.create_study()
    study.optimize(slow, n_trials=None, n_jobs=4, callbacks=[StudyTrialCap(12)])
    done = counted_trials(study.trials)
    assert 12 <= done <= 12 + 3
    assert sorted(t.number for t in study.trials) == list(range(len(study.trials)))


def test_admits_lets_exactly_one_of_two_racing_trials_take_the_last_slot() -> None:
    study = optuna.create_study()
    for _ in range(2):
        study.add_trial(_trial(TrialState.COMPLETE))
    cap = StudyTrialCap(3)
    first, second = study.ask(), study.ask()  # two workers both saw one free slot and created a trial
    assert cap.admits(study, first.number) and not cap.admits(study, second.number)
    second.set_user_attr("wwtune.fail_reason", f"{OVER_CAP}: not run")
    study.tell(second, state=TrialState.FAIL)
    study.tell(first, 1.0)
    assert counted_trials(study.get_trials()) == 3 and cap.reached(study)


def test_admits_a_retry_numbered_after_the_trial_it_replaces() -> None:
    study = optuna.create_study()
    for _ in range(2):
        study.add_trial(_trial(TrialState.COMPLETE))
    study.add_trial(_trial(TrialState.FAIL))  # number 2 died ...
    study.add_trial(_trial(TrialState.WAITING, failed_trial=2, retry_history=[2]))  # ... its retry is 3
    cap = StudyTrialCap(3)
    retry = study.ask()
    assert retry.number == 3 and cap.admits(study, 3)
    late = study.ask()  # a fresh trial while the retry runs: the cap is full
    assert not cap.admits(study, late.number)


def test_concurrent_workers_that_check_admission_stop_at_exactly_n() -> None:
    import time

    cap = StudyTrialCap(12, poll_s=0.005)

    def slow(trial: optuna.Trial) -> float:
        if not cap.admits(trial.study, trial.number):
            trial.set_user_attr("wwtune.fail_reason", f"{OVER_CAP}: not run")
            return float("nan")
        time.sleep(0.01)
        return trial.suggest_float("x", 0, 1)

    for seed in range(3):
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
        study.optimize(slow, n_trials=None, n_jobs=4, callbacks=[cap])
        assert counted_trials(study.trials) == 12
        assert len([t for t in study.trials if t.state == TrialState.COMPLETE]) == 12


@pytest.mark.parametrize(
    ("n", "error", "message"),
    [
        (0, ValueError, "n_trials must be positive but got 0"),
        (2.5, TypeError, "n_trials must be an integer but got 2.5"),
        (True, TypeError, "n_trials must be an integer but got True"),
    ],
)
def test_cap_validates_n_trials(n, error, message) -> None:
    with pytest.raises(error, match=message):
        StudyTrialCap(n)


def test_a_killed_but_unreaped_worker_is_not_alive() -> None:
    """A zombie (ended, not yet waited for by its parent) still answers kill(pid, 0) but runs nothing."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from wwtune.reaping import pid_alive, process_identity, worker_alive

    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        record = {**process_identity(), "pid": child.pid, "token": "another run"}
        record["started"] = int(open(f"/proc/{child.pid}/stat").read().rsplit(")", 1)[1].split()[19])
        assert pid_alive(child.pid) and worker_alive(record)
        os.kill(child.pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while "Z" != open(f"/proc/{child.pid}/stat").read().rsplit(")", 1)[1].split()[0]:
            assert time.monotonic() < deadline, "the killed child never became a zombie"
            time.sleep(0.01)  # a poll interval, not a wait for an outcome
        os.kill(child.pid, 0)  # the zombie still answers signal 0 ...
        assert not pid_alive(child.pid)  # ... but is not alive
        assert not worker_alive(record)
    finally:
        child.kill()
        child.wait(10)
