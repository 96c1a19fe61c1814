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
    assert isinstance(make_sampler(config, space), optuna.samplers.RandomSampler)
    assert type(make_pruner(config)).__name__ == config.pruner["_target_"].rsplit(".", 1)[-1]
    assert make_score(config).kind == config.score["kind"]
    assert config_module.make_score is make_score  # the old home still offers it
    storage = make_storage(config)
    study = optuna.create_study(storage=storage, study_name=config.study["name"])
    assert (tmp_path / config.study["name"]).is_dir() and study.study_name == config.study["name"]


def test_the_sampler_seed_is_the_workers_and_a_resumed_runs(tmp_path):
    config = parsed(tmp_path, "sampler=random", "study.seed=7")
    space = SearchSpace.from_config(config.search_space)

    def first_draws(sampler):
        study = optuna.create_study(sampler=sampler)
        return [study.ask().suggest_float("x", 0, 1) for _ in range(3)]

    def seeded(seed):
        return first_draws(optuna.samplers.RandomSampler(seed=seed))

    assert first_draws(make_sampler(config, space)) == seeded(7)
    assert first_draws(make_sampler(config, space, worker_id=2)) == seeded(worker_seed(7, 2))
    assert first_draws(make_sampler(config, space, worker_id=2, n_existing=5)) == seeded(
        resumed_seed(worker_seed(7, 2), 5)
    )
    assert resumed_seed(worker_seed(7, 2), 5) != worker_seed(7, 2)


def test_a_bad_storage_is_a_config_error_naming_it(tmp_path):
    config = parsed(tmp_path, "storage.kind=sqlite", "storage.url=postgresql://u:secret@h/db")
    with pytest.raises(ConfigError, match=r"is a PostgreSQL URL; use storage=postgres") as caught:
        make_storage(config)
    assert type(caught.value) is ConfigError and "secret" not in str(caught.value)
