"""The pick rule (issue 21): which trial a study returns, apart from the per-trial value a sampler sees.

Known-answer unit tests of :class:`wwtune.pick.PickRule`, the study adapter (:func:`picked_trial`), the
shipped defaults (score=balanced, pick=default) and what a finished study shows (best_params.yaml, the
summary, the ``wwtune.pick`` study attr)."""

from __future__ import annotations

import math

import optuna
import pandas as pd
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from wwtune.cli import compose
from wwtune.config import ConfigError, make_pick, make_score, validate_config
from wwtune.outcome import summary_text, write_best_params
from wwtune.pick import STUDY_PICK, Candidate, PickRule, picked_trial, study_pick_rule
from wwtune.record import STUDY_BAND, STUDY_CONFIG
from wwtune.search_space import SearchSpace

optuna.logging.set_verbosity(optuna.logging.WARNING)


def layers(*alphas: float) -> pd.DataFrame:
    n = len(alphas)
    return pd.DataFrame(
        {"name": [f"l{i}" for i in range(n)], "alpha": list(alphas), "num_evals": [64] * n,
         "status": ["success"] * n}
    )  # fmt: skip


# ------------------------------------------------------------------------------------------ the rule
def test_loss_group_picks_the_fewest_layers_below_the_band_among_the_lowest_losses():
    cands = [
        Candidate(0, 0.10, layers(1.5, 1.6)),  # lowest loss, both layers below 2: memorised
        Candidate(1, 0.11, layers(2.5, 1.7)),  # half below
        Candidate(2, 0.12, layers(2.5, 2.6)),  # none below, but outside the 30% group (3 of 10)
        *[Candidate(3 + i, 1.0 + i, layers(3.0, 3.0)) for i in range(7)],
    ]
    got = PickRule(group=0.2).choose(cands)  # group: ceil(0.2 * 10) = 2 trials
    assert got.number == 1
    assert "2 of 10 trials" in got.reason and "#0" in got.reason
    assert PickRule(group=0.3).choose(cands).number == 2
    assert PickRule(group=0.05).choose(cands).number == 0  # a group of one: the training-loss pick


def test_loss_group_ties_go_to_the_lower_loss_then_the_earlier_trial():
    cands = [Candidate(5, 0.2, layers(2.5)), Candidate(3, 0.2, layers(2.5)), Candidate(1, 0.3, layers(2.5))]
    assert PickRule(group=1.0).choose(cands).number == 3


def test_band_guard_and_limit():
    cands = [Candidate(0, 0.1, layers(1.0001, 1.9)), Candidate(1, 0.2, layers(2.0, 2.0))]
    assert PickRule(group=1.0, guard="band").choose(cands).number == 1
    # limit: the lowest-loss trial whose guard is at most the limit (#0 has one of its 1 fitted layers below)
    assert PickRule(group=1.0, limit=1.0).choose(cands).number == 0
    assert PickRule(group=1.0, limit=0.0).choose(cands).number == 1


def test_the_guard_reads_only_eligible_fitted_layers_and_uses_the_band_low_edge():
    table = layers(3.5, 2.5, 0.5).assign(num_evals=[64, 64, 10])  # the third is not eligible
    assert PickRule(band=(3.0, 4.0)).guard_value(table) == pytest.approx(0.5)
    assert PickRule().guard_value(table) == 0.0
    assert math.isinf(PickRule().guard_value(None))


