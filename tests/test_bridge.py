"""The public bridge from a user's own loop to Optuna: score_model, TrialBridge (the CLI's runner uses it)."""

import math
import subprocess
import sys

import optuna
import pytest
import torch
from optuna.trial import TrialState
from study_fixtures import LAYER_KEYS
from study_tasks import fast
from torch import nn

import wwtune
from wwtune.bridge import TrialBridge
from wwtune.cli import compose
from wwtune.objective import Params
from wwtune.study import run_study

optuna.logging.set_verbosity(optuna.logging.ERROR)


def mlp(seed=0, width=128):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(64, width), nn.ReLU(), nn.Linear(width, 4))


def test_score_model_is_a_float_and_names_the_reason_when_no_layer_is_eligible():
    # issue 21: the default is the CLI's (score=balanced), which needs the final training loss
    value = wwtune.score_model(mlp(), train_loss=0.5)
    assert isinstance(value, float) and math.isfinite(value)
    layers = wwtune.analyze(mlp(), min_evals=8)
    assert value == wwtune.Score(kind="fit_band", weight=0.5)(layers, train_loss=0.5).value
    assert wwtune.score_model(mlp(), "band") == wwtune.Score()(layers).value  # α alone, by name
    by_name = wwtune.score_model(mlp(), "fit_band", train_loss=0.5)
    assert by_name == wwtune.Score(kind="fit_band", weight=5.0)(layers, train_loss=0.5).value
    with pytest.raises(ValueError, match=r"needs the model's final training loss: pass train_loss="):
        wwtune.score_model(mlp())
    with pytest.raises(ValueError, match=r"one of \[.*'fit_band'.*\] but got 'fitband'"):
        wwtune.score_model(mlp(), "fitband", train_loss=0.5)
    with pytest.raises(wwtune.NoEligibleLayers, match=r"cannot score the model: .*50"):
        wwtune.score_model(nn.Sequential(nn.Linear(20, 10), nn.ReLU(), nn.Linear(10, 4)), "band")
    assert wwtune.score_model(nn.Linear(20, 10), wwtune.Score(min_evals=8)) >= 0


def plain_objective(trial, task=fast, budget=3, **bridge_kwargs):
    """A plain Optuna objective around a wwtune-style task, the bridge as its reporter (score=band, as
    the tests' study=tiny: the library's default is the CLI's, score=balanced)."""
    bridge_kwargs.setdefault("objective", "band")
    bridge = wwtune.TrialBridge(trial, budget=budget, **bridge_kwargs)
    params = Params(
        values={"lr": trial.suggest_float("lr", 0.05, 1.0, log=True)}, budget=budget, seed=trial.number
    )
    result = task(params, bridge)
    return bridge.finish(result)


def test_plain_optuna_study_gets_the_same_record_as_the_cli(project):
    cli_study = run_study(
        compose(
            ["study=tiny", "study.n_trials=2", "objective.task=study_tasks:fast", "search_space.layers={}"]
        )
    )
    cli_trial = next(t for t in cli_study.trials if t.state == TrialState.COMPLETE)
    study = optuna.create_study()
    study.optimize(plain_objective, n_trials=2)
    trial = study.trials[0]
    assert trial.state == TrialState.COMPLETE and isinstance(trial.value, float)

    # the fingerprint of the config's score rule; α per layer (flat attrs) differ with the analysed layers
    def kept(attrs):
        return {k for k in attrs if not k.startswith("wwtune.alpha.")}

    assert kept(trial.user_attrs) == kept(cli_trial.user_attrs) - {"wwtune.score_rule"}
    assert isinstance(trial.user_attrs["wwtune.alpha.fc1"], float)  # the eligible layer, a sortable float
    # where the CLI's trial ran (host, pid, worker id): bookkeeping, a system attr out of the user attrs
    assert "wwtune.worker" in cli_trial.system_attrs and "wwtune.worker" not in cli_trial.user_attrs
    assert set(trial.user_attrs["wwtune.layers"]) == set(LAYER_KEYS)
    assert trial.user_attrs["wwtune.budget"] == 3 and trial.value == trial.user_attrs["wwtune.score"]
    assert [s for s, _ in trial.user_attrs["wwtune.losses"]] == [1, 2, 3]
    assert trial.user_attrs["wwtune.heldout"] is not None
    # the study-level readers work on it unchanged
    report = wwtune.store_trust(study, heldout_direction="maximize")
    assert report["n"] == 2 and study.user_attrs["wwtune.trust"]["verdict"] == "inconclusive"
    page = wwtune.write_report(study, project / "plain.html")
    assert "<img" in page.read_text()


