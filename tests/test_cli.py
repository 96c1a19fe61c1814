"""End-to-end tests of `python -m wwtune` in a subprocess, from a user's project folder (tests/userproj)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml
from ctrl_c import sigint_as_in_a_terminal
from optuna.storages.journal import JournalFileBackend, JournalStorage
from optuna.trial import TrialState

optuna.logging.set_verbosity(optuna.logging.WARNING)

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "0"}


def wwtune(*args, cwd, env=None, timeout=120):
    return subprocess.run(
        [sys.executable, "-m", "wwtune", *args],
        cwd=cwd,
        env=env or ENV,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def load(folder: Path, name: str) -> optuna.Study:
    storage = JournalStorage(JournalFileBackend(str(folder / "studies" / name / "journal.log")))
    return optuna.load_study(study_name=name, storage=storage)


@pytest.mark.slow
def test_readme_user_task_study_runs_end_to_end(project):
    """The README's user task (tests/user_task_example.py) through the CLI with the user's own conf/."""
    run = wwtune("study=example", "study.n_trials=3", cwd=project)
    assert run.returncode == 0, run.stderr[-3000:]
    out = run.stdout
    assert "Study 'example': 3 trials" in out and "Returned trial #" in out
    assert "per-layer alpha" in out and "eligible: num_evals >= 50" in out
    # every layer is listed, the 4-eigenvalue output layer fc2 too (not counted: too few eigenvalues)
    table = {line.split()[0]: line.split() for line in out.splitlines() if line.startswith("    fc")}
    assert set(table) == {"fc1", "fc2"} and table["fc2"][1:3] == ["4", "no"], out
    assert "Time: training" in out
    best = yaml.safe_load((project / "studies" / "example" / "best_params.yaml").read_text())
    assert set(best["params"]) == {"lr", "width"} and set(best["layers"]) == {"fc1", "drop"}
    study = load(project, "example")
    assert len(study.trials) == 3
    assert all("wwtune.layers" in t.user_attrs for t in study.trials if t.state == TrialState.COMPLETE)
    assert "%" in run.stderr  # the progress bar
    report = project / "studies" / "example" / "report.html"
    assert f"Report: {report.relative_to(project)}" in out or f"Report: {report}" in out
    assert "<img" in report.read_text() and "example" in report.read_text()

    # mode=report rewrites the page from storage alone; mode=advise retrains and stores its verdict.
    report.unlink()
    again = wwtune("study=example", "mode=report", cwd=project)
    assert again.returncode == 0, again.stderr[-3000:]
    assert report.exists() and "Returned trial #" not in again.stdout
    more = wwtune("study=example", "study.n_trials=8", "study.report=false", cwd=project)  # resumes
    assert more.returncode == 0, more.stderr[-3000:]
    assert len(load(project, "example").get_trials(states=(TrialState.COMPLETE,))) >= 2
    advise = wwtune(
        "study=example",
        "mode=advise",
        "advise.fractions=[0.5,1.0]",
        "advise.seeds=[0,1]",
        cwd=project,
        timeout=240,
    )
    assert advise.returncode == 0, advise.stderr[-3000:]
    advice = load(project, "example").user_attrs["wwtune.advice"]
    assert advice["verdict"] in {"more data", "more tuning", "inconclusive"}
    assert f"Advice: {advice['verdict'].upper()}" in advise.stdout
    assert (project / "studies" / "example" / "advice.png").exists()
    assert "advice" in report.read_text().lower()


def test_report_and_advise_on_a_missing_study_say_what_to_run(project):
    for mode in ("report", "advise"):
        run = wwtune("study=example", "study.name=never_ran", f"mode={mode}", cwd=project)
        assert run.returncode == 2, run.stderr[-3000:]
        assert "No study named 'never_ran'" in run.stderr and f"mode={mode}" in run.stderr
        assert "Traceback" not in run.stderr


def test_advise_refuses_a_task_without_the_data_fraction_knob(project):
    assert wwtune("study=tiny", "study.n_trials=2", "study.report=false", cwd=project).returncode == 0
    run = wwtune("study=tiny", "mode=advise", cwd=project)
    assert run.returncode == 2 and "data_fraction" in run.stderr and "Traceback" not in run.stderr


def test_cfg_job_prints_composed_config(project):
    run = wwtune("study=tiny", "score=transformer", "--cfg", "job", "--resolve", cwd=project)
    assert run.returncode == 0, run.stderr
    cfg = yaml.safe_load(run.stdout)
    assert cfg["study"]["name"] == "tiny" and cfg["objective"]["task"] == "study_tasks:fast"
    assert cfg["score"]["band"] == [3.0, 4.0]
    assert cfg["sampler"]["_target_"] == "optuna.samplers.TPESampler" and cfg["sampler"]["seed"] == 0
    assert not (project / "studies").exists()


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("study=tiny", "sampler=tpf"), "did you mean sampler=tpe?"),
        (("study=quickstrat",), "did you mean study=quickstart?"),
        (("study=tiny", "sampler=nosuch"), "did you mean one of cmaes, gp, grid, nsga2, random, tpe?"),
        (("study=tiny", "score=nosuch"), "did you mean one of "),
        (("study=tiny", "storage=nosuch"), "did you mean one of journal, postgres, sqlite?"),
    ],
)
def test_unknown_group_choice_is_one_line_with_did_you_mean_and_exit_2(project, args, says):
    """Issues 23.5 / 24.8: as a misspelled key, one line and exit 2 (was Hydra's 10–19 lines, exit 1)."""
    run = wwtune(*args, cwd=project)
    assert run.returncode == 2, run.stderr
    assert run.stderr.startswith("wwtune: configuration error: ") and run.stderr.count("\n") == 1
    assert says in run.stderr and ("fit_band" in run.stderr or "score" not in args[-1])
    assert not (project / "studies").exists()


@pytest.mark.parametrize(
    "override",
    ["study.n_trials=0", "study.seed=-1", "objective.budget=0", "study.trial_timeout=1e9999"],
)
def test_a_run_refused_after_hydra_starts_leaves_no_run_folder(project, override):
    """Hydra writes .hydra/*.yaml and cli.log before wwtune sees the config: a refusal removes them."""
    run = wwtune("study=tiny", "study.name=fresh", override, cwd=project)
    assert run.returncode == 2 and run.stderr.startswith("wwtune: configuration error: "), run.stderr
    assert run.stderr.count("\n") == 1
    left = [p for p in (project / "studies").rglob("*")] if (project / "studies").exists() else []
    assert not left, left
    if override != "study.n_trials=0":
        return
    # an existing study's folder keeps its earlier runs' folders, and gains none
    (project / "studies" / "tiny" / "hydra" / "earlier").mkdir(parents=True)
    run = wwtune("study=tiny", override, cwd=project)
    assert run.returncode == 2
    assert [p.name for p in (project / "studies" / "tiny" / "hydra").iterdir()] == ["earlier"]


def test_an_integer_trial_timeout_stops_a_hung_trial_with_one_line(project):
    """Issue 24.8: ``study.trial_timeout=3`` (an int, as typed) once printed a 25-line Hydra traceback; the
    hung trial fails with its reason stored and the run ends normally."""
    run = wwtune(
        "study=tiny",
        "objective.task=study_tasks:hang",
        "study.n_trials=1",
        "study.trial_timeout=3",
        cwd=project,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Traceback" not in run.stderr and "Error executing job" not in run.stderr, run.stderr
    assert "Failed #0: timed out: ran longer than study.trial_timeout=3 s; stopped" in run.stdout


def test_misspelled_key_in_a_user_yaml_is_named(project):
    (project / "conf" / "study" / "typo.yaml").write_text(
        "# @package _global_\ndefaults:\n  - override /objective: tiny\n  - override /search_space: tiny\n"
        "study: {name: typo, n_trails: 3}\n"
    )
    run = wwtune("study=typo", cwd=project)
    assert run.returncode == 2
    assert "Unknown key(s) in 'study': 'n_trails' (did you mean 'n_trials'?)" in run.stderr
    assert not (project / "studies" / "typo" / "journal.log").exists()


def test_misspelled_key_on_the_command_line_is_named_with_the_allowed_keys(project):
    run = wwtune("study=tiny", "study.n_trails=3", cwd=project)
    assert run.returncode == 2
    assert "Unknown key(s) in 'study': 'n_trails' (did you mean 'n_trials'?)" in run.stderr
    assert "allowed: ['allow_config_change', 'artifacts', 'direction', 'n_trials'," in run.stderr
    assert "+study.n_trails=" in run.stderr
    # wwtune's message alone: not after Hydra's own error (which suggests `+study.n_trails=3` as the fix)
    assert run.stderr.startswith("wwtune: configuration error: Unknown key(s)"), run.stderr
    assert "Could not override" not in run.stderr and "HYDRA_FULL_ERROR" not in run.stderr
    run = wwtune("study=tiny", "nosuch=1", cwd=project)
    assert run.returncode == 2 and "top level: 'nosuch'" in run.stderr and "'study'" in run.stderr
    # the README's switches are plain keys (no '+' needed)
    cfg = wwtune("study=tiny", "analysis.randomize=true", "--cfg", "job", cwd=project)
    assert cfg.returncode == 0 and yaml.safe_load(cfg.stdout)["analysis"]["randomize"] is True
    bad_dir = wwtune("study=tiny", "study.studies_dir=/proc/no/such", cwd=project)
    assert bad_dir.returncode == 2 and "study.studies_dir='/proc/no/such' cannot be created" in bad_dir.stderr
    for r in (run, bad_dir):
        assert "Traceback" not in r.stderr


@pytest.mark.slow
def test_alpha_pruner_with_its_defaults_prunes_under_trained_runs_of_a_bundled_task(project):
    # learning rates 30x below the shipped range: the layers stay near their random (high-α) spectra
    low_lr = "search_space.params.lr={type: float, low: 1e-4, high: 1e-3, log: true}"
    run = wwtune(
        "study=quickstart",
        "study.name=pr",
        "pruner=alpha",
        "study.n_trials=4",
        low_lr,
        "study.report=false",
        cwd=project,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    pruned = load(project, "pr").get_trials(states=(TrialState.PRUNED,))
    assert len(pruned) >= 2, run.stdout
    for t in pruned:
        reason = t.user_attrs["wwtune.prune_reason"]
        assert reason["rule"] == "under_trained" and reason["step"] == 10  # after half the budget of 20
        assert reason["layers"] and len(reason["alpha"]) == len(reason["layers"])
        assert all(a > 6 for a in reason["alpha"]) and reason["fraction"] > 0.4
    assert f"Pruned #{pruned[0].number}: " in run.stdout and "eligible layers have α > 6" in run.stdout


def test_ctrl_c_says_how_to_resume_without_a_traceback(project):
    (project / "stop_now").write_text("")  # the task raises KeyboardInterrupt mid-training, like Ctrl-C
    run = wwtune("study=tiny", "objective.task=study_tasks:interrupt_once", "study.n_trials=3", cwd=project)
    assert run.returncode == 130, run.stderr[-3000:]
    assert "interrupted; completed trials are stored. Run the same command again to resume." in run.stderr
    assert "Traceback" not in run.stderr and "KeyboardInterrupt" not in run.stderr
    again = wwtune("study=tiny", "objective.task=study_tasks:interrupt_once", "study.n_trials=3", cwd=project)
    assert again.returncode == 0, again.stderr[-3000:]
    states = [t.state for t in load(project, "tiny").trials]
    assert states == [TrialState.FAIL] + [TrialState.COMPLETE] * 3
    # once finished, running it again says how to add trials
    done = wwtune("study=tiny", "objective.task=study_tasks:interrupt_once", "study.n_trials=3", cwd=project)
    assert done.returncode == 0, done.stderr[-3000:]
    said = done.stdout + done.stderr  # Hydra's job logging writes wwtune's log lines to stdout
    assert "already holds 3 of its study.n_trials=3 trials: nothing to run" in said, said
    assert "study.n_trials=4 adds 1" in said


def test_killed_run_resumes_without_losing_completed_trials(project):
    args = ("study=tiny", "study.n_trials=6", "study.progress_bar=false")
    mark = project / "hanging"
    # the third trial hangs after its first report, so the kill lands mid-trial however busy the machine is
    hang = {**ENV, "WWTUNE_TEST_HANG_MARK": str(mark), "WWTUNE_TEST_HANG_AT": "3"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "wwtune", *args],
        cwd=project,
        env=hang,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 300
        while not mark.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the run never reached its third trial (exit {proc.poll()})")
            time.sleep(0.1)
        trials = load(project, "tiny").trials
        assert [t.state for t in trials] == [TrialState.COMPLETE] * 2 + [TrialState.RUNNING]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    before = {
        t.number: (t.params, t.value) for t in load(project, "tiny").trials if t.state == TrialState.COMPLETE
    }
    assert len(before) >= 2
    assert proc.returncode == -signal.SIGKILL

    run = wwtune(*args, cwd=project)
    assert run.returncode == 0, run.stderr[-3000:]
    trials = load(project, "tiny").trials
    after = {t.number: (t.params, t.value) for t in trials if t.state == TrialState.COMPLETE}
    assert all(after[n] == before[n] for n in before)  # nothing completed was lost or changed
    interrupted = [
        t for t in trials if str(t.user_attrs.get("wwtune.fail_reason", "")).startswith("interrupted")
    ]
    assert len(interrupted) == 1 and interrupted[0].state == TrialState.FAIL
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    assert len(trials) - len(interrupted) == 6  # the interrupted trial does not count toward n_trials
    assert "1 failed" in run.stdout and "interrupted: worker process" in run.stdout


def test_console_script_and_wheel_layout_find_shipped_configs(tmp_path):
    """From a folder without conf/, the packaged configs are found (pkg://wwtune.conf)."""
    script = Path(sys.executable).parent / "wwtune"
    assert script.exists(), "the `wwtune` console script is installed with the package"
    run = subprocess.run(
        [str(script), "--cfg", "job", "objective.task=x:y"],
        cwd=tmp_path,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    cfg = yaml.safe_load(run.stdout)
    assert cfg["study"]["name"] == "quickstart" and cfg["storage"]["kind"] == "journal"


@pytest.mark.slow
def test_study_runs_from_a_built_wheel(tmp_path):
    """pip wheel → installed into a plain folder → `python -m wwtune` from an empty directory: the wheel's
    own configs (pkg://wwtune.conf) and bundled tasks (wwtune.objectives) are used, not the repository's."""
    repo = Path(__file__).resolve().parent.parent
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    built = subprocess.run(
        [*pip, "wheel", "--no-deps", "-w", str(tmp_path / "dist"), str(repo)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("wwtune-*.whl")
    site = tmp_path / "site"
    installed = subprocess.run(
        [*pip, "install", "--no-deps", "--target", str(site), str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert installed.returncode == 0, installed.stderr[-3000:]
    assert (site / "wwtune" / "conf" / "study" / "quickstart.yaml").exists()
    assert (site / "wwtune" / "objectives" / "digits_mlp.py").exists()
    work = tmp_path / "empty"
    work.mkdir()
    env = {**ENV, "PYTHONPATH": str(site)}
    where = subprocess.run(
        [
            sys.executable,
            "-c",
            "import wwtune, wwtune.objectives.digits_mlp as m; print(wwtune.__file__); print(m.__file__)",
        ],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert where.returncode == 0, where.stderr
    assert all(line.startswith(str(site)) for line in where.stdout.split()), where.stdout
    run = wwtune(
        "study=quickstart",
        "study.n_trials=2",
        "objective.budget=2",
        "objective.report_every=2",
        "study.report=false",
        "sanity.min_loss_drop=null",
        cwd=work,
        env=env,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Study 'quickstart': 2 trials" in run.stdout
    assert (work / "studies" / "quickstart" / "journal.log").exists()


def test_help_and_version_are_wwtunes_own(project):
    """`--help` names the modes, the analyze subcommand, examples and where configs live; not Hydra's page."""
    for flag in ("--help", "-h"):
        run = wwtune(flag, cwd=project)
        assert run.returncode == 0, run.stderr
        out = run.stdout
        assert "powered by Hydra" not in out and "== Config ==" not in out
        for needed in ("mode=optimize|report|advise", "wwtune analyze PATH", "examples:", "study=quickstart"):
            assert needed in out, needed
        assert out.count("  wwtune ") >= 3  # at least three example command lines
        assert "./conf/<group>/<name>.yaml" in out and "sampler " in out and "tpe" in out
    # with overrides too, and Hydra's own page stays reachable
    assert "examples:" in wwtune("study=tiny", "--help", cwd=project).stdout
    assert "Hydra" in wwtune("--hydra-help", cwd=project).stdout
    version = wwtune("--version", cwd=project)
    assert version.returncode == 0 and version.stdout.startswith("wwtune 0.1.0 (optuna ")
    assert not version.stdout.startswith("Hydra")


def test_a_real_ctrl_c_prints_wwtunes_line_only(project):
    """SIGINT (what Ctrl-C sends) in the middle of a trial: wwtune's resume hint, no Optuna warning."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "wwtune", "study=tiny", "objective.task=study_tasks:wait_for_ctrl_c"],
        cwd=project,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=sigint_as_in_a_terminal,  # a suite started in the background would pass SIGINT ignored
    )
    ready = project / "ready_for_ctrl_c"
    try:
        deadline = time.monotonic() + 120
        while not ready.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)  # polling a condition (the task is inside its trial), bounded by the deadline
        assert ready.exists(), "the task never got inside its trial"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:  # a failed test leaves no run behind
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err[-3000:]
    assert "interrupted; completed trials are stored. Run the same command again to resume." in err
    assert "failed with value" not in err and "[W " not in err and "Traceback" not in err, err