def test_train_loss_and_value_kinds():
    cands = [Candidate(0, 0.3, None, value=-1.0), Candidate(1, 0.1, None, value=2.0)]
    assert PickRule(kind="train_loss").choose(cands).number == 1
    assert PickRule(kind="value").choose(cands).number == 0
    assert PickRule().choose([Candidate(0, float("nan"))]).number is None


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(1e-4, 10.0), min_size=1, max_size=30, unique=True))
def test_the_pick_is_always_in_the_lowest_loss_group(losses):
    cands = [Candidate(i, loss, layers(1.5 + (i % 3))) for i, loss in enumerate(losses)]
    got = PickRule(group=0.1).choose(cands)
    k = max(1, math.ceil(0.1 * len(losses)))
    assert got.number in sorted(range(len(losses)), key=lambda i: losses[i])[:k]


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [({"kind": "best"}, "pick.kind"), ({"group": 0.0}, "pick.group"), ({"group": True}, "pick.group"),
     ({"guard": "alpha"}, "pick.guard"), ({"limit": -1.0}, "pick.limit")],
)  # fmt: skip
def test_bad_settings_are_named(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        PickRule(**kwargs)


# ------------------------------------------------------------------------------------------ the defaults
def test_the_shipped_defaults_separate_the_value_from_the_pick():
    cfg = compose([])  # the quickstart study, as a new user runs it
    score = make_score(cfg["score"], cfg["objective"])
    pick = make_pick(cfg["pick"], score)
    assert (score.kind, score.weight) == ("fit_band", 0.5)  # both terms on comparable scales
    assert (pick.kind, pick.group, pick.guard, pick.limit) == ("loss_group", 0.1, "below", None)
    assert compose(["score=fit_band"])["score"]["weight"] == 5.0  # the named option stays
    assert compose(["score=band"])["score"]["kind"] == "band_distance"
    validate_config(compose(["pick=train_loss"]))
    with pytest.raises(ConfigError, match="pick.group"):
        validate_config(compose(["pick.group=2"]))


def test_the_library_defaults_are_the_cli_defaults():
    import wwtune
    from wwtune.score import named_score

    cfg = compose([])
    cli = make_score(cfg["score"], cfg["objective"])
    lib = named_score()
    assert (
        (lib.kind, lib.weight, lib.band) == (cli.kind, cli.weight, cli.band) == ("fit_band", 0.5, (2.0, 2.0))
    )
    study = optuna.create_study()
    bridge = wwtune.TrialBridge(study.ask(), budget=2)
    assert (bridge.objective.kind, bridge.objective.weight) == ("fit_band", 0.5)
    assert wwtune.TrialBridge(study.ask(), budget=2, objective="fit_band").objective.weight == 5.0


# ------------------------------------------------------------------------------------------ studies
def _study(config: dict | None) -> optuna.Study:
    """Three trials: #0 the best value but a high loss, #1 the lowest loss but memorised (α < 2), #2 a low
    loss with healthy layers."""
    study = optuna.create_study()
    if config is not None:
        study.set_user_attr(STUDY_CONFIG, config)
    study.set_user_attr(STUDY_BAND, [2.0, 2.0])
    for value, loss, alphas in ((-3.0, 1.0, (2.0, 2.0)), (0.0, 0.01, (1.5, 1.5)), (0.5, 0.011, (2.1, 2.2))):
        table = layers(*alphas)
        attrs = {
            "wwtune.losses": [[1, 2.0], [2, loss]],
            "wwtune.layers": {
                "step": 2,
                **{c: table[c].tolist() for c in table.columns},
                "eligible": [True] * len(table),
                "warning": [None] * len(table),
            },
        }
        study.add_trial(
            create_trial(
                state=TrialState.COMPLETE,
                value=value,
                params={"lr": 0.1},
                distributions={"lr": FloatDistribution(1e-3, 1.0)},
                user_attrs=attrs,
            )
        )
    return study


def test_a_study_returns_its_pick_not_its_best_value():
    study = _study({"pick": {"kind": "loss_group", "group": 1.0, "guard": "below"}, "score": {}})
    best, pick = picked_trial(study)
    assert best.number == 2 and "lowest-loss trial #1" in pick.reason
    assert picked_trial(study, PickRule(kind="train_loss"))[0].number == 1
    assert picked_trial(study, PickRule(kind="value"))[0].number == 0


def test_a_study_stored_before_pick_rules_keeps_its_value_pick():
    study = _study({"score": {}})
    assert study_pick_rule(study).kind == "value"
    assert picked_trial(study)[0].number == 0


def test_best_params_summary_and_study_attr_name_the_pick(tmp_path):
    cfg = compose([f"study.studies_dir={tmp_path}", "pick.group=1"])
    study = _study(cfg)
    path = write_best_params(
        study, SearchSpace.from_config(cfg["search_space"]), cfg, make_score(cfg["score"], cfg["objective"])
    )
    doc = yaml.safe_load(path.read_text())
    assert doc["trial"] == 2 and doc["pick"].startswith("pick.kind=loss_group") and doc["pick_reason"]
    assert study.user_attrs[STUDY_PICK]["number"] == 2
    text = summary_text(study, cfg)
    assert "Returned trial #2 (the pick)" in text and "Pick rule: pick.kind=loss_group" in text


def test_help_carries_the_which_score_table():
    from wwtune.cli_help import help_text

    text = help_text()
    assert "score=balanced" in text and "pick=default" in text
    for override in ("pick=train_loss", "score=fit_band pick=value", "score=band pick=value", "Calibration:"):
        assert override in text


def test_a_stored_study_reported_with_another_pick_uses_it():
    from wwtune.outcome import use_pick

    study = _study({"pick": {"kind": "loss_group", "group": 1.0, "guard": "below"}, "score": {}})
    use_pick(study, {"kind": "train_loss"})
    assert picked_trial(study)[0].number == 1 and study.user_attrs[STUDY_PICK]["number"] == 1
    old = _study({"score": {}})  # stored before pick rules: keeps its value pick under the new defaults
    use_pick(old, {"kind": "loss_group", "group": 0.1, "guard": "below"})
    assert picked_trial(old)[0].number == 0
