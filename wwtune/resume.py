"""Resuming a study safely: which seed a resumed run samples with, and whether the config changed under
the same study name (whose trial is still running: :mod:`wwtune.reaping`).

* :func:`resumed_seed`: a resumed run samples with a seed mixed with the number of trials already in the
  study, so it does not replay the start-up proposals of the first run; a fresh study keeps the seed.
* :func:`config_changes`: the keys whose values differ between the stored and the new config.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
from optuna.distributions import check_distribution_compatibility

from wwtune.config import ConfigError

__all__ = [
    "check_config_change",
    "config_changes",
    "distribution_clash",
    "resumed_seed",
    "stored_trial_count",
]


#: the tag that keeps a resumed run's seed apart from every worker's fresh seed
RESUMED = 0x5E5


def resumed_seed(seed: int | None, n_existing: int) -> int | None:
    """The sampler seed of a run that finds ``n_existing`` trials in its study.

    A fresh study (0 trials) samples with ``seed`` itself, so a seeded single-worker study is reproduced by
    the same command. A resumed one mixes in the trial count (``SeedSequence([seed, n])``): restarting the
    same seed would make a random or TPE sampler propose the first run's start-up trials again. The
    sequence is tagged (``RESUMED``) so that it never equals another worker's fresh seed: worker 0 joining a
    study of ``n`` trials would otherwise get ``SeedSequence([seed, n])``, which is worker ``n``'s seed
    (:func:`wwtune.workers.worker_seed`), and the two would propose the same configurations.
    """
    if seed is None or n_existing <= 0:
        return seed
    return int(np.random.SeedSequence([int(seed), int(n_existing), RESUMED]).generate_state(1)[0])


def config_changes(old: Any, new: Any, prefix: str = "") -> list[str]:
    """The dotted keys whose values differ between two nested configs (added and removed keys too)."""
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        out: list[str] = []
        for key in sorted(set(old) | set(new), key=str):
            out += config_changes(old.get(key), new.get(key), f"{prefix}{key}.")
        return out
    return [] if old == new else [prefix.rstrip(".")]


def distribution_clash(dimensions: Any, trials: Any) -> str | None:
    """Which searched parameter's distribution (``SearchSpace.dimensions``) is incompatible with the one
    stored trials used (Optuna refuses every new trial of such a study), or None."""
    stored: dict[str, Any] = {}
    for trial in trials:
        stored.update(trial.distributions)
    for dim in dimensions:
        old = stored.get(dim.name)
        if old is None:
            continue
        try:
            check_distribution_compatibility(old, dim.distribution)
        except ValueError as exc:
            return f"the search space of {dim.name!r} changed from {old} to {dim.distribution} ({exc})"
    return None


def stored_trial_count(storage: Any, name: str) -> int:
    """How many trials the stored study ``name`` holds (0 when there is no such study yet)."""
    try:
        study_id = storage.get_study_id_from_name(name)
    except KeyError:
        return 0
    return len(storage.get_all_trials(study_id, deepcopy=False))


def check_config_change(name: str, previous: Any, new: Any, clash: str | None, allow: bool) -> None:
    """Refuse a changed config under an existing study name (:class:`~wwtune.config.ConfigError`, exit 2),
    naming the changed keys; with ``allow`` (``study.allow_config_change=true``) go on with a warning,
    unless ``clash`` says a searched parameter's distribution changed, which one study cannot store."""
    changed = config_changes(previous, new)
    if not changed:
        return
    shown = ", ".join(changed[:12]) + (f" and {len(changed) - 12} more" if len(changed) > 12 else "")
    if not allow:
        raise ConfigError(
            f"study {name!r} was created with another configuration; changed: {shown}. Use another "
            "study.name, or set study.allow_config_change=true to continue this study under the new one."
        )
    if clash:
        raise ConfigError(f"study {name!r}: {clash}; one study cannot store both: use another study.name.")
    logging.getLogger(__name__).warning("Study %r continues with a changed configuration (%s).", name, shown)
