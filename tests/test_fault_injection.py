"""Fault injection (issue 14): kill -9 at random points, torn journal tails, a full small file system and
PID reuse. Each case ends with a loadable study, every completed trial kept and no configuration run twice.

Bounded: at most 4 kills, none started after 60 s; a 6 MB tmpfs. Waits are on conditions (the journal's
content), polled with bounded deadlines, never fixed sleeps.
"""

import errno
import os
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from wwtune.cli import compose
from wwtune.reaping import _boot_id
from wwtune.storage import make_storage
from wwtune.study import run_study

optuna.logging.set_verbosity(optuna.logging.WARNING)
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "0"}
ARGS = ("study=tiny", "study.progress_bar=false", "study.report=false")


def load(studies: Path | str = "studies") -> optuna.Study:
    return optuna.load_study(study_name="tiny", storage=make_storage({"kind": "journal"}, "tiny", studies))


def complete(study: optuna.Study) -> dict[int, tuple]:
    return {
        t.number: (tuple(sorted(t.params.items())), t.value)
        for t in study.get_trials(deepcopy=False)
        if t.state == TrialState.COMPLETE
    }


def check(
    study: optuna.Study, kept: dict[int, tuple], n_trials: int | None = None, settled: bool = True
) -> None:
    """Loadable (the caller loaded it), every trial in ``kept`` still there unchanged, no configuration
    run twice, nothing left RUNNING once a run ended normally (``settled``), and (given) ``n_trials``
    complete."""
    now = complete(study)
    assert all(now.get(n) == v for n, v in kept.items()), "a completed trial was lost or changed"
    configs = [p for p, _ in now.values()]
    assert len(set(configs)) == len(configs), "a configuration ran twice"
    if settled:
        assert not study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    if n_trials is not None:
        assert len(now) >= n_trials


def cli(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "wwtune", *args],
        cwd=cwd,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def wait_for(condition, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.05)  # a poll interval, not a wait for an outcome


