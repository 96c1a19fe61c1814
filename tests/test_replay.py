"""RecordingPruner + replay_pruner reproduce what a pruner decides live (synthetic trials, known α)."""

import math
import re

import optuna
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wwtune import replay
from wwtune.pruners import AlphaPruner
from wwtune.replay import RecordingPruner, replay_pruner

optuna.logging.set_verbosity(optuna.logging.WARNING)


def layers(step: int, alphas: list[float]) -> dict:
    n = len(alphas)
    return {
        "step": step,
        "name": [f"fc{i}" for i in range(n)],
        "alpha": alphas,
        "num_evals": [64] * n,
        "eligible": [True] * n,
        "status": ["success"] * n,
        "lambda_max": [1.0] * n,
        "log_norm": [0.0] * n,
        "rank_loss": [0] * n,
        "num_traps": None,
    }


def run(pruner: optuna.pruners.BasePruner, plans: list[list[list[float]]]) -> dict[int, int | None]:
    """One trial per plan (per step, per layer α); returns the step each trial was pruned at (or None)."""
    pruned_at: dict[int, int | None] = {}

    def objective(trial: optuna.trial.Trial) -> float:
        plan = plans[trial.number]
        trial.set_user_attr("wwtune.budget", len(plan))
        pruned_at[trial.number] = None
        for step, alphas in enumerate(plan, start=1):
            trial.set_user_attr("wwtune.layers", layers(step, alphas))
            trial.report(sum(abs(a - 2.0) for a in alphas) / len(alphas), step)
            if trial.should_prune():
                pruned_at[trial.number] = step
                raise optuna.TrialPruned()
        return 0.0

    optuna.create_study(pruner=pruner).optimize(objective, n_trials=len(plans))
    return pruned_at


def test_module_docstring_example_runs():
    source = "\n".join(
        line[8:] for line in replay.__doc__.split(".. code-block:: python")[1].splitlines() if line.strip()
    )
    exec(compile(source, "replay-docstring", "exec"), {})


def test_known_answers():
    """α 8 on both layers: under-trained at the warm-up step (ceil(0.5 · 6) = 3); α 2.5: never pruned."""
    plans = [[[8.0, 8.0]] * 6, [[2.5, 2.5]] * 6, [[2.5, 2.5]] * 4 + [[8.0, 2.5]] * 2]
    recorder = RecordingPruner()
    assert run(recorder, plans) == {0: None, 1: None, 2: None}  # the recorder itself never prunes
    assert [len(recorder.records[i]) for i in range(3)] == [6, 6, 6]
    assert recorder.records[0][2]["layers"]["alpha"] == [8.0, 8.0]
    assert recorder.records[0][2]["step"] == 3 and recorder.records[0][2]["score"] == 6.0
    decisions = replay_pruner(AlphaPruner(), recorder.records, recorder.budgets)
    assert decisions[0]["step"] == 3 and decisions[0]["reason"]["rule"] == "under_trained"
    assert decisions[1] is None
    assert decisions[2]["step"] == 5 and decisions[2]["reason"]["layers"] == ["fc0"]


@st.composite
def plan(draw) -> list[list[float]]:
    """One trial: a budget of 2–8 steps, 1–3 layers, each layer's α per step in [1.5, 9]."""
    n_steps, n_layers = draw(st.integers(2, 8)), draw(st.integers(1, 3))
    step = st.lists(st.floats(1.5, 9.0), min_size=n_layers, max_size=n_layers)
    return draw(st.lists(step, min_size=n_steps, max_size=n_steps))


@settings(max_examples=25, deadline=None)
@given(st.lists(plan(), min_size=1, max_size=4), st.floats(0.0, 0.9))
def test_replay_equals_live_decisions(plans, fraction):
    """The live pruner in a real study, the recorder's live copy and the replay agree step by step."""
    live = run(AlphaPruner(under_trained_fraction=fraction), plans)
    recorder = RecordingPruner(live=AlphaPruner(under_trained_fraction=fraction))
    run(recorder, plans)
    replayed = replay_pruner(AlphaPruner(under_trained_fraction=fraction), recorder.records, recorder.budgets)
    for number, step in live.items():
        assert (replayed[number] or {}).get("step") == step
        assert (recorder.live_decisions.get(number) or {}).get("step") == step
        if step is not None:  # the decision is the under-trained rule with the known fraction
            high = sum(a > 6.0 for a in plans[number][step - 1]) / len(plans[number][step - 1])
            assert high > fraction and step >= math.ceil(0.5 * len(plans[number]))


def test_bad_arguments_are_named():
    message = "live must be an optuna.pruners.BasePruner or None but got str"
    with pytest.raises(TypeError, match=re.escape(message)):
        RecordingPruner(live="median")
    with pytest.raises(TypeError, match="pruner must be an optuna.pruners.BasePruner but got NoneType"):
        replay_pruner(None, {}, {})
