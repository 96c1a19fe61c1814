"""Trust report on synthetic trials of known correlation: perfect, reversed, noise, too few."""

from __future__ import annotations

import json
import math

import numpy as np
import optuna
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from optuna.trial import TrialState, create_trial

from wwtune.trust import format_trust, trust_report

optuna.logging.set_verbosity(optuna.logging.WARNING)


def trials(scores, heldouts, states=None):
    """FrozenTrials of a real in-memory study, numbered 0..n-1, with the given α scores and held-outs."""
    study = optuna.create_study()
    states = states or [TrialState.COMPLETE] * len(scores)
    for s, h, state in zip(scores, heldouts, states, strict=True):
        attrs = {}
        if s is not None:
            attrs["wwtune.score"] = s
        if h is not None:
            attrs["wwtune.heldout"] = h
        value = (s if s is not None and math.isfinite(s) else 0.0) if state == TrialState.COMPLETE else None
        study.add_trial(create_trial(state=state, value=value, user_attrs=attrs))
    return study.trials


SCORES = [0.05 * i for i in range(12)]  # lower = better α score


def test_perfect_ranking_is_trusted():
    acc = [0.99 - 0.02 * i for i in range(12)]  # accuracy falls as the α score worsens
    r = trust_report(trials(SCORES, acc), "maximize")
    assert r["n"] == 12 and r["spearman"] == pytest.approx(1.0) and r["kendall"] == pytest.approx(1.0)
    assert r["spearman_p"] < 1e-6 and r["verdict"] == "well"
    assert r["alpha_best"]["trial"] == r["heldout_best"]["trial"] == 0
    assert r["regret"] == 0.0 and r["regret_vs_median"] == 0.0
    assert "α ranked trials well on this task" in r["summary"] and "Spearman +1.00" in r["summary"]
    json.dumps(r, allow_nan=False)  # storable as a study user attr


def test_reversed_ranking_is_distrusted():
    acc = [0.77 + 0.02 * i for i in range(12)]
    r = trust_report(trials(SCORES, acc), "maximize")
    assert r["spearman"] == pytest.approx(-1.0) and r["kendall"] == pytest.approx(-1.0)
    assert r["verdict"] == "poorly" and "α ranked trials poorly" in r["summary"]
    assert r["alpha_best"]["trial"] == 0 and r["heldout_best"]["trial"] == 11
    assert r["regret"] == pytest.approx(0.22) and r["regret_vs_median"] == pytest.approx(0.22 / 0.11)


def test_noise_is_inconclusive():
    rng = np.random.default_rng(3)
    scores = rng.uniform(0, 1, 30).tolist()
    acc = rng.uniform(0.8, 1.0, 30).tolist()
    r = trust_report(trials(scores, acc), "maximize")
    assert r["n"] == 30 and abs(r["spearman"]) < 0.3
    assert max(r["spearman_p"], r["kendall_p"]) >= 0.05
    assert r["verdict"] == "inconclusive" and "is not below 0.05" in r["reason"]


def test_too_few_trials_is_inconclusive_even_when_perfect():
    r = trust_report(trials(SCORES[:5], [0.9, 0.8, 0.7, 0.6, 0.5]), "maximize")
    assert r["spearman"] == pytest.approx(1.0)
    assert r["verdict"] == "inconclusive" and r["reason"] == "only 5 trials (fewer than 10)"


def test_min_trials_and_p_threshold_are_the_stated_rule():
    h = [0.9, 0.8, 0.7, 0.6, 0.5]
    r = trust_report(trials(SCORES[:5], h), "maximize", min_trials=5)
    # n = 5, perfect: Spearman p = 0 (exact), Kendall p = 2/5! = 0.0167; both below 0.05.
    assert r["kendall_p"] == pytest.approx(2 / 120) and r["verdict"] == "well"
    r = trust_report(trials(SCORES[:5], h), "maximize", min_trials=5, p_threshold=0.01)
    assert r["verdict"] == "inconclusive"


def test_known_regret_numbers():
    h = [0.90, 0.95, 0.80, 0.70, 0.60]
    r = trust_report(trials([0.0, 1.0, 2.0, 3.0, 4.0], h), "maximize")
    assert r["alpha_best"] == {"trial": 0, "score": 0.0, "heldout": 0.90}
    assert r["heldout_best"] == {"trial": 1, "score": 1.0, "heldout": 0.95}
    assert r["median"]["heldout"] == pytest.approx(0.80) and r["median"]["trial"] == 2
    assert r["regret"] == pytest.approx(0.05)
    assert r["regret_vs_median"] == pytest.approx(0.05 / 0.15)
    assert r["random_regret"] == pytest.approx(0.95 - 0.79)


def test_minimized_heldout_gives_the_same_oriented_numbers():
    rng = np.random.default_rng(0)
    scores = rng.uniform(0, 1, 15).tolist()
    acc = (0.9 - 0.1 * np.array(scores) + rng.normal(0, 0.02, 15)).tolist()
    up = trust_report(trials(scores, acc), "maximize")
    down = trust_report(trials(scores, [-a for a in acc]), "minimize")
    for key in ("spearman", "kendall", "spearman_p", "kendall_p", "regret", "regret_vs_median", "verdict"):
        assert down[key] == pytest.approx(up[key])
    assert up["spearman"] > 0.5 and up["verdict"] == "well"
    # A maximised α score flips the orientation.
    flipped = trust_report(trials([-s for s in scores], acc), "maximize", score_direction="maximize")
    assert flipped["spearman"] == pytest.approx(up["spearman"])


