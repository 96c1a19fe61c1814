"""AlphaPruner: every rule on synthetic trials with known per-layer diagnostics, in a real in-memory study."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import optuna
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import wwtune.pruners
from wwtune import record
from wwtune.pruners import RULES, AlphaPruner

optuna.logging.set_verbosity(optuna.logging.WARNING)

REPO = Path(__file__).resolve().parents[1]


def layers(
    alpha,
    *,
    step=10,
    eligible=None,
    status=None,
    num_evals=None,
    lambda_max=None,
    log_norm=None,
    rank_loss=None,
    num_traps=None,
):
    """A ``wwtune.layers`` attr with one entry per α (defaults: healthy, eligible, fitted layers)."""
    n = len(alpha)
    return {
        "step": step,
        "name": [f"fc{i + 1}" for i in range(n)],
        "alpha": list(alpha),
        "num_evals": num_evals or [100] * n,
        "eligible": eligible or [True] * n,
        "warning": [""] * n,
        "status": status or ["success"] * n,
        "lambda_max": lambda_max or [10.0] * n,
        "log_norm": log_norm or [2.0] * n,
        "rank_loss": rank_loss or [0] * n,
        "num_traps": num_traps,
    }


def run(pruner, steps, *, budget=20, study=None):
    """Play ``steps`` = [(step, layers_attr or None, loss or None), ...] on a new trial of a real study.

    Like wwtune's reporter: attrs are written before ``should_prune``; stops at the first prune.
    Returns (step pruned at or None, reason_for(trial), trial).
    """
    study = study or optuna.create_study(pruner=pruner)
    trial = study.ask()
    trial.set_user_attr("wwtune.budget", budget)
    losses = []
    for step, attr, loss in steps:
        if loss is not None:
            losses.append([step, loss])
            trial.set_user_attr("wwtune.losses", losses)
        if attr is not None:
            trial.set_user_attr("wwtune.layers", attr)
        trial.report(0.5, step)
        if trial.should_prune():
            return step, pruner.reason_for(trial), trial
    assert pruner.reason_for(trial) is None
    return None, None, trial


def constant(attr_fn, budget=20):
    return [(s, attr_fn(s), 0.5) for s in range(1, budget + 1)]


def _step_pruned_when_worse_than_the_others(pruner):
    """Three trials scored 0.1, then one with healthy layers scored 3.0 at every step: where is it pruned?"""
    study = optuna.create_study(pruner=pruner)
    for _ in range(3):
        t = study.ask()
        for s in range(1, 21):
            t.report(0.1, s)
        study.tell(t, 0.1)
    trial = study.ask()
    trial.set_user_attr("wwtune.budget", 20)
    for s in range(1, 21):
        trial.set_user_attr("wwtune.layers", layers([2.5, 3.0], step=s))
        trial.report(3.0, s)
        if trial.should_prune():
            return s, pruner.reason_for(trial)
    return None, None


# --- arguments --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_warmup_steps": -1}, "Number of warmup steps cannot be negative but got -1."),
        ({"warmup_fraction": 1.5}, "warmup_fraction must be in [0, 1] but got 1.5."),
        ({"under_trained_alpha": 0.0}, "under_trained_alpha must be positive but got 0.0."),
        ({"under_trained_fraction": 1.0}, "under_trained_fraction must be in [0, 1) but got 1.0."),
        ({"max_traps": -2}, "max_traps cannot be negative but got -2."),
        ({"max_rank_loss_fraction": 0.0}, "max_rank_loss_fraction must be in (0, 1) but got 0.0."),
        ({"diverged_alpha": -1.0}, "diverged_alpha must be positive but got -1.0."),
        ({"norm_growth": 1.0}, "norm_growth must be greater than 1 but got 1.0."),
        ({"rules": ["under_trained", "undertrained"]}, "Unknown pruning rule(s) ['undertrained']"),
    ],
)
def test_invalid_arguments_are_rejected_with_the_value(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        AlphaPruner(**kwargs)


def test_wrapped_must_be_a_pruner_and_rules_not_a_string():
    with pytest.raises(TypeError, match="wrapped must be an optuna.pruners.BasePruner"):
        AlphaPruner(wrapped="median")
    with pytest.raises(TypeError, match="rules must be a list"):
        AlphaPruner(rules="trap")


def test_malformed_layers_attr_is_reported():
    bad = layers([7.0, 7.0])
    bad["alpha"] = [7.0]
    with pytest.raises(ValueError, match="Column 'alpha' .* has 1 entries but 'name' has 2"):
        run(AlphaPruner(), [(10, bad, None)])


# --- under-trained ----------------------------------------------------------------------------------


def test_under_trained_majority_prunes_after_warmup_and_records_layers():
    step, reason, _ = run(AlphaPruner(), constant(lambda s: layers([7.5, 9.0, 3.0], step=s)))
    assert step == 10  # warm-up: half of the budget of 20
    assert reason["rule"] == "under_trained"
    assert reason["layers"] == ["fc1", "fc2"] and reason["alpha"] == [7.5, 9.0]
    assert reason["fraction"] == pytest.approx(2 / 3) and reason["threshold"] == 0.4
    assert "fc1 (α=7.5)" in reason["message"] and "2 of 3" in reason["message"]
    json.dumps(reason, allow_nan=False)  # storable as a user attr


def test_under_trained_fraction_must_be_exceeded():
    # 2 of 5 = 0.4 is not more than the default 0.4; 2 of 4 = 0.5 is; 1 of 2 is more than 0.4 but not 0.5.
    assert run(AlphaPruner(), constant(lambda s: layers([7.5, 2.5, 9.0, 3.0, 3.0], step=s)))[0] is None
    assert run(AlphaPruner(), constant(lambda s: layers([7.5, 2.5, 9.0, 3.0], step=s)))[0] == 10
    assert run(AlphaPruner(), constant(lambda s: layers([7.5, 2.5], step=s)))[0] == 10
    strict_majority = AlphaPruner(under_trained_fraction=0.5)
    assert run(strict_majority, constant(lambda s: layers([7.5, 2.5], step=s)))[0] is None


def test_under_trained_ignores_ineligible_layers():
    attr = lambda s: layers([7.5, 9.0, 3.0], step=s, eligible=[False, False, True])  # noqa: E731
    assert run(AlphaPruner(), constant(attr))[0] is None


def test_failed_fits_are_left_out_of_the_under_trained_fraction():
    attr = lambda s: layers(  # noqa: E731
        [7.5, -1.0, -1.0], step=s, status=["success", "failed", "failed"]
    )
    step, reason, _ = run(AlphaPruner(), constant(attr))
    assert step == 10 and reason["fraction"] == 1.0 and reason["layers"] == ["fc1"]
    # All fits failed: nothing to judge, no prune.
    attr = lambda s: layers([-1.0, -1.0], step=s, status=["failed", "failed"])  # noqa: E731
    assert run(AlphaPruner(), constant(attr))[0] is None


@pytest.mark.parametrize(
    ("kwargs", "budget", "expected"),
    [
        ({}, 20, 10),
        ({}, 7, 4),
        ({"warmup_fraction": 0.25}, 20, 5),
        ({"n_warmup_steps": 3}, 20, 3),
        ({"warmup_fraction": 0.0}, 20, 1),
    ],
)
def test_warmup_defaults_to_half_the_budget(kwargs, budget, expected):
    steps = constant(lambda s: layers([8.0, 8.0], step=s), budget=budget)
    assert run(AlphaPruner(**kwargs), steps, budget=budget)[0] == expected


def test_missing_budget_without_explicit_warmup_is_a_clear_error():
    study = optuna.create_study(pruner=AlphaPruner())
    trial = study.ask()
    trial.set_user_attr("wwtune.layers", layers([8.0]))
    trial.report(1.0, 5)
    with pytest.raises(ValueError, match="no 'wwtune.budget' user attr"):
        trial.should_prune()


def test_no_layers_attr_means_no_layer_rule():
    assert run(AlphaPruner(), [(s, None, 0.5) for s in range(1, 21)])[0] is None


# --- correlation traps and rank collapse -----------------------------------------------------------


def test_trap_on_an_eligible_layer_prunes():
    step, reason, _ = run(AlphaPruner(), constant(lambda s: layers([2.5, 3.0], step=s, num_traps=[0, 2])))
    assert step == 10 and reason["rule"] == "trap"
    assert reason["layers"] == ["fc2"] and reason["num_traps"] == [2] and reason["alpha"] == [3.0]


@pytest.mark.parametrize(
    ("num_traps", "eligible", "kwargs"),
    [
        (None, None, {}),
        ([0, 2], [True, False], {}),
        ([0, 2], None, {"max_traps": 2}),
        ([0, 2], None, {"rules": ["under_trained"]}),
        ([None, 0], None, {}),
    ],
)
def test_trap_rule_needs_traps_beyond_the_bound_on_eligible_layers(num_traps, eligible, kwargs):
    attr = lambda s: layers([2.5, 3.0], step=s, num_traps=num_traps, eligible=eligible)  # noqa: E731
    assert run(AlphaPruner(**kwargs), constant(attr))[0] is None


def test_rank_collapse_prunes_above_the_bound_only():
    attr = lambda s: layers([2.5, 3.0], step=s, rank_loss=[0, 60], num_evals=[100, 100])  # noqa: E731
    step, reason, _ = run(AlphaPruner(), constant(attr))
    assert step == 10 and reason["rule"] == "rank_collapse"
    assert reason["layers"] == ["fc2"] and reason["rank_loss_fraction"] == [0.6]
    assert run(AlphaPruner(max_rank_loss_fraction=0.7), constant(attr))[0] is None
    attr = lambda s: layers([2.5, 3.0], step=s, rank_loss=[0, 40], num_evals=[100, 100])  # noqa: E731
    assert run(AlphaPruner(), constant(attr))[0] is None


def test_healthy_run_is_never_pruned():
    attr = lambda s: layers([2.1, 2.6, 3.4], step=s, num_traps=[0, 0, 0])  # noqa: E731
    assert run(AlphaPruner(), constant(attr))[0] is None


# --- divergence --------------------------------------------------------------------------------------


def growing(alpha_late, lambda_late, *, log_norm_late=2.0, from_step=3):
    """Layers that are fine at first and from ``from_step`` on have ``alpha_late`` and ``lambda_late``."""

    def attr(s):
        if s < from_step:
            return layers([2.5, 3.0], step=s, lambda_max=[10.0, 10.0], log_norm=[2.0, 2.0])
        return layers(
            [alpha_late, 3.0], step=s, lambda_max=[lambda_late, 10.0], log_norm=[log_norm_late, 2.0]
        )

    return attr


def test_small_alpha_with_exploding_spectral_norm_prunes_during_warmup():
    step, reason, _ = run(AlphaPruner(), constant(growing(1.4, 5_000.0)))
    assert step == 3  # well inside the warm-up of 10 steps
    assert reason["rule"] == "diverged" and reason["cause"] == "small_alpha_and_norm_growth"
    assert reason["layers"] == ["fc1"] and reason["alpha"] == [1.4]
    assert reason["growth"] == [pytest.approx(500.0)]


def test_small_alpha_with_exploding_frobenius_norm_prunes():
    step, reason, _ = run(AlphaPruner(), constant(growing(1.4, 10.0, log_norm_late=5.0)))
    assert step == 3 and reason["growth"] == [pytest.approx(1000.0)]


@pytest.mark.parametrize(
    ("alpha_late", "lambda_late"),
    [(1.4, 10.0), (1.4, 900.0), (2.5, 1e6), (-1.0, 1e6)],
    ids=["plain-small-alpha", "growth-below-bound", "growth-with-normal-alpha", "failed-fit"],
)
def test_small_alpha_alone_does_not_prune(alpha_late, lambda_late):
    # Heavily regularised good runs reach α < 2; a failed fit (α = -1) is not a small α.
    attr = growing(alpha_late, lambda_late)
    if alpha_late < 0:
        base = attr
        attr = lambda s: {**base(s), "status": ["failed" if s >= 3 else "success", "success"]}  # noqa: E731
    assert run(AlphaPruner(), constant(attr))[0] is None


def test_whole_run_below_alpha_two_is_not_pruned():
    attr = lambda s: layers([1.5, 1.7, 1.9], step=s, num_traps=[0, 0, 0])  # noqa: E731
    assert run(AlphaPruner(), constant(attr))[0] is None


@pytest.mark.parametrize("loss", [math.nan, math.inf, -math.inf])
def test_non_finite_loss_prunes_at_once(loss):
    step, reason, _ = run(AlphaPruner(), [(1, layers([2.5]), 2.0), (2, layers([2.5]), loss), (3, None, 1.0)])
    assert step == 2 and reason["rule"] == "diverged" and reason["cause"] == "non_finite_loss"
    assert "step 2" in reason["message"]


def test_loss_stored_as_null_counts_as_non_finite():
    # Some storages write NaN as JSON null.
    pruner = AlphaPruner()
    study = optuna.create_study(pruner=pruner)
    trial = study.ask()
    trial.set_user_attr("wwtune.budget", 20)
    trial.set_user_attr("wwtune.losses", [[1, 2.0], [2, None]])
    trial.report(0.5, 2)
    assert trial.should_prune() and pruner.reason_for(trial)["cause"] == "non_finite_loss"


def test_non_finite_norms_prune_at_once():
    steps = [
        (1, layers([2.5, 3.0], step=1), 2.0),
        (2, layers([2.5, 3.0], step=2, lambda_max=[math.inf, 1.0]), 2.0),
    ]
    step, reason, _ = run(AlphaPruner(), steps)
    assert step == 2 and reason["cause"] == "non_finite_norms" and reason["layers"] == ["fc1"]


def test_divergence_rule_can_be_switched_off():
    pruner = AlphaPruner(rules=["under_trained", "trap", "rank_collapse"])
    assert run(pruner, constant(growing(1.4, 5_000.0)))[0] is None


def test_first_analysis_is_remembered_per_trial():
    pruner = AlphaPruner()
    study = optuna.create_study(pruner=pruner)
    # Trial 0 starts large; trial 1 starts small: growth is judged against each trial's own start.
    big = lambda s: layers([1.5], step=s, lambda_max=[5_000.0])  # noqa: E731
    assert run(pruner, constant(big), study=study)[0] is None
    assert run(pruner, constant(growing(1.4, 5_000.0)), study=study)[0] == 3


# --- wrapped Optuna pruner ---------------------------------------------------------------------------


def test_wrapped_pruner_judges_the_score_after_the_warmup():
    pruner = AlphaPruner(wrapped=optuna.pruners.MedianPruner(n_startup_trials=2))
    pruned_at, reason = _step_pruned_when_worse_than_the_others(pruner)
    assert pruned_at == 10  # the median pruner alone would have pruned at step 1
    assert reason["rule"] == "wrapped" and reason["pruner"] == "MedianPruner" and reason["score"] == 3.0
    assert reason["message"] == "MedianPruner pruned the trial on its α score 3 at step 10."


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
@pytest.mark.parametrize(
    "make",
    [
        lambda: optuna.pruners.MedianPruner(n_startup_trials=2),
        lambda: optuna.pruners.PercentilePruner(25.0, n_startup_trials=2),
        lambda: optuna.pruners.HyperbandPruner(min_resource=1, max_resource=20),
        lambda: optuna.pruners.SuccessiveHalvingPruner(),
        lambda: optuna.pruners.PatientPruner(optuna.pruners.MedianPruner(n_startup_trials=2), patience=1),
    ],
    ids=["Median", "Percentile", "Hyperband", "SuccessiveHalving", "Patient"],
)
def test_optuna_pruners_can_be_wrapped(make):
    pruner = AlphaPruner(wrapped=make())
    study = optuna.create_study(pruner=pruner, sampler=optuna.samplers.RandomSampler(seed=0))

    def objective(trial):
        x = trial.suggest_float("x", 0.0, 1.0)
        trial.set_user_attr("wwtune.budget", 20)
        for s in range(1, 21):
            trial.set_user_attr("wwtune.layers", layers([2.5, 3.0], step=s))
            trial.report(x + s / 100, s)  # getting worse: the Patient pruner's patience runs out
            if trial.should_prune():
                reason = pruner.reason_for(trial)
                assert reason["rule"] == "wrapped" and reason["step"] >= 10
                raise optuna.TrialPruned()
        return x

    study.optimize(objective, n_trials=12)
    assert any(t.state == optuna.trial.TrialState.PRUNED for t in study.trials)


def test_reason_is_cleared_when_a_later_call_does_not_prune():
    pruner = AlphaPruner(n_warmup_steps=1)
    study = optuna.create_study(pruner=pruner)
    trial = study.ask()
    trial.set_user_attr("wwtune.layers", layers([8.0]))
    trial.report(1.0, 1)
    assert trial.should_prune() and pruner.reason_for(trial)["rule"] == "under_trained"
    trial.set_user_attr("wwtune.layers", layers([2.0]))
    trial.report(1.0, 2)
    assert not trial.should_prune() and pruner.reason_for(trial) is None
    assert pruner.reason_for(study.trials[0], study) is None


# --- properties --------------------------------------------------------------------------------------

alphas = st.lists(st.floats(0.5, 20.0), min_size=1, max_size=8)


def _under_trained_only(alpha, eligible):
    pruner = AlphaPruner(rules=["under_trained"], n_warmup_steps=0)
    study = optuna.create_study(pruner=pruner)
    trial = study.ask()
    trial.set_user_attr("wwtune.layers", layers(alpha, eligible=eligible))
    trial.report(0.0, 1)
    return trial.should_prune()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(alpha=alphas, data=st.data())
def test_under_trained_rule_properties(alpha, data):
    eligible = data.draw(st.lists(st.booleans(), min_size=len(alpha), max_size=len(alpha)))
    decision = _under_trained_only(alpha, eligible)
    # Known answer: no eligible layer above 6 never prunes; all eligible layers above 6 always does.
    high = [a > 6.0 for a, e in zip(alpha, eligible, strict=True) if e]
    if not any(high):
        assert not decision
    if high and all(high):
        assert decision
    # Order of layers does not matter.
    order = data.draw(st.permutations(range(len(alpha))))
    assert _under_trained_only([alpha[i] for i in order], [eligible[i] for i in order]) == decision
    # Raising an α never turns a prune into a keep.
    k = data.draw(st.integers(0, len(alpha) - 1))
    raised = list(alpha)
    raised[k] += 5.0
    assert _under_trained_only(raised, eligible) >= decision


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    alpha=st.lists(st.floats(0.1, 1.99), min_size=1, max_size=5),
    growth=st.floats(0.01, 100.0),
)
def test_small_alpha_without_explosion_never_prunes(alpha, growth):
    n = len(alpha)

    def attr(s):
        if s == 1:
            return layers([3.0] * n, step=s, lambda_max=[2.0] * n, log_norm=[1.0] * n, num_traps=[0] * n)
        return layers(alpha, step=s, lambda_max=[2.0 * growth] * n, log_norm=[1.0] * n, num_traps=[0] * n)

    assert run(AlphaPruner(), constant(attr))[0] is None


# --- configuration and documentation ------------------------------------------------------------------


def test_config_builds_the_pruner_with_hydra():
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(REPO / "conf" / "pruner" / "alpha.yaml")
    under = constant(lambda s: layers([8.0, 9.0], step=s))
    trap = constant(lambda s: layers([2.5, 3.0], step=s, num_traps=[0, 2]))
    # the shipped YAML: every rule on, nothing wrapped (a bad score alone prunes nothing)
    assert isinstance(instantiate(cfg), AlphaPruner)
    assert run(instantiate(cfg), under)[1]["rule"] == "under_trained"
    assert run(instantiate(cfg), trap)[1]["rule"] == "trap"
    assert _step_pruned_when_worse_than_the_others(instantiate(cfg)) == (None, None)
    # wrapped and rules reach the pruner: only the trap rule, and the median pruner on the score
    cfg.wrapped = {"_target_": "optuna.pruners.MedianPruner", "n_startup_trials": 2}
    cfg.rules = ["trap"]
    assert run(instantiate(cfg), under)[0] is None
    assert run(instantiate(cfg), trap)[1]["rule"] == "trap"
    step, reason = _step_pruned_when_worse_than_the_others(instantiate(cfg))
    assert step == 10 and reason["rule"] == "wrapped" and reason["pruner"] == "MedianPruner"
    # The YAML keys are exactly the constructor's arguments (a misspelt key would fail to instantiate).
    cfg.rulez = ["trap"]
    with pytest.raises(Exception, match="rulez"):
        instantiate(cfg)


def test_docstring_example_runs_and_records_reasons():
    doc = AlphaPruner.__doc__
    block = doc.split(".. code-block:: python", 1)[1].split("Args:", 1)[0]
    code = "\n".join(line[12:] for line in block.splitlines())
    namespace: dict = {}
    exec(compile(code, "AlphaPruner example", "exec"), namespace)  # noqa: S102
    study = namespace["study"]
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    assert pruned, "the example should prune the under-trained trials"
    assert all(t.user_attrs["wwtune.prune_reason"]["rule"] in (*RULES, "wrapped") for t in pruned)


def test_module_docstring_names_the_attrs_it_reads():
    for attr in (record.LAYERS, record.BUDGET, record.LOSSES):
        assert attr in wwtune.pruners.__doc__


# --- inside a real wwtune study (tests/study_tasks.py, configs in tests/userproj) ---------------------


def test_study_with_pruner_alpha_prunes_and_stores_why(project):
    from wwtune.cli import compose
    from wwtune.study import run_study

    # An under-trained bound of 0.5 makes every trained layer "under-trained": the wiring is under test.
    study = run_study(
        compose(["study=tiny", "pruner=alpha", "pruner.under_trained_alpha=0.5", "study.n_trials=2"])
    )
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    assert len(pruned) == 2
    for t in pruned:
        reason = t.user_attrs["wwtune.prune_reason"]
        layers_attr = t.user_attrs["wwtune.layers"]
        assert reason["rule"] == "under_trained" and reason["step"] == 2  # ceil(0.5 * budget 3)
        assert reason["layers"] == ["fc1"] and reason["alpha"] == [layers_attr["alpha"][0]]
        assert max(t.intermediate_values) == 2


def test_study_with_a_wrapped_pruner_from_the_command_line(project):
    from wwtune.cli import compose
    from wwtune.study import run_study

    overrides = [
        "study=tiny",
        "pruner=alpha",
        "pruner.rules=[]",
        "pruner.n_warmup_steps=1",
        "pruner.wrapped={_target_:optuna.pruners.ThresholdPruner,upper:0.0}",  # any band distance > 0
        "study.n_trials=2",
    ]
    study = run_study(compose(overrides))
    for t in study.trials:
        assert t.state == optuna.trial.TrialState.PRUNED
        reason = t.user_attrs["wwtune.prune_reason"]
        assert reason["rule"] == "wrapped" and reason["pruner"] == "ThresholdPruner" and reason["step"] == 1
