"""The study config parsed once: load_config normalises and validates, every later step takes the result."""

import warnings

import pytest

import wwtune.config
from wwtune.cli import compose
from wwtune.config import analysis_options, load_config, make_score, validate_config
from wwtune.exceptions import ConfigError
from wwtune.schema import SCHEMA, Section, StudyConfig, normalize_config


def quickstart(tmp_path, *overrides):
    return compose(["study=quickstart", f"study.studies_dir={tmp_path}", *overrides])


def test_load_config_gives_typed_sections_built_from_the_schema(tmp_path):
    config = load_config(quickstart(tmp_path))
    assert isinstance(config, StudyConfig) and isinstance(config, dict)
    assert config.study["name"] == config.study.name == "quickstart" and config.study == config["study"]
    assert config.mode == "optimize" and config.worker_id is None
    for name in SCHEMA[""]:
        assert hasattr(config, name), name
    assert isinstance(config.study, Section) and isinstance(config.sampler, Section)
    assert config.study.n_trials == config["study"]["n_trials"] and config.sanity.on_violation == "infeasible"
    assert config.objective.heldout.direction == "maximize"  # a declared sub-section is a Section too
    assert make_score(config.score, config.objective).kind == config["score"]["kind"]
    assert analysis_options(config.analysis).min_evals == 1


def test_a_section_is_typed_by_the_schema_and_read_only(tmp_path):
    raw = quickstart(tmp_path)
    del raw["study"]["trial_timeout"], raw["sanity"]["penalty"]
    config = load_config(raw)
    # a key the config leaves out reads as the schema's declared default; the mapping holds only given keys
    assert config.study.trial_timeout is SCHEMA["study"]["trial_timeout"].default is None
    assert "trial_timeout" not in config.study and "trial_timeout" not in dict(config.study)
    with pytest.raises(AttributeError, match=r"no key 'n_trial' \(did you mean 'n_trials'\?\)"):
        config.study.n_trial  # noqa: B018 - the access is the test
    with pytest.raises(AttributeError, match="read-only"):
        config.study.n_trials = 3
    with pytest.raises(TypeError):
        config.study["n_trials"] = 3  # type: ignore[index]
    assert dict(config.sampler) == config["sampler"]  # an undeclared node is the node Hydra builds


def test_loading_checks_the_config_once(tmp_path, monkeypatch):
    raw = quickstart(tmp_path)
    checked, normalised = [], []
    real_check, real_normalize = wwtune.config.check_section, wwtune.config.normalize_config
    monkeypatch.setattr(wwtune.config, "check_section", lambda *a: checked.append(a[0]) or real_check(*a))
    monkeypatch.setattr(
        wwtune.config, "normalize_config", lambda c: normalised.append(1) or real_normalize(c)
    )
    load_config(raw)
    assert checked.count("") == 1 and checked.count("study") == 1 and len(normalised) == 1


def test_a_loaded_config_is_not_parsed_again(tmp_path, monkeypatch):
    config = load_config(quickstart(tmp_path))
    calls = []
    monkeypatch.setattr(wwtune.config, "check_section", lambda *a: calls.append(a))
    assert load_config(config) is config and normalize_config(config) is config
    validate_config(config)
    assert calls == []
    validate_config(dict(config))  # a plain mapping is still checked
    assert calls


def test_old_names_are_renamed_once_with_one_warning(tmp_path):
    raw = quickstart(tmp_path, "+score.min_evals=30")
    with pytest.warns(DeprecationWarning, match="score.min_evals is renamed"):
        config = load_config(raw)
    assert config.score["min_evals_counted"] == 30 and "min_evals" not in config.score
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        assert make_score(config.score, config.objective).min_evals == 30


def test_a_bad_value_fails_when_loading(tmp_path):
    with pytest.raises(ConfigError, match="n_trials"):
        load_config(quickstart(tmp_path, "study.n_trials=0"))
