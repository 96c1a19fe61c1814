"""The study's parts built side by side from its parsed config (wwtune.factories)."""

import optuna
import pytest

from wwtune import config as config_module
from wwtune.cli import compose
from wwtune.config import ConfigError, load_config
from wwtune.factories import make_pruner, make_sampler, make_score, make_storage
from wwtune.resume import resumed_seed
from wwtune.search_space import SearchSpace
from wwtune.workers import worker_seed


def parsed(tmp_path, *overrides):
    return load_config(compose(["study=quickstart", f"study.studies_dir={tmp_path}", *overrides]))


def test_each_part_comes_from_its_own_section(tmp_path):
    config = parsed(tmp_path, "sampler=random", "study.seed=7")
    space = SearchSpace.from_config(config.search_space)
    sampler = make_sampler(config.sampler, space, seed=config.study.seed)
    assert isinstance(sampler, optuna.samplers.RandomSampler)
    assert type(make_pruner(config.pruner)).__name__ == config.pruner["_target_"].rsplit(".", 1)[-1]
    assert make_score(config.score, config.objective).kind == config.score.kind
    assert config_module.make_score is make_score  # the old home still offers it
    storage = make_storage(config.storage, config.study)
    study = optuna.create_study(storage=storage, study_name=config.study.name)
    assert (tmp_path / config.study.name).is_dir() and study.study_name == config.study.name


def test_the_whole_config_still_builds_a_score_with_a_warning(tmp_path):
    """The 0.1 form, make_score(cfg): kept one minor version, with a DeprecationWarning."""
    config = parsed(tmp_path, "score=band")
    with pytest.warns(DeprecationWarning, match=r"pass the config's score section \(config.score\)"):
        old = make_score(dict(config))
    new = make_score(config.score, config.objective)
    assert (old.kind, old.band, old.min_evals) == (new.kind, new.band, new.min_evals)


def test_the_score_takes_the_tasks_band_and_held_out_direction_from_the_objective():
    objective = {"alpha_band": [2.5, 4.5], "heldout": {"name": "loss", "direction": "minimize"}}
    assert tuple(make_score({"kind": "band_distance"}, objective).band) == (2.5, 4.5)
    assert tuple(make_score({"kind": "band_distance"}).band) == (2.0, 2.0)  # no objective: the score's own
    assert tuple(make_score({"kind": "band_distance", "band": [2, 6]}, objective).band) == (2, 6)
    assert make_score({"kind": "heldout"}, objective).directions == ["minimize"]
    assert make_score({"kind": "heldout"}).directions == ["maximize"]


def test_the_sampler_seed_is_the_workers_and_a_resumed_runs(tmp_path):
    config = parsed(tmp_path, "sampler=random", "study.seed=7")
    space = SearchSpace.from_config(config.search_space)

    def first_draws(sampler):
        study = optuna.create_study(sampler=sampler)
        return [study.ask().suggest_float("x", 0, 1) for _ in range(3)]

    def seeded(seed):
        return first_draws(optuna.samplers.RandomSampler(seed=seed))

    def sampler(**kw):
        return make_sampler(config.sampler, space, seed=config.study.seed, **kw)

    assert first_draws(sampler()) == seeded(7)
    assert first_draws(sampler(worker_id=2)) == seeded(worker_seed(7, 2))
    assert first_draws(sampler(worker_id=2, n_existing=5)) == seeded(resumed_seed(worker_seed(7, 2), 5))
    assert resumed_seed(worker_seed(7, 2), 5) != worker_seed(7, 2)


def test_a_bad_storage_is_a_config_error_naming_it(tmp_path):
    config = parsed(tmp_path, "storage.kind=sqlite", "storage.url=postgresql://u:secret@h/db")
    with pytest.raises(ConfigError, match=r"is a PostgreSQL URL; use storage=postgres") as caught:
        make_storage(config.storage, config.study)
    assert type(caught.value) is ConfigError and "secret" not in str(caught.value)