def test_the_cli_trial_runner_hands_the_task_a_trial_bridge(project, monkeypatch):
    import study_tasks

    seen = []

    def spy(params, reporter):
        seen.append(type(reporter))
        return fast(params, reporter)

    monkeypatch.setattr(study_tasks, "spy", spy, raising=False)
    run_study(compose(["study=tiny", "study.n_trials=1", "objective.task=study_tasks:spy"]))
    assert len(seen) == 1 and issubclass(seen[0], TrialBridge)  # the CLI's timed bridge is a TrialBridge


def test_alpha_pruner_prunes_a_plain_trial_with_its_reason_as_optuna_trial_pruned():
    def objective(trial):
        bridge = wwtune.TrialBridge(trial, budget=4)
        model = mlp()
        for step in range(1, 5):
            bridge.report(step, model, 1.0 / step)
        return bridge.finish()

    torch.manual_seed(0)
    # the wrapped pruner prunes any score above 0.01, after AlphaPruner's warm-up: half of wwtune.budget
    pruner = wwtune.AlphaPruner(wrapped=optuna.pruners.ThresholdPruner(upper=0.01))
    study = optuna.create_study(pruner=pruner)
    study.optimize(objective, n_trials=1)  # no catch: optuna.TrialPruned is Optuna's own signal
    trial = study.trials[0]
    assert trial.state == TrialState.PRUNED
    reason = trial.user_attrs["wwtune.prune_reason"]
    assert reason["step"] == 2 and "ThresholdPruner" in reason["message"], reason
    assert [s for s, _ in trial.user_attrs["wwtune.losses"]] == [1, 2]


def test_sanity_rules_fail_the_trial_with_the_reason_and_the_study_goes_on():
    def diverging(trial):
        bridge = wwtune.TrialBridge(trial, budget=3)
        bridge.report(1, mlp(), 1.0)
        bridge.report(2, mlp(), float("nan"))

    def flat(trial):
        bridge = wwtune.TrialBridge(trial, budget=2, on_violation="fail")
        for step in (1, 2):
            bridge.report(step, mlp(), 1.0)
        return bridge.finish()

    study = optuna.create_study()
    study.optimize(diverging, n_trials=1, catch=(wwtune.TrialFailed,))
    study.optimize(flat, n_trials=1, catch=(wwtune.TrialFailed,))
    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.FAIL]
    assert study.trials[0].user_attrs["wwtune.fail_reason"] == "diverged: training loss became nan at step 2"
    assert "did not fall by sanity.min_loss_drop=0.1" in study.trials[1].user_attrs["wwtune.fail_reason"]
    # the default, as the CLI's: infeasible instead of failed: completes, marked as a constraint violation
    study.optimize(_flat_infeasible, n_trials=1)  # no catch needed
    assert study.trials[2].state == TrialState.COMPLETE
    assert study.trials[2].user_attrs["wwtune.constraint"] == [1.0]
    assert "did not fall" in study.trials[2].user_attrs["wwtune.infeasible_reason"]
    # what optuna-dashboard shows (Optuna's constraints convention: positive = violated)
    assert study.trials[2].system_attrs["constraints"] == [1.0]


def _flat_infeasible(trial):
    bridge = wwtune.TrialBridge(trial, budget=2)
    for step in (1, 2):
        bridge.report(step, mlp(), 1.0)
    return bridge.finish()


