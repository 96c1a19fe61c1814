"""In-process tests of the study runner: tiny tasks (tests/study_tasks.py), configs in tests/userproj."""

import importlib.util
import json
import math

import numpy as np
import optuna
import pytest
import torch
import yaml
from optuna.trial import TrialState
from study_fixtures import LAYER_KEYS

from wwtune.cli import compose
from wwtune.config import validate_config
from wwtune.exceptions import ConfigError
from wwtune.outcome import summary_text
from wwtune.pick import picked_trial
from wwtune.ranking import best_trial
from wwtune.study import run_study

optuna.logging.set_verbosity(optuna.logging.WARNING)


def cfg(*overrides):
    return compose(["study=tiny", *overrides])


def by_state(study, state):
    return [t for t in study.get_trials() if t.state == state]


def test_trial_stores_the_contract_attrs(project):
    study = run_study(cfg("study.n_trials=2"))
    assert len(by_state(study, TrialState.COMPLETE)) == 2
    t = study.trials[0]
    attrs = t.user_attrs
    layers = attrs["wwtune.layers"]
    for key in LAYER_KEYS:
        assert key in layers
    assert layers["step"] == 3 and layers["name"] == ["fc1", "fc2"]
    assert layers["eligible"] == [True, False]  # fc2 (4 eigenvalues) is listed, never counted
    assert attrs["wwtune.budget"] == 3
    assert [s for s, _ in attrs["wwtune.losses"]] == [1, 2, 3]
    assert attrs["wwtune.score"] == pytest.approx(t.value)
    assert attrs["wwtune.heldout"] == pytest.approx(-attrs["wwtune.losses"][-1][1], rel=1e-6)
    assert attrs["wwtune.time_train_s"] > 0 and attrs["wwtune.time_analysis_s"] > 0
    assert sorted(t.intermediate_values) == [1, 2, 3]
    assert t.intermediate_values[3] == pytest.approx(t.value)
    json.dumps(attrs, allow_nan=False)  # storable anywhere
    # the value is the band distance recomputed from the stored α
    alpha = layers["alpha"][0]
    assert t.value == pytest.approx(abs(alpha - 2.0) * 1.01)
    sattrs = study.user_attrs
    assert sattrs["wwtune.band"] == [2.0, 2.0] and sattrs["wwtune.heldout_direction"] == "maximize"
    assert sattrs["wwtune.config"]["study"]["name"] == "tiny"


def test_per_layer_lr_mult_reaches_the_optimizer(project):
    study = run_study(cfg("study.n_trials=2"))
    for t in study.trials:
        groups = t.user_attrs["wwtune.result"]["group_lrs"]
        assert groups["fc1"] == pytest.approx(t.params["lr"] * t.params["fc1/lr_mult"])
        assert groups["default"] == pytest.approx(t.params["lr"])


def test_best_params_yaml_round_trips(project):
    c = cfg("study.n_trials=3")
    study = run_study(c)
    doc = yaml.safe_load((project / "studies" / "tiny" / "best_params.yaml").read_text())
    best = picked_trial(study)[0]  # the returned trial: the pick rule's (issue 21)
    assert doc["trial"] == best.number and doc["score"] == pytest.approx(best.value)
    assert doc["params"] == {"lr": best.params["lr"]}
    assert doc["layers"] == {"fc1": {"lr_mult": best.params["fc1/lr_mult"]}}
    text = summary_text(study, c)
    assert f"Returned trial #{best.number} (the pick)" in text and "eligible: num_evals >= 50" in text
    assert "fc1" in text and "spectral analysis" in text
    # the band in words (not "band [2, 2]"), and what a step is
    assert "target α = 2" in text and "band [2, 2]" not in text and "a step is an epoch" in text
    assert "score = uniform-weighted distance of alpha to 2 over eligible layers" in text
    # the dashboard names the objective after the score, not "Objective 0"
    assert study.metric_names == ["alpha score (lower is better)"]


def test_seeded_single_worker_study_is_reproducible(project):
    a = run_study(cfg("study.n_trials=4", "study.name=run_a"))
    b = run_study(cfg("study.n_trials=4", "study.name=run_b"))
    assert [t.params for t in a.trials] == [t.params for t in b.trials]
    assert [t.value for t in a.trials] == [t.value for t in b.trials]
    c = run_study(cfg("study.n_trials=4", "study.name=run_c", "study.seed=1"))
    assert [t.params for t in c.trials] != [t.params for t in a.trials]


