"""Many workers, one study: real processes running the same command against journal and PostgreSQL.

Each worker is ``python -m wwtune study=wtiny`` started in a user project (tests/workerproj + the cheap
task tests/worker_tasks.py); they differ only in ``WWTUNE_WORKER_ID``.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from study_fixtures import LAYER_KEYS

from wwtune.cli import compose
from wwtune.postgres import StorageConnectionError, postgres_storage
from wwtune.study import run_study
from wwtune.workers import counted_trials

HERE = Path(__file__).parent

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(300),  # a hung worker or lock fails the test instead of stalling CI
    pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning"),
]
optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    shutil.copytree(HERE / "workerproj" / "conf", tmp_path / "conf")
    shutil.copy(HERE / "worker_tasks.py", tmp_path / "worker_tasks.py")
    return tmp_path


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WWTUNE_", "SLURM_"))}
    env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def start_worker(project: Path, worker_id: int, *overrides: str, **env: str) -> subprocess.Popen:
    log = open(project / f"worker{worker_id}.log", "w")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(
        [sys.executable, "-m", "wwtune", "study=wtiny", *overrides],
        cwd=project,
        env=_env(WWTUNE_WORKER_ID=str(worker_id), **env),
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def run_cli(project: Path, *args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess:
    """``python -m wwtune ARGS`` in the project folder, to its end; output captured."""
    return subprocess.run(
        [sys.executable, "-m", "wwtune", *args],
        cwd=project,
        env=_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def wait_all(project: Path, workers: list[subprocess.Popen], timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    for w in workers:
        try:
            w.wait(timeout=max(deadline - time.monotonic(), 1))
        except subprocess.TimeoutExpired:
            for other in workers:
                other.kill()
            raise
    logs = {p.name: p.read_text()[-3000:] for p in sorted(project.glob("worker*.log"))}
    codes = [w.returncode for w in workers]
    assert all(code in (0, -signal.SIGKILL) for code in codes), (codes, logs)


def journal_study(project: Path) -> optuna.Study:
    backend = optuna.storages.journal.JournalFileBackend(str(project / "studies" / "wtiny" / "journal.log"))
    return optuna.load_study(study_name="wtiny", storage=optuna.storages.journal.JournalStorage(backend))


def open_pg(url: str) -> optuna.storages.RDBStorage:
    """The test's own view of a worker's PostgreSQL study (no heartbeats of its own)."""
    return postgres_storage(url, heartbeat_interval=None, grace_period=None)


def check_study(study: optuna.Study, cap: int) -> list[optuna.trial.FrozenTrial]:
    """The invariants of a study run by several workers; returns its COMPLETE trials."""
    trials = study.get_trials()
    numbers = [t.number for t in trials]
    assert sorted(numbers) == list(range(len(trials))), "trial numbers must be unique and contiguous"
    # A worker starts a trial only while finished + running trials leave room: exactly `cap` are counted.
    assert counted_trials(trials) == cap
    assert not [t.number for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    for t in complete:
        layers = t.user_attrs["wwtune.layers"]
        assert set(LAYER_KEYS) <= set(layers), f"trial {t.number} lacks per-layer keys"
        assert "fc1" in layers["name"] and layers["step"] == 3
        n_layers = len(layers["name"])
        assert all(len(layers[k]) == n_layers for k in LAYER_KEYS if k != "step" and layers[k] is not None)
        assert t.user_attrs["wwtune.score"] == pytest.approx(t.value)
        assert [s for s, _ in t.user_attrs["wwtune.losses"]] == [1, 2, 3]
    return complete


def worker_ids(trials: list[optuna.trial.FrozenTrial]) -> set[int]:
    return {t.system_attrs["wwtune.worker"]["worker_id"] for t in trials}


# --- several workers, no faults ---------------------------------------------------------------------


def test_four_workers_share_one_journal_study(project: Path) -> None:
    cap = 8
    workers = [start_worker(project, w, f"study.n_trials={cap}") for w in range(4)]
    wait_all(project, workers)
    complete = check_study(journal_study(project), cap)
    assert len(complete) == cap
    assert len(worker_ids(complete)) >= 2, "the workers must share the trials"
    assert len({tuple(sorted(t.params.items())) for t in complete}) == len(complete), "seeds must differ"


@pytest.mark.postgres
def test_four_workers_share_one_postgres_study(project: Path, pg_cluster, pg_url: str) -> None:
    cap = 8
    workers = [
        start_worker(
            project,
            w,
            "storage=postgres",
            f"study.n_trials={cap}",
            *(["study.report=true"] if w == 0 else []),  # one worker writes report.html as well
            WWTUNE_STORAGE_URL=pg_url,
        )
        for w in range(4)
    ]
    wait_all(project, workers)
    study = optuna.load_study(study_name="wtiny", storage=open_pg(pg_url))
    complete = check_study(study, cap)
    assert len(complete) == cap
    assert len(worker_ids(complete)) >= 2
    assert len({tuple(sorted(t.params.items())) for t in complete}) == len(complete)
    assert "journal.log" not in {p.name for p in project.rglob("*")}
    # a successful run leaks the password nowhere: worker output, Hydra's run folders, the report, the study
    files = [p for p in project.rglob("*") if p.is_file()]
    assert any(p.name == "report.html" for p in files) and any(p.parent.name == ".hydra" for p in files)
    stored: list = [study.user_attrs]
    stored += [(t.user_attrs, t.system_attrs, t.params) for t in study.get_trials()]
    for text in (*(p.read_text(errors="replace") for p in files), json.dumps(stored, default=str)):
        assert pg_cluster.password not in text


def test_a_password_on_the_command_line_is_refused_before_hydra_writes_anything(project: Path) -> None:
    secret = "SeKr1t-on-the-cli"
    for overrides in (
        ["storage=postgres", f"storage.url=postgresql://me:{secret}@127.0.0.1:1/db"],
        ["-m", "storage=sqlite", f"storage.url=sqlite:///a.db,'postgresql+psycopg2://me:{secret}@h/db'"],
    ):
        result = run_cli(project, "study=wtiny", *overrides, timeout=60)
        assert result.returncode == 2, result.stderr[-2000:]
        assert "storage.url=" in result.stderr and "WWTUNE_STORAGE_URL" in result.stderr
        assert "Traceback" not in result.stderr
        written = [p.read_text(errors="replace") for p in project.rglob("*") if p.is_file()]
        for text in (result.stdout, result.stderr, *written):
            assert secret not in text
        assert not (project / "studies").exists() and not (project / "multirun").exists()


# --- a worker killed mid-trial ----------------------------------------------------------------------


def _kill_mid_trial(
    victim: subprocess.Popen, load: callable, timeout_s: float = 60
) -> optuna.trial.FrozenTrial:
    """SIGKILL ``victim`` once one of its trials is RUNNING and has reported a step; returns that trial."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert victim.poll() is None, "the victim ended before it could be killed"
        try:
            running = load().get_trials(states=(TrialState.RUNNING,))
        except (KeyError, FileNotFoundError):  # the study is not created yet
            running = []
        for t in running:
            if t.system_attrs.get("wwtune.worker", {}).get("pid") == victim.pid and t.intermediate_values:
                victim.send_signal(signal.SIGKILL)
                victim.wait(10)
                return t
        time.sleep(0.1)
    raise AssertionError("the victim never got mid-trial")


