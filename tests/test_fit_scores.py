"""The scores that combine fit and spectra (train_loss, fit_band, pareto), the Pareto pick rule, and the
sanity rules that let a blown-up run win before (issue 11): unit tests with known answers, tiny studies
in-process and through `python -m wwtune`."""

from __future__ import annotations

import math
import subprocess
import sys

import optuna
import pandas as pd
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from optuna.trial import TrialState

from wwtune.cli import compose
from wwtune.config import validate_config
from wwtune.exceptions import ConfigError
from wwtune.factories import make_score
from wwtune.outcome import summary_text
from wwtune.ranking import best_trial, pareto_front, pareto_pick
from wwtune.score import Score
from wwtune.study import run_study

optuna.logging.set_verbosity(optuna.logging.WARNING)

LAYERS = pd.DataFrame(
    {"name": ["a", "b"], "alpha": [2.5, 1.5], "num_evals": [64, 64], "status": ["success", "success"]}
)


def _score(cfg):
    """The run's score of a composed config, from its sections."""
    return make_score(cfg["score"], cfg["objective"])


def cfg(*overrides):
    return compose(["study=tiny", *overrides])


# ------------------------------------------------------------------------------------------ the formulas
def test_train_loss_score_is_the_loss():
    assert Score(kind="train_loss")(None, train_loss=0.25).value == 0.25
    assert Score(kind="train_loss")(LAYERS, train_loss=None).value is None


def test_fit_band_is_log10_loss_plus_weighted_band_distance():
    s = Score(kind="fit_band", band=(2.0, 2.0), tie_break=0.0, weight=0.3)
    # band distance of [2.5, 1.5] to 2 is 0.5 (mean of 0.5 and 0.5)
    assert s(LAYERS, train_loss=0.01).value == pytest.approx(-2.0 + 0.3 * 0.5)
    assert s(LAYERS, train_loss=0.0).value == pytest.approx(-6.0 + 0.15)  # loss_floor 1e-6
    assert s(LAYERS, train_loss=float("nan")).value is None


def test_fit_band_counts_correlation_traps_against_the_loss():
    traps = LAYERS.assign(num_traps=[1, 0])
    s = Score(kind="fit_band", tie_break=0.0, weight=0.0, trap_weight=0.5)
    assert s(traps, train_loss=1.0).value == pytest.approx(0.25)  # half the layers trapped
    assert s(LAYERS, train_loss=1.0).value == pytest.approx(0.0)  # no trap columns: no term


def test_pareto_score_has_two_values():
    r = Score(kind="pareto", tie_break=0.0)(LAYERS, train_loss=0.2)
    assert r.values == (0.2, pytest.approx(0.5)) and r.value == pytest.approx(0.5)
    assert Score(kind="pareto").directions == ["minimize", "minimize"]


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"weight": -1}, "weight must be a finite number >= 0"),
        ({"trap_weight": float("inf")}, "trap_weight must be a finite number >= 0"),
        ({"loss_floor": 0}, "loss_floor must be a positive number"),
        ({"fit_quantile": 0}, r"fit_quantile must be in \(0, 1\]"),
        ({"weight": "high"}, "weight must be a number"),
        ({"kind": "fitband"}, "Score kind must be one of"),
    ],
)
def test_knobs_are_validated_with_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Score(**kwargs)


# ------------------------------------------------------------------------------------------ Pareto rule
def test_pareto_front_known_answer():
    pts = [(1, 5), (2, 2), (3, 3), (5, 1), (2, 2)]
    assert pareto_front(pts) == [0, 1, 3, 4]  # (3, 3) is dominated by (2, 2); equal points both stay


def test_pareto_pick_takes_the_smallest_rank_sum_on_the_front():
    losses = [0.1, 0.2, 0.3, 0.05, 0.9]
    bands = [0.5, 0.1, 0.05, 2.0, 0.01]
    # ranks (1 = lowest): loss 2,3,4,1,5; band 4,3,2,5,1 → sums 6,6,6,6,6: tie → lowest loss (#3)
    assert pareto_pick(losses, bands) == 3
    bands[1] = 0.02  # now #1 has band rank 2 → sum 5, the unique minimum
    assert pareto_pick(losses, bands) == 1