def test_rerun_resumes_and_counts_toward_total(project):
    first = run_study(cfg("study.n_trials=2"))
    params = [t.params for t in first.trials]
    again = run_study(cfg("study.n_trials=3"))
    assert len(again.trials) == 3 and [t.params for t in again.trials[:2]] == params
    assert len(run_study(cfg("study.n_trials=3")).trials) == 3  # nothing left to do


def test_ctrl_c_stops_the_study_and_rerun_resumes(project):
    c = cfg("objective.task=study_tasks:interrupt_once", "study.n_trials=3")
    run_study(cfg("objective.task=study_tasks:interrupt_once", "study.n_trials=1"))
    (project / "stop_now").write_text("")
    with pytest.raises(KeyboardInterrupt):
        run_study(c)
    study = run_study(c)
    states = [t.state for t in study.trials]
    assert states == [TrialState.COMPLETE, TrialState.FAIL, TrialState.COMPLETE, TrialState.COMPLETE]
    assert study.trials[1].user_attrs["wwtune.fail_reason"].startswith("interrupted: stopped by the user")


def test_crashing_task_fails_only_its_trials(project):
    study = run_study(
        cfg(
            "objective.task=study_tasks:crash_some",
            "search_space.params.lr='choice(0.1,0.3)'",
            "study.n_trials=6",
            "sampler=random",
        )
    )
    assert len(study.trials) == 6
    failed = by_state(study, TrialState.FAIL)
    assert failed and all(t.params["lr"] == 0.3 for t in failed)
    assert all(
        t.user_attrs["wwtune.fail_reason"].startswith("task raised RuntimeError: boom") for t in failed
    )
    assert len(by_state(study, TrialState.COMPLETE)) == 6 - len(failed) > 0


@pytest.mark.parametrize(
    "task,reason",
    [
        ("nan_loss", "diverged: training loss became nan at step 1"),
        ("nan_weights", "diverged: weights of 'fc1.weight' became NaN/Inf at step 1"),
        ("flat_loss", "training loss did not fall by sanity.min_loss_drop=0.1"),
        ("never_reports", "never called reporter.report"),
        ("reports_only_step_0", "called reporter.report only at step 0"),
        ("not_a_dict", "must return a dict or None but returned int"),
    ],
)
def test_sanity_failures_store_their_reason(project, task, reason):
    study = run_study(
        cfg(
            f"objective.task=study_tasks:{task}",
            "study.n_trials=2",
            "objective.heldout=null",
            "sanity.on_violation=fail",
        )
    )
    assert [t.state for t in study.trials] == [TrialState.FAIL] * 2
    assert all(reason in t.user_attrs["wwtune.fail_reason"] for t in study.trials)
    assert best_trial(study) is None
    assert not (project / "studies" / "tiny" / "best_params.yaml").exists()


def test_infeasible_mode_keeps_trial_but_never_best(project):
    # the default: violations are Optuna constraint violations (samplers learn from them), not FAIL
    study = run_study(
        cfg("objective.task=study_tasks:flat_loss", "study.n_trials=2", "objective.heldout=null")
    )
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2
    assert all(t.user_attrs["wwtune.constraint"] == [1.0] for t in study.trials)
    assert "did not fall" in study.trials[0].user_attrs["wwtune.infeasible_reason"]
    assert best_trial(study) is None
    # recorded as an Optuna constraint, so samplers avoid it and Optuna's best_trial skips it
    assert study.trials[0].system_attrs.get("constraints:loss_drop") == 1.0
    with pytest.raises(ValueError, match="No feasible trials"):
        _ = study.best_trial


@pytest.mark.parametrize("task", ["nan_loss", "nan_weights"])
def test_diverged_trials_are_visible_to_the_sampler_by_default(project, task):
    """A diverged run is COMPLETE and infeasible (value +inf), not FAIL: Optuna's samplers skip FAIL
    trials, so an α-driven TPE study kept sampling the failing region."""
    study = run_study(cfg(f"objective.task=study_tasks:{task}", "study.n_trials=2", "objective.heldout=null"))
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2
    for t in study.trials:
        assert t.value == math.inf and t.user_attrs["wwtune.constraint"] == [1.0]
        assert t.user_attrs["wwtune.infeasible_reason"].startswith("diverged:")
        assert t.system_attrs.get("constraints:loss_drop") == 1.0
    assert best_trial(study) is None


