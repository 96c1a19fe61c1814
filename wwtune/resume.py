"""Resuming a study safely: which seed a resumed run samples with, and whether the config changed under
the same study name (whose trial is still running: :mod:`wwtune.reaping`).

* :func:`resumed_seed`: a resumed run samples with a seed mixed with the number of trials already in the
  study, so it does not replay the start-up proposals of the first run; a fresh study keeps the seed.
* :func:`config_changes`: the keys whose values differ between the stored and the new config.
* :func:`score_rule`: the fingerprint of how a config scores a trained model; a study resumed under a
  changed rule (``study.allow_config_change=true``) ranks only the trials of its current rule
  (:func:`wwtune.record.ranked_trials`), and its sampler learns only from them (:class:`CurrentRuleSampler`).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, check_distribution_compatibility
from optuna.samplers import BaseSampler
from optuna.trial import FrozenTrial, TrialState

from wwtune.exceptions import ConfigError
from wwtune.ranking import earlier_rule_trials, ranked_trials
from wwtune.record import STUDY_LEGACY_RULE, STUDY_SCORE_RULE, json_safe

__all__ = [
    "CurrentRuleSampler",
    "check_config_change",
    "config_changes",
    "distribution_clash",
    "record_score_rule",
    "resumed_seed",
    "score_rule",
    "stored_trial_count",
]

#: the config entries that decide how a trained model is scored (its value, feasibility and α): a change to
#: any of them makes earlier values incomparable with new ones (the task, budget and search space do not)
SCORE_RULE_KEYS = (
    ("score",),
    ("analysis",),
    ("sanity",),
    ("objective", "alpha_band"),
    ("objective", "heldout"),
    ("objective", "loss_comparable"),
)


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


def score_rule(cfg: Mapping[str, Any]) -> str:
    """A short fingerprint of the config entries that decide a trial's score (:data:`SCORE_RULE_KEYS`):
    equal fingerprints, comparable values."""
    picked = {}
    for path in SCORE_RULE_KEYS:
        node: Any = cfg
        for key in path:
            node = node.get(key) if isinstance(node, Mapping) else None
        picked[".".join(path)] = json_safe(node)
    text = json.dumps(picked, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def record_score_rule(study: optuna.Study, previous: Any, rule: str) -> list[FrozenTrial]:
    """Before a run stores ``rule`` as the study's score rule: a study whose trials predate per-trial rules
    (no ``wwtune.score_rule``) and whose stored config ``previous`` scored by another rule gets that rule
    recorded for those trials. Returns the trials scored under an earlier rule (kept, not ranked)."""
    if previous is not None and STUDY_SCORE_RULE not in study.user_attrs:
        legacy = score_rule(previous)
        if legacy != rule and STUDY_LEGACY_RULE not in study.user_attrs:
            study.set_user_attr(STUDY_LEGACY_RULE, legacy)
    study.set_user_attr(STUDY_SCORE_RULE, rule)
    return earlier_rule_trials(study)


class _RankedView:
    """A study as the sampler of a changed-rule study sees it: only the trials of the current rule."""

    def __init__(self, study: optuna.Study) -> None:
        self._study = study

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)

    def _keep(self, trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
        ranked = {t.number for t in ranked_trials(self._study)}
        # a trial of this run has no rule stored until it starts: it is of the current rule
        return [t for t in trials if t.number in ranked or t.state == TrialState.RUNNING]

    def get_trials(self, deepcopy: bool = True, states: Any = None) -> list[FrozenTrial]:
        return self._keep(self._study.get_trials(deepcopy=deepcopy, states=states))

    def _get_trials(
        self, deepcopy: bool = True, states: Any = None, use_cache: bool = False
    ) -> list[FrozenTrial]:
        return self._keep(self._study._get_trials(deepcopy=deepcopy, states=states, use_cache=use_cache))

    @property
    def trials(self) -> list[FrozenTrial]:
        return self.get_trials()


class CurrentRuleSampler(BaseSampler):
    """Wraps a study's sampler so that it learns only from the trials of the current score rule (a study
    resumed with ``study.allow_config_change=true`` under another score): values computed by an earlier rule
    would mislead TPE, GP or CMA-ES. Everything else (seeding, trial hooks) is the wrapped sampler's."""

    def __init__(self, sampler: BaseSampler) -> None:
        self.sampler = sampler

    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return self.sampler.infer_relative_search_space(_RankedView(study), trial)  # type: ignore[arg-type]

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return self.sampler.sample_relative(_RankedView(study), trial, search_space)  # type: ignore[arg-type]

    def sample_independent(
        self, study: optuna.Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution
    ) -> Any:
        view = _RankedView(study)
        return self.sampler.sample_independent(view, trial, param_name, param_distribution)  # type: ignore[arg-type]

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.sampler.before_trial(study, trial)

    def after_trial(
        self, study: optuna.Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None
    ) -> None:
        self.sampler.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.sampler.reseed_rng()
