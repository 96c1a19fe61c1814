"""Torn journals, full disks and bad study names (issue 14): unit and CLI tests.

The bounded fault-injection runs (kill -9, a full tmpfs, PID reuse) are in ``test_fault_injection.py``.
"""

import errno
import logging
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from wwtune.cli import compose
from wwtune.diskio import WriteError
from wwtune.journal import JournalWriteError, repair_journal
from wwtune.record import atomic_write
from wwtune.storage import StorageError, make_storage
from wwtune.study import run_study

optuna.logging.set_verbosity(optuna.logging.WARNING)
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "0"}


def wwtune(*args: str, cwd: Path, preexec_fn=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "wwtune", *args],
        cwd=cwd,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=preexec_fn,
    )


def _journal_study(folder: Path, n: int = 3) -> Path:
    """A journal study of ``n`` complete trials; returns the journal's path."""
    storage = make_storage({"kind": "journal"}, "s", folder)
    study = optuna.create_study(storage=storage, study_name="s")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=n)
    return folder / "s" / "journal.log"


def _load(folder: Path) -> optuna.Study:
    return optuna.load_study(study_name="s", storage=make_storage({"kind": "journal"}, "s", folder))


# --------------------------------------------------------------------------------------------------------
# 1. a torn journal


def test_torn_tails_of_every_length_are_cut_back_with_a_backup_and_the_study_resumes(tmp_path, caplog):
    journal = _journal_study(tmp_path / "base")
    whole = journal.read_bytes()
    last = len(whole.rstrip(b"\n").rsplit(b"\n", 1)[-1]) + 1  # the last record with its newline
    for cut in range(1, last):  # 1 byte (just the newline) ... all of the record but its first byte
        folder = tmp_path / f"cut{cut}"
        (folder / "s").mkdir(parents=True)
        torn = folder / "s" / "journal.log"
        torn.write_bytes(whole[:-cut])
        kept = last - cut  # bytes of the torn record left in the file
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="wwtune.journal"):
            study = _load(folder)  # make_storage repairs before Optuna reads or anyone appends
        assert torn.read_bytes() == whole[:-last]
        assert f"dropped its last {kept} byte(s)" in caplog.text
        backups = list((folder / "s").glob("journal.log.torn.*"))
        assert len(backups) == 1 and backups[0].read_bytes() == whole[-last:-cut]
        # the next run appends after a complete record: every earlier trial stays readable
        study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
        trials = _load(folder).trials
        assert [t.state for t in trials[:2]] == [TrialState.COMPLETE] * 2
        assert trials[-1].state == TrialState.COMPLETE and len(trials) == 4


def test_a_missing_trailing_newline_does_not_destroy_the_study_on_the_next_run(project):
    """The issue's reproduction: `truncate -s -1 journal.log`, then re-run."""
    run_study(compose(["study=tiny", "study.n_trials=2"]))
    journal = project / "studies" / "tiny" / "journal.log"
    with open(journal, "r+b") as f:
        f.truncate(journal.stat().st_size - 1)
    study = run_study(compose(["study=tiny", "study.n_trials=3"]))
    assert [t.state for t in study.trials].count(TrialState.COMPLETE) >= 2
    storage = make_storage({"kind": "journal"}, "tiny", "studies")
    reread = optuna.load_study(study_name="tiny", storage=storage)
    assert len(reread.trials) == len(study.trials)


def test_a_broken_record_in_the_middle_is_refused_naming_its_line(tmp_path):
    journal = _journal_study(tmp_path)
    lines = journal.read_bytes().splitlines(keepends=True)
    lines[2] = lines[2][:10]  # a torn record that later appends buried in the middle
    journal.write_bytes(b"".join(lines))
    before = journal.read_bytes()
    with pytest.raises(StorageError) as err:
        make_storage({"kind": "journal"}, "s", tmp_path)
    assert "broken record at line 3" in str(err.value) and str(journal) in str(err.value)
    assert "\n" not in str(err.value)
    assert journal.read_bytes() == before  # nothing cut, nothing appended


def test_a_clean_journal_is_left_alone(tmp_path):
    journal = _journal_study(tmp_path)
    before = journal.read_bytes()
    assert repair_journal(journal) == 0
    assert journal.read_bytes() == before and not list(journal.parent.glob("*.torn.*"))


def test_report_mode_on_a_torn_journal_reads_the_study(project):
    run_study(compose(["study=tiny", "study.n_trials=2"]))
    journal = project / "studies" / "tiny" / "journal.log"
    with open(journal, "ab") as f:
        f.write(b'{"op_code":5,"worker_id":"x","trial_id":0,"par')
    run = wwtune("study=tiny", "mode=report", cwd=project)
    assert run.returncode == 0, run.stderr[-3000:]
    output = run.stdout + run.stderr  # Hydra logs to the console's stdout
    assert "JSONDecodeError" not in output and "ended in a torn record" in output


# --------------------------------------------------------------------------------------------------------
# 2. a full disk