@pytest.mark.postgres
def test_killed_worker_trial_fails_after_grace_period_and_is_retried_on_postgres(
    project: Path, pg_url: str
) -> None:
    cap, grace = 10, 6  # longer than a replacement worker takes to start
    common = (
        "storage=postgres",
        f"study.n_trials={cap}",
        "storage.heartbeat_interval=1",
        f"storage.grace_period={grace}",
    )
    env = {"WWTUNE_STORAGE_URL": pg_url, "WWTUNE_TEST_EPOCH_SLEEP": "0.3"}
    victim = start_worker(project, 0, *common, **env)
    survivors = [start_worker(project, 1, *common, **env)]
    storage = open_pg(pg_url)
    killed = _kill_mid_trial(victim, lambda: optuna.load_study(study_name="wtiny", storage=storage))
    # the dead worker's replacement starts on the same host at once: with heartbeats it must leave the dead
    # trial to the heartbeat check (fail after the grace period and re-queue), not fail it without a retry
    survivors.append(start_worker(project, 2, *common, **env))
    done_before = {
        t.number
        for t in optuna.load_study(study_name="wtiny", storage=storage).trials
        if t.state == TrialState.COMPLETE
    }
    wait_all(project, [victim, *survivors])

    study = optuna.load_study(study_name="wtiny", storage=storage)
    complete = check_study(study, cap)
    dead = study.trials[killed.number]
    # failed by the heartbeat check (the same-host replacement left it alone), not early, with its reason
    assert dead.state == TrialState.FAIL
    assert dead.user_attrs["wwtune.fail_reason"].startswith("interrupted: no heartbeat from its worker")
    logs = "".join(p.read_text() for p in project.glob("worker*.log"))
    assert "ExperimentalWarning" not in logs
    retries = [t for t in study.trials if t.system_attrs.get("failed_trial") == killed.number]
    assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE
    assert retries[0].params == killed.params
    assert done_before <= {t.number for t in complete}, "a completed trial was lost"


