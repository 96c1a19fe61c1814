"""The study's parts built from its parsed config, side by side: storage, sampler, pruner and score.

Each takes its own sections of the :class:`~wwtune.schema.StudyConfig` (:func:`wwtune.config.load_config`):
``make_storage(config.storage, config.study)``, ``make_sampler(config.sampler, space, seed=...)``,
``make_pruner(config.pruner)``, ``make_score(config.score, config.objective)``; a bad value becomes a
:class:`~wwtune.exceptions.ConfigError` naming the section.
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
from wwtune.deprecation import section_of
from wwtune.exceptions import ConfigError, StorageError
from wwtune.ranking import constraints
from wwtune.resume import resumed_seed
from wwtune.score import Score
from wwtune.search_space import SearchSpace, SearchSpaceError
from wwtune.study_folder import studies_dir
from wwtune.workers import worker_seed

__all__ = ["make_pruner", "make_sampler", "make_score", "make_storage"]

#: Optional packages some Optuna samplers import only when they first sample.
SAMPLER_PACKAGES = {"CmaEsSampler": "cmaes"}


def make_storage(
    storage: Mapping[str, Any],
    study: Mapping[str, Any],
    creator_attrs: Callable[[], Mapping[str, Any]] | None = None,
) -> BaseStorage:
    """The Optuna storage the ``storage`` section describes, for the study the ``study`` section names
    (``name``, ``studies_dir``): :func:`wwtune.storage.make_storage`, ``creator_attrs`` included."""
    try:
        return storages.make_storage(
            storage, str(study["name"]), studies_dir(study), creator_attrs=creator_attrs
        )
    except StorageError as exc:
        raise ConfigError(str(exc)) from None


def make_sampler(
    sampler: Mapping[str, Any],
    space: SearchSpace,
    *,
    seed: int,
    constrained: bool = True,
    worker_id: int | None = None,
    n_existing: int = 0,
) -> optuna.samplers.BaseSampler:
    """The ``sampler`` section built for one worker of a study seeded ``seed`` (``study.seed``): each
    worker samples with its own seed (worker 0 / no id: the study seed itself), and a run that finds
    ``n_existing`` trials in its study with a resumed seed (it must not replay the first run's start-up
    trials). ``constrained`` (``sanity.on_violation=infeasible``): trials breaking a sanity rule reach the
    sampler as infeasible."""
    node = dict(sampler)
    if node.get("seed") is not None:
        try:
            node["seed"] = worker_seed(node["seed"], worker_id)
        except ValueError as exc:
            raise ConfigError(f"sampler.seed: {exc}") from None
    extra: dict[str, Any] = {"seed": worker_seed(seed, worker_id)}
    if constrained and not HAS_SET_CONSTRAINT:  # Optuna < 5: constraints reach the sampler this way
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


def make_pruner(pruner: Mapping[str, Any]) -> optuna.pruners.BasePruner:
    """The ``pruner`` section built."""
    return build("pruner", pruner)


def make_score(score: Mapping[str, Any], objective: Mapping[str, Any] | None = None) -> Score:
    """The run's :class:`~wwtune.score.Score` from the ``score`` section; the ``objective`` section gives
    the held-out direction and, to a score section without a band, the task's band (``alpha_band``)."""
    if objective is None and isinstance(score.get("objective"), Mapping):
        objective = score["objective"]  # the 0.1 form: a whole config (section_of warns)
    score = section_of(score, "score")
    objective = objective or {}
    heldout = objective.get("heldout") or {}
    node = dict(score)
    if node.get("band") is None:
        node["band"] = objective.get("alpha_band")
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