def test_sanity_penalty_values_a_diverged_run(project):
    study = run_study(
        cfg(
            "objective.task=study_tasks:nan_loss",
            "study.n_trials=1",
            "objective.heldout=null",
            "sanity.penalty=99",
        )
    )
    assert study.trials[0].value == 99.0


def test_heldout_score_optimises_heldout_and_still_stores_alpha(project):
    study = run_study(cfg("score=heldout", "study.n_trials=2"))
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE
    for t in study.trials:
        assert t.value == pytest.approx(t.user_attrs["wwtune.heldout"])
        assert math.isfinite(t.user_attrs["wwtune.score"]) and t.intermediate_values == {}


@pytest.mark.parametrize("sampler", ["random", "cmaes", "gp", "tpe"])
def test_every_shipped_sampler_runs(project, sampler):
    overrides = [f"sampler={sampler}", "study.n_trials=2"]
    if sampler != "random":
        overrides.append("sampler.n_startup_trials=1")  # the model-based step runs on trial 2
    if sampler == "cmaes" and importlib.util.find_spec("cmaes") is None:
        with pytest.raises(ConfigError, match="CmaEsSampler needs the 'cmaes' package"):
            run_study(cfg(*overrides))
        return
    study = run_study(cfg(*overrides))
    assert len(by_state(study, TrialState.COMPLETE)) == 2


def test_grid_sampler_uses_search_space_grid(project):
    study = run_study(
        cfg(
            "sampler=grid",
            "study.n_trials=4",
            "search_space.params.lr='choice(0.1,0.2)'",
            "~search_space.layers.fc1",
            "+search_space.layers.fc1.lr_mult='range(1,3,1)'",  # grid 1, 2 (the sweeper's end point)
        )
    )
    assert sorted((t.params["lr"], t.params["fc1/lr_mult"]) for t in study.trials) == [
        (0.1, 1),
        (0.1, 2),
        (0.2, 1),
        (0.2, 2),
    ]
    with pytest.raises(ConfigError, match="grid sampler needs discrete values but 'lr'"):
        run_study(cfg("sampler=grid", "study.name=g2"))


def test_sqlite_storage_and_median_pruner(project):
    study = run_study(
        cfg(
            "storage=sqlite",
            "pruner=median",
            "pruner.n_startup_trials=1",
            "pruner.n_warmup_steps=1",
            "study.n_trials=4",
        )
    )
    assert (project / "studies" / "tiny" / "study.db").exists()
    assert by_state(study, TrialState.PRUNED), "the median rule pruned nothing"
    for t in by_state(study, TrialState.PRUNED):
        reason = t.user_attrs["wwtune.prune_reason"]
        assert "MedianPruner pruned the trial at step" in reason["message"]


def test_alpha_pruner_reason_is_stored(project):
    study = run_study(
        cfg(
            "pruner=alpha",
            "pruner.rules=[under_trained]",
            "pruner.under_trained_alpha=0.5",
            "pruner.under_trained_fraction=0.0",
            "pruner.n_warmup_steps=1",
            "study.n_trials=2",
        )
    )
    assert [t.state for t in study.trials] == [TrialState.PRUNED] * 2
    for t in study.trials:
        reason = t.user_attrs["wwtune.prune_reason"]
        assert reason["rule"] == "under_trained" and reason["step"] == 1 and reason["message"]
        assert [s for s, _ in t.user_attrs["wwtune.losses"]] == [1]  # stored for the divergence rule
    assert "Pruned #0:" in summary_text(study, cfg())