def test_only_complete_trials_with_finite_numbers_count():
    states = [TrialState.COMPLETE] * 4 + [TrialState.PRUNED, TrialState.FAIL]
    r = trust_report(
        trials([0.1, 0.2, math.nan, None, 0.0, 0.0], [0.9, 0.8, 0.95, 0.99, 1.0, 1.0], states), "maximize"
    )
    assert r["n"] == 2 and r["n_excluded"] == 2
    assert {r["alpha_best"]["trial"], r["heldout_best"]["trial"]} == {0}


def test_no_qualifying_trial_and_constant_values():
    r = trust_report(trials([0.1, 0.2], [None, None]), "maximize")
    assert r["n"] == 0 and r["verdict"] == "inconclusive" and r["regret"] is None
    assert "no completed trial" in format_trust(r)
    r = trust_report(trials([0.3] * 12, [0.9 - 0.01 * i for i in range(12)]), "maximize")
    assert r["spearman"] is None and r["verdict"] == "inconclusive" and "all equal" in r["reason"]
    assert "n/a" in format_trust(r)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"heldout_direction": "max"},
            "heldout_direction must be one of ['minimize', 'maximize'] but got 'max'.",
        ),
        ({"score_direction": "up"}, "score_direction must be one of ['minimize', 'maximize'] but got 'up'."),
        ({"min_trials": 2}, "min_trials must be at least 3 but got 2."),
        ({"p_threshold": 0.0}, "p_threshold must be in (0, 1) but got 0.0."),
    ],
)
def test_invalid_arguments(kwargs, message):
    args = {"heldout_direction": "maximize", **kwargs}
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        trust_report([], **args)


def test_format_shows_the_numbers_and_the_convention():
    acc = [0.99 - 0.02 * i for i in range(12)]
    text = format_trust(trust_report(trials(SCORES, acc), "maximize"))
    assert text.startswith("Trust in the α score: α ranked trials well on this task")
    assert "Spearman 1 (p = " in text and "Kendall 1 (p = " in text
    assert "+1 = a better α score (lower) goes with a better held-out metric (higher)" in text
    assert "α-best trial" in text and "#0: held-out 0.99" in text and "regret of trusting α: 0" in text


@settings(max_examples=40, deadline=None)
@given(
    scores=st.lists(st.floats(-10, 10), min_size=10, max_size=25, unique=True),
    slope=st.sampled_from([-1.0, 1.0]),
    direction=st.sampled_from(["maximize", "minimize"]),
)
def test_any_monotone_relation_gives_plus_or_minus_one(scores, slope, direction):
    heldout = [slope * math.atan(s) for s in scores]  # strictly monotone in the score
    r = trust_report(trials(scores, heldout), direction)
    # Lower score ⇔ better held-out exactly when (slope < 0) for maximize, (slope > 0) for minimize.
    expected = 1.0 if (slope < 0) == (direction == "maximize") else -1.0
    assert r["spearman"] == pytest.approx(expected) and r["kendall"] == pytest.approx(expected)
    assert r["verdict"] == ("well" if expected > 0 else "poorly")
    assert r["regret"] >= 0.0 and (r["regret"] == 0.0) == (expected > 0)


@settings(max_examples=40, deadline=None)
@given(
    pairs=st.lists(
        st.tuples(st.floats(0, 5), st.floats(0, 1)), min_size=1, max_size=20, unique_by=lambda p: p[0]
    ),
    data=st.data(),
)
def test_report_does_not_depend_on_trial_order(pairs, data):
    order = data.draw(st.permutations(range(len(pairs))))
    a = trust_report(trials(*zip(*pairs, strict=True)), "maximize")
    b = trust_report(trials(*zip(*[pairs[i] for i in order], strict=True)), "maximize")
    assert a["n"] == b["n"] and a["verdict"] == b["verdict"]
    for key in ("spearman", "kendall", "regret", "random_regret"):
        assert b[key] is None if a[key] is None else b[key] == pytest.approx(a[key])
    heldouts = [h for _, h in pairs]
    assert 0.0 <= a["regret"] <= max(heldouts) - min(heldouts) + 1e-12
    assert 0.0 <= a["random_regret"] <= max(heldouts) - min(heldouts) + 1e-12


def test_report_reads_what_a_real_study_stores(project):
    from wwtune.cli import compose
    from wwtune.study import run_study

    study = run_study(compose(["study=tiny", "study.n_trials=3"]))
    r = trust_report(study.trials, study.user_attrs["wwtune.heldout_direction"])
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert r["n"] == len(complete) == 3 and r["n_excluded"] == 0
    best = min(complete, key=lambda t: t.user_attrs["wwtune.score"])
    assert (
        r["alpha_best"]["trial"] == best.number
        and r["alpha_best"]["heldout"] == best.user_attrs["wwtune.heldout"]
    )
    assert r["verdict"] == "inconclusive" and r["reason"] == "only 3 trials (fewer than 10)"
