"""The study config parsed once: load_config normalises and validates, every later step takes the result."""

import warnings

import pytest

import wwtune.config
from wwtune.cli import compose
from wwtune.config import analysis_options, load_config, make_score, validate_config
from wwtune.exceptions import ConfigError
from wwtune.schema import SCHEMA, StudyConfig, normalize_config


def quickstart(tmp_path, *overrides):
    return compose(["study=quickstart", f"study.studies_dir={tmp_path}", *overrides])


def test_load_config_gives_typed_sections_built_from_the_schema(tmp_path):
    config = load_config(quickstart(tmp_path))
    assert isinstance(config, StudyConfig) and isinstance(config, dict)
    assert config.study["name"] == "quickstart" and config.study is config["study"]
    assert config.mode == "optimize" and config.worker_id is None
    for name in SCHEMA[""]:
        assert hasattr(config, name), name
    assert make_score(config).kind == make_score(dict(config)).kind
    assert analysis_options(config).min_evals == 1


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
        assert make_score(config).min_evals == 30


def test_a_bad_value_fails_when_loading(tmp_path):
    with pytest.raises(ConfigError, match="n_trials"):
        load_config(quickstart(tmp_path, "study.n_trials=0"))