def test_pareto_pick_fit_gate_excludes_runs_that_did_not_fit():
    losses = [0.1, 0.11, 5.0]
    bands = [0.9, 0.8, 0.0]  # the run that did not fit has the best α
    assert pareto_pick(losses, bands, fit_quantile=0.5) in (0, 1)
    assert pareto_pick([math.nan], [1.0]) is None


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 10), st.floats(0, 10)), min_size=1, max_size=25))
def test_pareto_pick_is_always_on_the_front(points):
    losses, bands = zip(*points, strict=True)
    i = pareto_pick(list(losses), list(bands))
    assert i in pareto_front(points)


# ------------------------------------------------------------------------------------------ in a study
def test_fit_band_study_reports_a_signal_that_depends_on_the_trial_alone(project):
    """What the sampler sees (intermediate and final values) is the formula applied to that trial's own
    stored loss and layers: no rank against other trials, so it never changes as the study grows."""
    study = run_study(cfg("score=fit_band", "study.n_trials=4"))
    score = Score(kind="fit_band", band=(2.0, 2.0), weight=5.0)
    for t in study.trials:
        assert t.state == TrialState.COMPLETE
        layers = pd.DataFrame({k: v for k, v in t.user_attrs["wwtune.layers"].items() if isinstance(v, list)})
        loss = t.user_attrs["wwtune.losses"][-1][1]
        assert t.value == pytest.approx(score(layers, train_loss=loss).value)
        assert t.intermediate_values[3] == pytest.approx(t.value)
        # the stored α score stays the band distance (the trust report and the advisor read it)
        assert t.user_attrs["wwtune.score"] == pytest.approx(Score()(layers).value)
    values = [t.value for t in study.trials]
    more = run_study(cfg("score=fit_band", "study.n_trials=6"))  # resumed: two more trials
    assert [t.value for t in more.trials[:4]] == values


def test_pareto_study_picks_from_the_front(project):
    study = run_study(cfg("score=pareto", "study.n_trials=4"))
    assert [d.name for d in study.directions] == ["MINIMIZE", "MINIMIZE"]
    done = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert all(len(t.values) == 2 for t in done)
    pick = best_trial(study)
    i = pareto_pick([t.values[0] for t in done], [t.values[1] for t in done])
    assert pick.number == done[i].number
    doc = yaml.safe_load((project / "studies" / "tiny" / "best_params.yaml").read_text())
    assert doc["trial"] == pick.number and doc["scores"] == pytest.approx(list(pick.values))
    text = summary_text(study, cfg("score=pareto"))
    assert f"Returned trial #{pick.number} (the pick): picked from the Pareto front" in text
    assert "Trust in the α score" in text  # the trust report handles the Pareto study
    trust = study.user_attrs["wwtune.trust"]
    assert trust["study_pick"]["trial"] == pick.number and trust["study_pick"]["score_kind"].endswith(
        "pareto"
    )


def test_pareto_refuses_a_pruner_it_cannot_use(project):
    with pytest.raises(ConfigError, match="pareto is a two-objective study, which Optuna cannot prune"):
        validate_config(cfg("score=pareto", "pruner=alpha"))


def test_train_loss_score_study(project):
    study = run_study(cfg("score=train_loss", "study.n_trials=2"))
    for t in study.trials:
        assert t.value == pytest.approx(t.user_attrs["wwtune.losses"][-1][1])
        assert math.isfinite(t.user_attrs["wwtune.score"])


def test_loss_scores_refuse_a_task_whose_loss_is_not_comparable(project):
    with pytest.raises(ConfigError, match="not comparable across trials"):
        validate_config(cfg("score=fit_band", "+objective.loss_comparable=false"))


def test_heldout_score_keeps_the_tasks_alpha_band():
    """score=heldout on the transformer task stores an α score with the transformer band, not [2, 2]."""
    c = compose(["study=char_lm", "score=heldout"])
    assert _score(c).band == (3.0, 4.0) and _score(c).alpha_score().band == (3.0, 4.0)
    for score in ("band", "fit_band", "pareto", "train_loss"):
        assert _score(compose(["study=char_lm", f"score={score}"])).band == (3.0, 4.0)
    assert _score(compose(["study=digits_mlp", "score=heldout"])).band == (2.0, 2.0)
    assert _score(compose(["study=char_lm", "score=band", "score.band=[2,3]"])).band == (2.0, 3.0)


