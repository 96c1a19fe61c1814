"""The study's parts built from its parsed config, side by side: storage, sampler, pruner and score.

Each takes the :class:`~wwtune.schema.StudyConfig` (:func:`wwtune.config.load_config`) and reads its own
sections; a bad value becomes a :class:`~wwtune.exceptions.ConfigError` naming the section.
:func:`wwtune.study.run_study` opens a study with them.
"""

from __future__ import annotations

import importlib.util
import inspect
from collections.abc import Callable, Mapping
from typing import Any

import optuna
from hydra.utils import get_object, instantiate
from optuna.storages import BaseStorage

from wwtune import storage as storages
from wwtune.bridge import HAS_SET_CONSTRAINT
from wwtune.exceptions import ConfigError, StorageError
from wwtune.ranking import constraints
from wwtune.resume import resumed_seed
from wwtune.schema import normalize_config
from wwtune.score import Score
from wwtune.search_space import SearchSpace, SearchSpaceError
from wwtune.study_folder import studies_dir
from wwtune.workers import worker_seed

__all__ = ["make_pruner", "make_sampler", "make_score", "make_storage"]

#: Optional packages some Optuna samplers import only when they first sample.
SAMPLER_PACKAGES = {"CmaEsSampler": "cmaes"}


def make_storage(
    config: Mapping[str, Any], creator_attrs: Callable[[], Mapping[str, Any]] | None = None
) -> BaseStorage:
    """The Optuna storage of the study ``config`` names (its ``storage`` section, ``study.name`` and
    ``study.studies_dir``; :func:`wwtune.storage.make_storage` builds it, ``creator_attrs`` included)."""
    try:
        return storages.make_storage(
            config["storage"], str(config["study"]["name"]), studies_dir(config), creator_attrs=creator_attrs
        )
    except StorageError as exc:
        raise ConfigError(str(exc)) from None


def make_sampler(
    config: Mapping[str, Any], space: SearchSpace, worker_id: int | None = None, n_existing: int = 0
) -> optuna.samplers.BaseSampler:
    """The ``sampler`` section built for one worker: each worker samples with its own seed (worker 0 / no
    id: the study seed itself), and a run that finds ``n_existing`` trials in its study with a resumed seed
    (it must not replay the first run's start-up trials)."""
    node = dict(config["sampler"])
    if node.get("seed") is not None:
        try:
            node["seed"] = worker_seed(node["seed"], worker_id)
        except ValueError as exc:
            raise ConfigError(f"sampler.seed: {exc}") from None
    extra: dict[str, Any] = {"seed": worker_seed(config["study"]["seed"], worker_id)}
    infeasible = config["sanity"].get("on_violation", "infeasible") == "infeasible"
    if infeasible and not HAS_SET_CONSTRAINT:  # Optuna < 5: constraints reach the sampler this way
        extra["constraints_func"] = constraints
    target = str(node["_target_"]).rsplit(".", 1)[-1]
    if target == "GridSampler":
        try:
            extra["search_space"] = space.grid()
        except SearchSpaceError as exc:
            raise ConfigError(str(exc)) from None
    needs = SAMPLER_PACKAGES.get(target)
    if needs and importlib.util.find_spec(needs) is None:
        raise ConfigError(
            f"{target} needs the {needs!r} package (pip install {needs}); install it or "
            "pick another sampler: tpe, random, gp, grid."
        )
    if n_existing:
        if node.get("seed") is not None:
            node["seed"] = resumed_seed(node["seed"], n_existing)
        extra["seed"] = resumed_seed(extra["seed"], n_existing)
    return build("sampler", node, **extra)


def make_pruner(config: Mapping[str, Any]) -> optuna.pruners.BasePruner:
    """The ``pruner`` section built."""
    return build("pruner", config["pruner"])


def make_score(config: Mapping[str, Any]) -> Score:
    """The run's :class:`~wwtune.score.Score`, from the ``score`` section (and the held-out direction); a
    score config without a band takes the task's (``objective.alpha_band``)."""
    heldout = config["objective"].get("heldout") or {}
    node = dict(normalize_config(config)["score"])
    if node.get("band") is None:
        node["band"] = config["objective"].get("alpha_band")
    return Score.from_config(node, heldout_direction=heldout.get("direction", "maximize"))


def build(section: str, node: Mapping[str, Any], **extra: Any) -> Any:
    """Build ``node`` with Hydra, passing those of ``extra`` its target takes and the node does not set; a
    bad argument value becomes a :class:`ConfigError` naming the section."""
    try:
        target = get_object(node["_target_"])
        try:
            accepted = inspect.signature(target).parameters
        except (TypeError, ValueError):
            accepted = {}
        extra = {k: v for k, v in extra.items() if k in accepted and k not in node}
        return instantiate(dict(node), **extra)
    except Exception as exc:  # noqa: BLE001 - Hydra wraps the target's own ValueError/TypeError
        cause = exc.__cause__ or exc
        raise ConfigError(f"{section}: cannot build {node['_target_']}: {cause}") from None