def test_no_eligible_layer_never_reports_none_to_optuna():
    def objective(trial):
        bridge = wwtune.TrialBridge(trial, budget=2)
        small = nn.Sequential(nn.Linear(20, 10))
        bridge.report(1, small, 2.0)
        bridge.report(2, small, 1.0)
        return bridge.finish()

    study = optuna.create_study(pruner=optuna.pruners.MedianPruner(n_startup_trials=0))
    study.optimize(objective, n_trials=1, catch=(wwtune.TrialFailed,))
    trial = study.trials[0]
    assert trial.state == TrialState.FAIL and trial.intermediate_values == {}
    assert "no layer has num_evals >= min_evals=50" in trial.user_attrs["wwtune.fail_reason"]


def test_bad_bridge_arguments_name_the_value():
    trial = optuna.create_study().ask()
    with pytest.raises(ValueError, match="budget must be a positive integer .* but got 0"):
        wwtune.TrialBridge(trial, budget=0)
    with pytest.raises(ValueError, match="on_violation must be one of .* but got 'warn'"):
        wwtune.TrialBridge(trial, budget=3, on_violation="warn")


def test_import_wwtune_stays_free_of_the_optional_frameworks():
    code = (
        "import sys, wwtune; wwtune.TrialBridge; wwtune.score_model; "
        "print(sorted(m for m in ('lightning', 'transformers', 'pytorch_lightning') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_wwtune_summary_stays_the_function_after_the_study_modules_load():
    code = "import wwtune.study, wwtune, torch; print(callable(wwtune.summary), wwtune.summary.__module__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["True", "wwtune.spectral.metrics"], out.stderr


# ------------------------------------------------------------------------- the library path's defaults
def test_short_runs_need_a_fall_at_every_report_instead_of_the_fixed_fraction():
    # a 3-epoch fine-tune: drops of 0.5-2% that fall at every report pass, with the note saying why
    assert wwtune.bridge.loss_violation([[1, 0.70], [2, 0.695], [3, 0.69]], 0.1) is None
    assert "short run (3 loss values < 5)" in wwtune.bridge.short_run_note([[1, 0.7]] * 3, 0.1, None)
    # a short run whose loss rose once: fails, and the reason names the short-run form
    reason = wwtune.bridge.loss_violation([[1, 0.70], [2, 0.71], [3, 0.69]], 0.1)
    assert reason.startswith("training loss did not fall by sanity.min_loss_drop=0.1")
    assert "short run" in reason
    # the reference before training counts as a loss value; at 5 values the fixed fraction applies again
    long = [[s, 1.0 - 0.01 * s] for s in range(1, 5)]
    assert "drop 4.0%" in wwtune.bridge.loss_violation(long, 0.1, reference=1.0)
    assert wwtune.bridge.short_run_note(long, 0.1, reference=1.0) is None
    assert wwtune.bridge.loss_violation(long[:3], 0.1, reference=1.0) is None  # 4 values, falling each time
    assert wwtune.bridge.short_run_note(long, None, None) is None  # rule off: no note


def test_short_run_note_is_stored_and_finish_runs_once():
    def objective(trial):
        bridge = wwtune.TrialBridge(trial, budget=3)
        for step, loss in ((1, 1.0), (2, 0.99), (3, 0.98)):
            bridge.report(step, mlp(), loss)
        first = bridge.finish(heldout=0.5)
        assert bridge.finish(heldout=0.9) == first  # a second call returns the first value, stores nothing
        return first

    study = optuna.create_study()
    study.optimize(objective, n_trials=1)
    trial = study.trials[0]
    assert trial.state == TrialState.COMPLETE and trial.user_attrs["wwtune.constraint"] == [0.0]
    assert trial.user_attrs["wwtune.heldout"] == 0.5
    assert "short run (3 loss values < 5)" in trial.user_attrs["wwtune.loss_rule"]