# ------------------------------------------------------------------------------------------ sanity rules
def test_loss_drop_is_measured_from_the_loss_before_training(project):
    """A run whose loss blew up in epoch 1 (1.0 → 2.85) and then sat at 1.3: it fell 54% from its first
    report, but not at all from where it started."""
    study = run_study(
        cfg("objective.task=study_tasks:blew_up_first_epoch", "study.n_trials=1", "objective.heldout=null")
    )
    t = study.trials[0]
    assert t.user_attrs["wwtune.constraint"] == [1.0]
    assert "1 before training -> 1.3 at step 3" in t.user_attrs["wwtune.infeasible_reason"]
    assert t.user_attrs["wwtune.reference_loss"] == 1.0
    assert [s for s, _ in t.user_attrs["wwtune.losses"]] == [1, 2, 3]  # budget 3; step 0 is no entry
    assert best_trial(study) is None


def test_exploding_norms_are_divergence_in_every_study(project):
    """No pruner: the final analysis itself flags α < 2 with a spectral norm ×10⁴ since step 0."""
    study = run_study(
        cfg("objective.task=study_tasks:exploding_norms", "study.n_trials=1", "objective.heldout=null")
    )
    t = study.trials[0]
    reason = t.user_attrs["wwtune.infeasible_reason"]
    assert reason.startswith("diverged: α below 2 with exploding norms") and "fc1" in reason
    assert t.value == math.inf and best_trial(study) is None
    off = run_study(
        cfg(
            "objective.task=study_tasks:exploding_norms",
            "study.n_trials=2",
            "objective.heldout=null",
            "sanity.norm_growth=null",
            "study.allow_config_change=true",  # the same study name, the rule switched off
        )
    )
    assert math.isfinite(off.trials[1].value)  # the rule, not something else, caught it


def test_summary_shows_distance_to_the_band(project):
    study = run_study(cfg("study.n_trials=2"))
    text = summary_text(study, cfg())
    assert "to band" in text
    best = best_trial(study)
    alpha = best.user_attrs["wwtune.layers"]["alpha"][0]
    assert f"{alpha - 2.0:+.2f}" in text or "in band" in text


# ------------------------------------------------------------------------------------------ CLI end to end
def _wwtune(project, *args):
    return subprocess.run(
        [sys.executable, "-m", "wwtune", "study=tiny", *args],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=240,
        env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "HOME": str(project)},
    )


@pytest.mark.parametrize("score", ["fit_band", "train_loss", "pareto"])
def test_new_scores_run_end_to_end_through_the_cli(project, score):
    run = _wwtune(project, f"score={score}", "study.n_trials=3")
    assert run.returncode == 0, run.stderr[-2000:]
    assert "lowest-train-loss" in run.stdout
    assert (project / "studies" / "tiny" / "best_params.yaml").exists()
    html = (project / "studies" / "tiny" / "report.html").read_text()
    assert "lowest final training loss" in html
    if score == "pareto":
        assert "Pareto front" in html
    report = _wwtune(project, f"score={score}", "mode=report")
    assert report.returncode == 0, report.stderr[-2000:]


def test_the_shipped_default_is_the_measured_choice():
    """Issue 21: score=balanced (fit_band, weight 0.5: both terms on one scale) with pick=default, chosen on
    seeds 0–8 (benchmarks/results/pick_rule.md); fit_band keeps its weight 5 as a named option."""
    for study in ("quickstart", "digits_mlp", "digits_cnn", "teacher_student", "char_lm"):
        composed = compose([f"study={study}"])
        score = _score(composed)
        assert score.kind == "fit_band" and score.weight == 0.5
        assert composed["pick"]["kind"] == "loss_group"
        assert _score(compose([f"study={study}", "score=fit_band"])).weight == 5.0
    assert _score(compose(["study=char_lm"])).band == (3.0, 4.0)


def test_pruners_work_with_the_fit_score(project):
    study = run_study(cfg("score=fit_band", "pruner=alpha", "study.n_trials=3"))
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in study.trials)
    study = run_study(cfg("score=fit_band", "pruner=median", "study.n_trials=3", "study.name=tiny_median"))
    assert all(t.intermediate_values for t in study.trials)