def test_kill_9_at_random_points_then_resume(project):
    journal = project / "studies" / "tiny" / "journal.log"
    rng = random.Random(14)
    kept: dict[int, tuple] = {}
    deadline = time.monotonic() + 60
    kills = 0
    while kills < 4 and time.monotonic() < deadline:
        size = journal.stat().st_size if journal.exists() else 0
        target = size + rng.randint(100, 2500)  # somewhere inside the next trial
        proc = subprocess.Popen(
            [sys.executable, "-m", "wwtune", *ARGS, "study.n_trials=8"],
            cwd=project,
            env={**ENV, "WWTUNE_TEST_SLEEP": "0.05"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for(
                lambda p=proc, t=target: (
                    p.poll() is not None or (journal.exists() and journal.stat().st_size >= t)
                ),
                120,
                "the run to write to its journal",
            )
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        kills += 1
        study = load(project / "studies")  # loadable after every kill; the killed trial is still RUNNING
        check(study, kept, settled=False)
        kept = complete(study)
    assert kills >= 1
    run = cli(*ARGS, "study.n_trials=8", cwd=project)
    assert run.returncode == 0, run.stderr[-3000:]
    check(load(project / "studies"), kept, n_trials=8)


@pytest.mark.parametrize("cut", [1, 2, 17, "all-but-one"])
def test_torn_tail_then_resume(project, cut):
    run_study(compose([*ARGS, "study.n_trials=2"]))
    journal = project / "studies" / "tiny" / "journal.log"
    data = journal.read_bytes()
    last = len(data.rstrip(b"\n").rsplit(b"\n", 1)[-1]) + 1
    n = last - 1 if cut == "all-but-one" else cut
    journal.write_bytes(data[:-n])
    kept = complete(load(project / "studies"))
    study = run_study(compose([*ARGS, "study.n_trials=4"]))
    check(load(project / "studies"), kept, n_trials=3)
    assert list((project / "studies" / "tiny").glob("journal.log.torn.*"))
    assert len(study.trials) == len(load(project / "studies").trials)


def _mount_tmpfs(where: Path, size: str) -> str | None:
    """Mount a small tmpfs at ``where``; the reason it cannot, or None."""
    if os.geteuid() != 0:
        return "needs root to mount a size-limited tmpfs (CI runs as root)"
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True
    )
    if done.returncode != 0:
        return f"mount -t tmpfs was refused: {done.stderr.decode(errors='replace').strip()}"
    return None


def _free(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def test_a_full_small_file_system(project):
    disk = project / "disk"
    reason = _mount_tmpfs(disk, "6m")
    if reason:
        pytest.skip(reason)
    try:
        args = (*ARGS, f"study.studies_dir={disk}", "study.report=true")
        run = cli(*args, "study.n_trials=2", cwd=project)
        assert run.returncode == 0, run.stderr[-3000:]
        kept = complete(load(disk))
        # fill the disk, leaving room for the pre-flight check and Hydra's run record but not a study's worth
        ballast = disk / "ballast"
        with open(ballast, "wb") as f:
            f.write(b"\0" * max(_free(disk) - 160 * 1024, 0))
        full = cli(*args, "study.n_trials=8", cwd=project)
        assert full.returncode == 1, (full.returncode, full.stderr[-3000:])
        errors = [line for line in full.stderr.splitlines() if line.startswith("wwtune:")]
        assert len(errors) == 1 and errors[0].startswith("wwtune: write error:"), full.stderr[-3000:]
        assert "No space left on device" in errors[0]
        assert "Traceback" not in full.stderr and "Should not reach" not in full.stderr
        assert not [p for p in disk.rglob("*") if ".tmp" in p.name], "a temporary file was left behind"
        study = load(disk)  # still readable
        check_after_full = complete(study)
        assert all(check_after_full.get(n) == v for n, v in kept.items())
        ballast.unlink()
        again = cli(*args, "study.n_trials=5", cwd=project)
        assert again.returncode == 0, again.stderr[-3000:]
        check(load(disk), check_after_full, n_trials=5)
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def _stale_trial(study: optuna.Study, pid: int) -> int:
    """A RUNNING trial whose worker record names ``pid`` (alive) but another process start and run."""
    trial = study.ask()
    trial.suggest_float("lr", 0.1, 0.5, log=True)
    worker = {"host": socket.gethostname(), "pid": pid, "worker_id": None, "started": 1, "boot": _boot_id()}
    trial.set_user_attr("wwtune.worker", {**worker, "token": uuid.uuid4().hex})
    return trial.number


def test_pid_reuse_does_not_keep_a_dead_workers_trial_running(project):
    run_study(compose([*ARGS, "study.n_trials=2"]))
    study = load()
    # the dead workers' PIDs now belong to live processes: PID 1 and this test process
    stale = {_stale_trial(study, 1), _stale_trial(study, os.getpid())}
    kept = complete(study)
    # 4 counted trials wanted: before the fix the run waited on the two RUNNING trials until study.timeout
    run = cli(*ARGS, "study.n_trials=4", "study.timeout=60", cwd=project, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    study = load()
    check(study, kept, n_trials=4)
    for t in study.trials:
        if t.number in stale:
            assert t.state == TrialState.FAIL
            assert t.user_attrs["wwtune.fail_reason"].startswith("interrupted: worker process")


class _FillingDisk:
    """``os.write`` in wwtune.journal, once armed, failing with ENOSPC from the next trial's creation on:
    for every record over ``over`` bytes (a nearly full disk: small ones still fit; 0: all of them)."""

    def __init__(self, monkeypatch, over: int):
        self.armed, self.full, self.over, self.failed = False, False, over, 0
        real = os.write

        def write(fd, data):
            data = bytes(data)
            if self.armed and not self.full and data.startswith(b'{"op_code":4,'):
                self.full = True  # the creation fits; the disk is full after it
                return real(fd, data)
            if self.full and len(data) > self.over:
                self.failed += 1
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return real(fd, data)

        monkeypatch.setattr("wwtune.journal._write", write)


#: ``python -c`` launcher: the CLI with the journal's writes failing (ENOSPC) from the next trial's creation
#: on for every record over 400 bytes (a nearly full disk: the per-layer table no longer fits, a reason does)
_FULL_CLI = """
import errno, os, sys
import wwtune.journal
from wwtune.cli import main
real, full = os.write, []
def write(fd, data):
    data = bytes(data)
    if not full and data.startswith(b'{"op_code":4,'):
        full.append(True)
        return real(fd, data)
    if full and len(data) > 400:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    return real(fd, data)
wwtune.journal._write = write
sys.exit(main(sys.argv[1:]))
"""


def test_disk_full_mid_trial_is_one_line_and_the_cut_trial_does_not_count(project):
    """Issue 24.5: Optuna's traceback printed before `wwtune: write error`, and the cut trial was stored
    FAIL without a reason, counted towards study.n_trials."""
    run_study(compose([*ARGS, "study.n_trials=2"]))
    kept = complete(load())
    run = subprocess.run(
        [sys.executable, "-c", _FULL_CLI, *ARGS, "study.n_trials=4"],
        cwd=project,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 1, run.stderr[-3000:]
    output = run.stdout + run.stderr  # Hydra logs to the console's stdout
    errors = [line for line in run.stderr.splitlines() if line.startswith("wwtune:")]
    assert len(errors) == 1 and errors[0].startswith("wwtune: write error:"), run.stderr[-3000:]
    assert "No space left on device" in errors[0]
    assert "Traceback" not in output and "because of the following error" not in output, output[-3000:]
    cut = load().trials[-1]
    assert cut.state == TrialState.FAIL
    assert cut.user_attrs["wwtune.fail_reason"].startswith("interrupted: the study's storage could not")
    check(run_study(compose([*ARGS, "study.n_trials=4"])), kept, n_trials=4)
    assert len(complete(load())) == 4  # the cut trial did not count: 4 complete ones were run


def test_disk_full_right_after_a_trial_is_created_leaves_no_trial_without_its_worker(
    project, monkeypatch, caplog
):
    """Issue 24.5: a trial created just before the disk filled had no worker record, so a resume warned
    "Other workers are running trials" and waited a minute on it."""
    from wwtune.diskio import WriteError

    run_study(compose([*ARGS, "study.n_trials=2"]))
    kept = complete(load())
    disk = _FillingDisk(monkeypatch, over=0)
    disk.armed = True
    with pytest.raises(WriteError):
        run_study(compose([*ARGS, "study.n_trials=4"]))
    orphan = load().trials[-1]
    assert orphan.state == TrialState.RUNNING  # nothing more could be written about it
    assert orphan.system_attrs["wwtune.worker"]["pid"] == os.getpid()  # ... but its creation names its worker
    disk.armed = disk.full = False
    with caplog.at_level("WARNING"):
        study = run_study(compose([*ARGS, "study.n_trials=4"]))
    assert "Other workers are running trials" not in caplog.text
    check(study, kept, n_trials=4)
    assert study.trials[orphan.number].state == TrialState.FAIL
    assert study.trials[orphan.number].user_attrs["wwtune.fail_reason"].startswith("interrupted: worker")
