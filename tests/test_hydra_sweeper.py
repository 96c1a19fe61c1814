"""`hydra/sweeper=wwtune` tunes a user's own @hydra.main app (tests/hydra_app) with Optuna, in
hydra-optuna-sweeper's search-space syntax; the plugin is found by Hydra from the (editable) install."""

import json
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from wwtune.exceptions import ConfigError
from wwtune.hydra_sweeper import sweep, sweep_space
from wwtune.storage import as_storage

APP = Path(__file__).parent / "hydra_app" / "app.py"


def test_the_sweeper_tunes_a_users_hydra_app(tmp_path):
    # params from the app's config (lr, width), one from the command line (epochs), the width 4 fails:
    # its layers are too small to score, so that trial fails with the reason and the study goes on
    out = subprocess.run(
        [
            sys.executable,
            str(APP),
            "-m",
            f"hydra.sweep.dir={tmp_path}",
            "epochs=range(1, 3)",
            "width=choice(32, 4)",
            "seed=1",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    study = optuna.load_study(study_name="app", storage=as_storage(tmp_path / "journal.log"))
    assert len(study.trials) == 4
    for trial in study.trials:
        seen = tmp_path / str(trial.number) / "seen.json"
        if trial.state == TrialState.COMPLETE:
            job = json.loads(seen.read_text())  # what the job ran with and returned
            assert job == {**trial.params, "value": trial.value}
            assert 0.01 <= job["lr"] <= 0.5 and job["epochs"] in (1, 2, 3) and job["width"] == 32
        else:
            assert trial.state == TrialState.FAIL and trial.params["width"] == 4 and not seen.exists()
            reason = trial.user_attrs["wwtune.fail_reason"]
            assert reason.startswith("the app raised ValueError: no analyzable")
    states = {t.state for t in study.trials}
    assert states == {TrialState.COMPLETE, TrialState.FAIL}
    results = (tmp_path / "optimization_results.yaml").read_text()
    assert f"best_value: {study.best_value}" in results and "best_params:" in results


def test_hydra_finds_the_plugin_without_importing_wwtune():
    code = (
        "import sys; from hydra.core.plugins import Plugins; from hydra.plugins.sweeper import Sweeper; "
        "print([p.__name__ for p in Plugins.instance().discover(Sweeper)], "
        "'wwtune' in sys.modules, 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd="/")
    assert out.returncode == 0, out.stderr
    assert "'WWTuneSweeper'" in out.stdout and out.stdout.strip().endswith("False False"), out.stdout


def test_sweep_space_reads_the_sweepers_syntax():
    keys, space, fixed = sweep_space(
        {"lr": "tag(log, interval(1e-3, 1e-1))", "+opt": "choice(sgd, adam)"},
        ["epochs=3", "lr=interval(0.1, 0.2)", "+depth=1,2,3", "model.width=range(32, 128, step=32)"],
    )
    assert fixed == ["epochs=3"]
    assert keys == {"lr": "lr", "opt": "+opt", "depth": "+depth", "model.width": "model.width"}
    assert space["lr"] == "interval(0.1, 0.2)"  # the command line replaces the config's entry
    assert space["depth"] == "1,2,3" and space["model.width"] == "range(32, 128, step=32)"


class _Config:
    class hydra:  # noqa: N801 - the composed config's hydra node, as the sweeper reads it
        class sweep:  # noqa: N801
            dir = "unused"

        class job:  # noqa: N801
            name = "app"


@pytest.mark.parametrize(
    "settings,match",
    [
        ({"sampler": "bayes", "params": {"x": "interval(0, 1)"}}, r"sampler must be one of .* got 'bayes'"),
        ({"direction": "down", "params": {"x": "interval(0, 1)"}}, r"direction must be .* but got 'down'"),
        ({"params": {}}, r"nothing to search: set hydra.sweeper.params"),
        ({"n_trials": 0, "params": {"x": "interval(0, 1)"}}, r"n_trials and n_jobs must be >= 1 but got 0"),
    ],
)
def test_bad_sweeper_settings_are_one_line(settings, match, tmp_path):
    _Config.hydra.sweep.dir = str(tmp_path)
    with pytest.raises(ConfigError, match=match):
        sweep(settings, _Config, launcher=None, arguments=[])


# --------------------------------------------------------- wwtune's own CLI: search spaces and -m grids
OWN_SPACE = """# @package _global_
defaults:
  - override /search_space: tiny
study:
  name: mine
search_space:
  params:
    lr: {type: float, low: 0.01, high: 0.1}
    momentum: "interval(0.5, 0.9)"
"""


def test_a_studys_own_search_space_replaces_the_groups_unless_it_extends(project):
    from wwtune.cli import compose

    (project / "conf" / "study" / "mine.yaml").write_text(OWN_SPACE)
    space = compose(["study=mine"])["search_space"]
    # the study's lr replaces the group's whole entry (its log: true is not merged in)
    assert space["params"] == {
        "lr": {"type": "float", "low": 0.01, "high": 0.1},
        "momentum": "interval(0.5, 0.9)",
    }
    assert set(space["layers"]) == {"fc1"}  # the study gave no layers: the group's stay
    (project / "conf" / "study" / "mine.yaml").write_text(OWN_SPACE.replace("lr:", "wd:"))
    assert set(compose(["study=mine"])["search_space"]["params"]) == {"wd", "momentum"}  # not the group's lr
    extended = compose(["study=mine", "++search_space.extend=true"])["search_space"]
    assert set(extended["params"]) == {"lr", "wd", "momentum"}
    # a command-line override edits the space key by key, as any Hydra override
    edited = compose(["study=mine", "search_space.params.lr='interval(0.1, 0.2)'"])["search_space"]
    assert edited["params"]["lr"] == "interval(0.1, 0.2)" and set(edited["params"]) == {
        "lr",
        "wd",
        "momentum",
    }
    # without a space of its own, a study searches the group's, edited by the command line
    tiny = compose(["study=tiny", "search_space.params.lr='choice(0.1, 0.3)'"])["search_space"]
    assert tiny["params"] == {"lr": "choice(0.1, 0.3)"} and set(tiny["layers"]) == {"fc1"}


def test_a_multirun_grid_gives_each_job_its_own_study(project):
    from wwtune.cli import main

    code = main(["-m", "study=tiny", "study.n_trials=1", "study.report=false", "study.seed=3,4"])
    assert code == 0
    names = sorted(p.name for p in (project / "studies").iterdir())
    assert names == ["tiny.seed-3", "tiny.seed-4"]
    for name in names:
        study = optuna.load_study(study_name=name, storage=as_storage(project / "studies" / name))
        assert len(study.trials) == 1


def testswept_keys_name_the_grid_but_not_workers_or_named_studies():
    from wwtune.cli import swept_keys

    assert swept_keys(["-m", "objective.fixed.hidden=128,256", "study=tiny"]) == ["objective.fixed.hidden"]
    assert swept_keys(["-m", "worker_id=0,1", "hydra/launcher=joblib"]) == []
    assert swept_keys(["-m", "study.seed=0,1", "study.name=s${study.seed}"]) == []
    assert swept_keys(["study.seed=0"]) == []


def test_wwtunes_own_cli_names_what_the_sweeper_is_for():
    from wwtune.sweeper_migration import check_overrides

    message = check_overrides(["study=quickstart", "hydra/sweeper=wwtune"])
    assert message.startswith("hydra/sweeper=wwtune tunes your own @hydra.main app")