class _FullDisk:
    """``os.write`` in wwtune.journal writing half its bytes and then failing with ENOSPC, once armed."""

    def __init__(self, monkeypatch):
        self.armed = False
        real = os.write

        def write(fd, data):
            if not self.armed:
                return real(fd, data)
            real(fd, bytes(data[: max(1, len(data) // 2)]))
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        monkeypatch.setattr("wwtune.journal._write", write)


def test_a_failed_append_is_rolled_back_and_named_in_one_line(tmp_path, monkeypatch):
    journal = _journal_study(tmp_path)
    before = journal.read_bytes()
    disk = _FullDisk(monkeypatch)
    study = _load(tmp_path)
    disk.armed = True
    with pytest.raises(JournalWriteError) as err:
        study.ask()
    message = str(err.value)
    assert "No space left on device" in message and str(journal) in message and "\n" not in message
    assert "unchanged" in message
    assert journal.read_bytes() == before  # the half-written record is gone
    disk.armed = False
    assert len(_load(tmp_path).trials) == 3


def test_disk_full_mid_study_stops_with_the_write_named_not_should_not_reach(project, monkeypatch):
    run_study(compose(["study=tiny", "study.n_trials=2"]))
    journal = project / "studies" / "tiny" / "journal.log"
    size = journal.stat().st_size
    real = os.write

    def write(fd, data):  # the disk fills during the third trial
        if os.fstat(fd).st_size > size + 2000:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd, data)

    monkeypatch.setattr("wwtune.journal._write", write)
    with pytest.raises(WriteError) as err:
        run_study(compose(["study=tiny", "study.n_trials=4"]))
    assert "journal" in str(err.value) and "No space left on device" in str(err.value)
    monkeypatch.setattr("wwtune.journal._write", real)
    study = run_study(compose(["study=tiny", "study.n_trials=4"]))  # readable, resumes
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(complete) >= 4 and complete[0].number == 0 and complete[1].number == 1


def test_atomic_write_failure_leaves_no_temp_file_and_keeps_the_old_one(tmp_path):
    target = tmp_path / "report.html"
    target.write_text("old")

    def half_then_full(tmp: Path) -> None:
        tmp.write_bytes(b"x" * 229_000)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.raises(WriteError) as err:
        atomic_write(target, half_then_full, what="the study report")
    assert str(err.value) == (
        f"could not write the study report to {str(target)!r}: No space left on device; the previous "
        "version is kept."
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"] and target.read_text() == "old"


def test_report_write_on_a_full_disk_cleans_up_and_says_so(project, monkeypatch):
    run_study(compose(["study=tiny", "study.n_trials=1", "study.report=false"]))

    def no_space(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("wwtune.diskio._fsync", no_space)
    from wwtune.cli import main

    code = main(["study=tiny", "mode=report"])
    assert code == 1
    folder = project / "studies" / "tiny"
    assert not [p.name for p in folder.iterdir() if ".tmp" in p.name]
    assert not (folder / "report.html").exists()


def _limit_file_size(limit: int):
    def preexec() -> None:  # writes past `limit` bytes fail with EFBIG, as on a full disk
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return preexec


def test_no_room_for_hydras_run_folder_is_one_line_before_hydra_starts(project):
    run = wwtune("study=tiny", "study.n_trials=1", cwd=project, preexec_fn=_limit_file_size(16 * 1024))
    assert run.returncode == 1, run.stderr[-3000:]
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("wwtune: write error: the study folder"), run.stderr
    assert "Traceback" not in run.stderr
    assert not (project / "studies" / "tiny" / "hydra").exists()
    assert not [p for p in (project / "studies" / "tiny").iterdir()]  # the probe is removed


# --------------------------------------------------------------------------------------------------------
# 7. study names checked before Hydra writes anything


@pytest.mark.parametrize("name", ["..", "../../etc/x", "my study", ".hidden", "-x", "a/b"])
def test_bad_study_names_are_refused_before_hydra_writes_anything(project, name):
    run = wwtune("study=tiny", f"study.name={name}", cwd=project)
    assert run.returncode == 2, run.stderr[-3000:]
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("wwtune: configuration error: study.name must be"), lines
    assert repr(name) in lines[0]
    # `..` would put Hydra's folder at ./hydra, `../../etc/x` two levels above the studies folder
    assert not (project / "hydra").exists() and not (project / "studies").exists()
    assert not (project.parent / "etc").exists() and not list(project.rglob("cli.log"))


def test_a_bad_study_name_in_a_study_yaml_is_refused_before_hydra_starts(project):
    (project / "conf" / "study" / "escape.yaml").write_text(
        "# @package _global_\ndefaults:\n  - override /objective: tiny\n  - override /search_space: tiny\n"
        "study:\n  name: ../outside\n  n_trials: 1\n"
    )
    run = wwtune("study=escape", cwd=project)
    assert run.returncode == 2, run.stderr[-3000:]
    assert "'../outside'" in run.stderr and not (project / "outside").exists()
    assert not (project / "studies").exists()


def test_plain_study_names_are_accepted(tmp_path):
    for name in ("quickstart", "run_a", "v1.2-final", "études"):
        make_storage({"kind": "journal"}, name, tmp_path)
        assert (tmp_path / name / "journal.log").is_file()