def test_killed_worker_leaves_the_journal_readable_and_others_finish(project: Path, monkeypatch) -> None:
    cap = 8
    env = {"WWTUNE_TEST_EPOCH_SLEEP": "0.15"}
    victim = start_worker(project, 0, f"study.n_trials={cap}", **env)
    survivor = start_worker(project, 1, f"study.n_trials={cap}", **env)
    killed = _kill_mid_trial(victim, lambda: journal_study(project))
    wait_all(project, [victim, survivor])

    study = journal_study(project)  # the log still parses after the kill
    complete = check_study(study, cap)
    assert len(complete) == cap and 1 in worker_ids(complete)
    # No heartbeat in a journal: the survivor, waiting for room at the cap, found the dead process on this
    # host and failed its trial, which then freed its slot.
    assert study.trials[killed.number].state == TrialState.FAIL
    assert study.trials[killed.number].user_attrs["wwtune.fail_reason"].startswith("interrupted")
    # A later run finds the study complete and runs no extra trial.
    monkeypatch.chdir(project)
    run_study(compose(["study=wtiny", f"study.n_trials={cap}"]))
    assert len(journal_study(project).trials) == len(study.trials), "a finished study runs no extra trial"


def test_a_killed_worker_not_yet_reaped_does_not_stall_the_others(project: Path) -> None:
    """Start two workers, kill one, wait for them in order: the killed one stays a zombie until it is waited
    for, and the survivor must not wait on its trial (issue 24.1)."""
    cap = 8
    env = {"WWTUNE_TEST_EPOCH_SLEEP": "0.3"}
    survivor = start_worker(project, 0, f"study.n_trials={cap}", **env)
    victim = start_worker(project, 1, f"study.n_trials={cap}", **env)
    deadline = time.monotonic() + 150  # two workers starting on loaded shared cores
    killed = None
    while killed is None:  # SIGKILL the victim mid-trial and do *not* wait for it: it stays a zombie
        assert time.monotonic() < deadline and victim.poll() is None, "the victim never got mid-trial"
        try:
            running = journal_study(project).get_trials(states=(TrialState.RUNNING,))
        except (KeyError, FileNotFoundError):
            running = []
        for t in running:
            if t.system_attrs.get("wwtune.worker", {}).get("pid") == victim.pid and t.intermediate_values:
                os.kill(victim.pid, signal.SIGKILL)
                killed = t
                break
        time.sleep(0.1)  # a poll interval, not a wait for an outcome
    try:
        survivor.wait(timeout=90)  # before the fix: waited at the cap until the zombie was reaped
    finally:
        victim.wait(10)
        survivor.kill()
    log = (project / "worker0.log").read_text()
    assert survivor.returncode == 0, log[-3000:]
    study = journal_study(project)
    complete = check_study(study, cap)
    assert len(complete) == cap
    assert study.trials[killed.number].user_attrs["wwtune.fail_reason"].startswith("interrupted")
    assert "at once on this host" not in log


# --- bad storage settings fail fast, and say so without the password --------------------------------


