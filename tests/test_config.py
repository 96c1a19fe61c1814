"""The config schema (wwtune.schema): one declaration per key, the renamed min_evals keys."""

import warnings

import pytest

from wwtune.cli import compose
from wwtune.config import ConfigError, analysis_kwargs, make_score, validate_config
from wwtune.schema import SCHEMA, check_section, defaults, normalize_config
from wwtune.study import run_study


def quickstart(tmp_path, *overrides):
    return compose(["study=quickstart", f"study.studies_dir={tmp_path}", *overrides])


def test_shipped_configs_use_the_new_names_and_warn_about_nothing(tmp_path):
    cfg = quickstart(tmp_path)
    assert cfg["score"]["min_evals_counted"] == 50 and cfg["analysis"]["min_evals_analysed"] == 1
    assert "min_evals" not in cfg["score"] and "min_evals" not in cfg["analysis"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        validate_config(cfg)
        assert make_score(cfg["score"], cfg["objective"]).min_evals == 50
        assert analysis_kwargs(cfg["analysis"])["min_evals"] == 1


def test_old_min_evals_names_still_work_with_a_deprecation_warning(tmp_path):
    cfg = quickstart(tmp_path, "+score.min_evals=30", "+analysis.min_evals=4")
    with pytest.warns(DeprecationWarning, match=r"score.min_evals is renamed score.min_evals_counted"):
        validate_config(cfg)
    with pytest.warns(DeprecationWarning):
        assert make_score(cfg["score"], cfg["objective"]).min_evals == 30
    with pytest.warns(DeprecationWarning, match=r"overrides analysis.min_evals_analysed=1"):
        assert analysis_kwargs(cfg["analysis"])["min_evals"] == 4
    run = quickstart(
        tmp_path, "+score.min_evals=30", "study.n_trials=1", "objective.budget=2", "study.report=false"
    )
    with pytest.warns(DeprecationWarning):
        study = run_study(run)
    stored = study.user_attrs["wwtune.config"]["score"]
    assert stored["min_evals_counted"] == 30 and "min_evals" not in stored  # stored under the new name


def test_a_bad_value_of_the_old_name_is_named_by_the_new_one(tmp_path):
    with (
        pytest.warns(DeprecationWarning),
        pytest.raises(ConfigError, match="score.min_evals_counted must be"),
    ):
        validate_config(quickstart(tmp_path, "+score.min_evals=0"))


def test_the_advise_block_is_validated_and_its_defaults_are_the_shipped_ones(tmp_path):
    cfg = quickstart(tmp_path)
    assert cfg["advise"] == defaults("advise")
    for override, match in (
        ("+advise.fractoins=[0.5,1]", r"'fractoins' \(did you mean 'fractions'\?\)"),
        ("advise.seeds=[1]", r"advise.seeds must hold at least 2 distinct seeds"),
        ("advise.budget_per_data=maybe", "advise.budget_per_data must be true or false"),
        ("advise.min_effect=-1", r"advise.min_effect must be in \[0, inf\)"),
    ):
        with pytest.raises(ConfigError, match=match):
            validate_config(quickstart(tmp_path, override))


def test_every_shipped_key_is_declared_in_the_schema(tmp_path):
    cfg = quickstart(tmp_path)
    for section in ("", "study", "objective", "score", "sanity", "advise"):
        node = cfg if section == "" else cfg[section]
        check_section(section, node)  # unknown keys raise
        assert set(node) <= set(SCHEMA[section])


def test_normalize_leaves_a_new_style_config_alone():
    cfg = {"score": {"min_evals_counted": 5}, "analysis": {"min_evals_analysed": 2}}
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        assert normalize_config(cfg) == cfg