@pytest.mark.parametrize(
    "overrides,match",
    [
        (["+study.n_trails=3"], r"'n_trails' \(did you mean 'n_trials'\?\)"),
        (["+score.min_eval=3"], r"'min_eval' \(did you mean 'min_evals_counted'\?\)"),
        (["+sampler.n_startup_trails=3"], r"'n_startup_trails' \(did you mean 'n_startup_trials'\?\)"),
        (["+analysis.min_eval=3"], "'min_eval'"),
        (["+sanity.min_loss=3"], "'min_loss'"),
        (["+objectve.budget=3"], "top level: 'objectve'"),
        (["score.weights=size"], r"score: weights must be one of \['uniform', 'num_evals'\] but got 'size'"),
        (["score.band=[4,3]"], "lower edge cannot exceed"),
        (["study.n_trials=0"], "study.n_trials must be a positive integer but got 0"),
        (["sanity.on_violation=ignore"], r"on_violation must be one of \['fail', 'infeasible'\]"),
        (["objective.task=no_such_module:train"], "cannot import module 'no_such_module'"),
        (["objective.task=study_tasks:nope"], "has no function 'nope'"),
        (["objective.task=study_tasks"], "must be 'module:function'"),
        (["score=heldout", "objective.heldout=null"], "needs objective.heldout"),
        (["study.direction=maximize"], "contradicts score kind 'band_distance'"),
        (["storage.kind=mongodb"], "storage.kind must be one of"),
        (["search_space.params.lr='tag(lgo, interval(0.1, 1))'"], r"unknown tag\(s\) \['lgo'\]"),
        (
            ["pruner=alpha", "pruner.warmup_fraction=2"],
            "pruner: cannot build wwtune.pruners.AlphaPruner: "
            r"warmup_fraction must be in \[0, 1\] but got 2",
        ),
        (["mode=train"], r"mode must be one of \['optimize', 'advise', 'report'\] but got 'train'"),
        # wrong kinds of value: named before any trial runs
        (["sampler.n_startup_trials=abc"], "sampler.n_startup_trials must be an integer but got 'abc'"),
        (["sampler.multivariate=maybe"], "sampler.multivariate must be true or false but got 'maybe'"),
        (["sampler.seed=abc"], "sampler.seed must be an integer but got 'abc'"),
        (["score.band=abc"], r"band must be two finite numbers \[lo, hi\] but got 'abc'"),
        (["score.min_evals_counted=abc"], "score.min_evals_counted must be a positive integer but got 'abc'"),
        (["pruner=alpha", "pruner.under_trained_alpha=abc"], "pruner.under_trained_alpha must be a number"),
        (["pruner=median", "pruner.n_warmup_steps=abc"], "pruner.n_warmup_steps must be an integer"),
        (["study.progress_bar=maybe"], "study.progress_bar must be true or false but got 'maybe'"),
        (["sanity.check_weights=maybe"], "sanity.check_weights must be true or false"),
        (["analysis.min_evals_analysed=abc"], "analysis.min_evals_analysed must be an integer but got 'abc'"),
        (["advise.z=0"], r"advise.z must be in \(0, inf\) but got 0"),
        (["advise.fractions=[0.5,2.0]"], r"advise.fractions\[1\] must be in \(0, 1\] but got 2.0"),
        (["analysis.randomize=maybe"], "analysis.randomize must be true or false"),
        # storage URLs that cannot work: named, no SQLAlchemy traceback
        (
            ["storage=sqlite", "storage.url=/path/x.db"],
            "storage.url must be a database URL such as sqlite:///",
        ),
        (["storage=sqlite", "storage.url=sqlite:////nonexistent/x.db"], "cannot open storage.url"),
        (["storage=sqlite", "storage.url=mysql://me@h/db"], "needs a database driver that is not installed"),
    ],
)
def test_bad_config_fails_fast_naming_the_key(project, overrides, match):
    with pytest.raises(ConfigError, match=match):
        run_study(cfg(*overrides))
    assert not (project / "studies").exists()  # nothing stored, nothing trained: it failed before the storage


def test_validate_accepts_the_shipped_quickstart_shape(project):
    validate_config(cfg())


def test_searched_value_overrides_fixed_default(project):
    study = run_study(cfg("+objective.fixed.lr=123.0", "study.n_trials=1"))
    t = study.trials[0]
    assert t.user_attrs["wwtune.result"]["group_lrs"]["default"] == pytest.approx(t.params["lr"])