@pytest.mark.postgres
def test_storage_errors_are_clear_fast_and_never_show_the_password(
    project: Path, pg_cluster, pg_url, monkeypatch
):
    monkeypatch.chdir(project)
    wrong = "NotTheRightOne-7"
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cases = [
        (None, "WWTUNE_STORAGE_URL, which is not set"),
        (pg_url.replace(pg_cluster.password, wrong), "password authentication failed"),
        (f"postgresql://postgres:{wrong}@127.0.0.1:{port}/db", "Connection refused"),
        (f"postgresql://postgres@127.0.0.1:{port}", "names no database"),
    ]
    cfg = compose(["study=wtiny", "storage=postgres", "storage.connect_timeout=2"])
    for url, message in cases:
        if url is None:
            monkeypatch.delenv("WWTUNE_STORAGE_URL", raising=False)
        else:
            monkeypatch.setenv("WWTUNE_STORAGE_URL", url)
        start = time.monotonic()
        with pytest.raises(StorageConnectionError, match=message) as info:
            run_study(cfg)
        assert time.monotonic() - start < 8
        assert wrong not in str(info.value) and pg_cluster.password not in str(info.value)

    # The same through the command line: exit code 2, one clear line, no traceback, nothing secret on disk.
    bad_url = pg_url.replace(pg_cluster.password, wrong)
    result = run_cli(
        project, "study=wtiny", "storage=postgres", "storage.connect_timeout=2", WWTUNE_STORAGE_URL=bad_url
    )
    assert result.returncode == 2
    assert "wwtune: storage error:" in result.stderr and "password authentication failed" in result.stderr
    assert "postgres:***@127.0.0.1" in result.stderr and "Traceback" not in result.stderr
    written = [p.read_text(errors="replace") for p in project.rglob("*") if p.is_file()]
    for text in (result.stdout, result.stderr, *written):
        assert wrong not in text and pg_cluster.password not in text


def test_sqlite_warns_when_several_workers_use_it(project: Path, monkeypatch, caplog) -> None:
    monkeypatch.chdir(project)
    monkeypatch.setenv("WWTUNE_WORKER_ID", "1")
    run_study(compose(["study=wtiny", "storage=sqlite", "study.n_trials=1"]))
    assert "storage=sqlite is not safe for several workers" in caplog.text


def test_a_worker_without_an_id_beside_running_workers_is_warned(project: Path, monkeypatch, caplog) -> None:
    monkeypatch.chdir(project)
    monkeypatch.delenv("WWTUNE_WORKER_ID", raising=False)
    caplog.set_level(logging.INFO, logger="wwtune")
    cfg = compose(["study=wtiny", "study.n_trials=2"])
    study = run_study({**cfg, "study": {**cfg["study"], "n_trials": 1}})
    assert "no worker id" not in caplog.text
    # a live worker (another process on this host, waiting on its stdin) holds a RUNNING trial; this
    # process's own trial would be stale as soon as this process stops running it (wwtune.reaping)
    other = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        trial = study.ask()
        live = {"host": socket.gethostname(), "pid": other.pid, "worker_id": None}
        trial.set_user_attr("wwtune.worker", live)  # as older studies stored it: still read
        # it then waits for that trial's slot, saying so, until study.timeout; the live trial is left alone
        start = time.monotonic()
        again = run_study({**cfg, "study": {**cfg["study"], "timeout": 3}})
    finally:
        other.communicate(timeout=30)  # closes its stdin: it ends
    assert 2.5 < time.monotonic() - start < 30
    assert [t.number for t in again.trials if t.state == TrialState.RUNNING] == [trial.number]
    assert len(again.trials) == 2, "no trial started past the cap"
    assert "this one has no worker id" in caplog.text and "WWTUNE_WORKER_ID" in caplog.text
    assert "waiting for them" in caplog.text and "#1" in caplog.text


# --- the documented local recipe: Hydra multirun with the joblib launcher ---------------------------


def test_hydra_joblib_multirun_runs_several_workers_on_one_study(project: Path) -> None:
    # in the `test` extra; a missing launcher is a failure here, not a skip
    assert importlib.util.find_spec("hydra_plugins.hydra_joblib_launcher"), "needs hydra-joblib-launcher"
    cap = 6
    result = run_cli(
        project,
        "-m",
        "study=wtiny",
        f"study.n_trials={cap}",
        "worker_id=0,1",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    complete = check_study(journal_study(project), cap)
    assert worker_ids(complete) <= {0, 1}