def test_each_trial_keeps_its_final_spectra_and_the_report_draws_the_best_ones(project):
    from wwtune.ranking import best_trial, best_trial_spectra
    from wwtune.report import render_report
    from wwtune.spectral import analyze
    from wwtune.study_folder import read_trial_spectra

    c = cfg("study.n_trials=2")
    study = run_study(c)
    folder = project / "studies" / "tiny" / "spectra"
    assert sorted(p.name for p in folder.iterdir()) == ["trial0.npz", "trial1.npz"]
    best = best_trial(study)
    table = best_trial_spectra(study, c["study"])
    stored = best.user_attrs["wwtune.layers"]
    assert list(table["name"]) == stored["name"]
    assert np.allclose(table["alpha"].to_numpy(float), np.array(stored["alpha"], float), equal_nan=True)
    assert [len(e) for e in table["evals"]] == stored["num_evals"]
    page = render_report(study, spectra=table)
    assert all(f"log-log spectrum of {name}" in page for name in stored["name"])
    # the stored eigenvalues are the analysis' own (float32 on disk)
    model = torch.nn.Sequential(torch.nn.Linear(40, 30), torch.nn.ReLU(), torch.nn.Linear(30, 20))
    direct = analyze(model, keep_evals=True, min_evals=1)
    from wwtune.study_folder import write_trial_spectra

    back = read_trial_spectra(write_trial_spectra(project / "x.npz", direct))
    for a, b in zip(direct["evals"], back["evals"], strict=True):
        assert np.allclose(a, b, rtol=1e-6)
    assert list(back.columns) == list(direct.columns)
    for column in direct.columns.drop("evals"):
        mine, theirs = list(direct[column]), list(back[column])
        if all(isinstance(v, (int, float, np.number)) and not isinstance(v, bool) for v in mine):
            assert np.allclose(np.array(theirs, float), np.array(mine, float), equal_nan=True), column
        else:
            assert theirs == mine, column
    with pytest.raises(ValueError, match="keep_evals=True"):
        write_trial_spectra(project / "y.npz", direct.drop(columns="evals"))
    assert read_trial_spectra(project / "missing.npz") is None
    # off: no folder
    run_study(cfg("study.n_trials=1", "study.name=nospectra", "study.spectra=false"))
    assert not (project / "studies" / "nospectra" / "spectra").exists()


def test_artifacts_switch_attaches_each_trials_layer_figure(project):
    from optuna.artifacts import FileSystemArtifactStore, download_artifact, get_all_artifact_meta

    from wwtune.report.artifacts import attach_layer_figure

    study = run_study(cfg("study.n_trials=2", "study.artifacts=true"), draw_trial=attach_layer_figure)
    store = FileSystemArtifactStore(str(project / "studies" / "tiny" / "artifacts"))
    finished = [t for t in study.trials if "wwtune.layers" in t.user_attrs]
    assert finished
    for t in finished:
        metas = get_all_artifact_meta(t, storage=study._storage)
        assert [m.filename for m in metas] == [
            f"trial{t.number}_layer_alphas_step{t.user_attrs['wwtune.layers']['step']}.png"
        ]
        out = project / f"a{t.number}.png"
        download_artifact(artifact_store=store, file_path=str(out), artifact_id=metas[0].artifact_id)
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 2000
    # off by default: no folder, no artifacts
    plain = run_study(cfg("study.n_trials=1", "study.name=plain"), draw_trial=attach_layer_figure)
    assert not (project / "studies" / "plain" / "artifacts").exists()
    assert get_all_artifact_meta(plain.trials[0], storage=plain._storage) == []


def test_the_trial_runner_draws_only_through_the_callback_it_is_given(project, caplog):
    """The running-studies floor draws nothing: study.artifacts calls the showing layer's draw_trial."""
    calls = []

    def draw(trial, table, band, folder):
        calls.append((trial.number, list(table["name"]), tuple(band), folder.name))

    run_study(cfg("study.n_trials=2", "study.artifacts=true", "study.name=drawn"), draw_trial=draw)
    assert [c[0] for c in calls] == [0, 1] and all(c[1] and c[3] == "artifacts" for c in calls)
    # no callback: nothing drawn, and the run says how to get the figures
    with caplog.at_level("WARNING", logger="wwtune.study"):
        run_study(cfg("study.n_trials=1", "study.artifacts=true", "study.name=undrawn"))
    assert not (project / "studies" / "undrawn" / "artifacts").exists()
    assert "draw_trial=wwtune.report.artifacts.attach_layer_figure" in caplog.text
