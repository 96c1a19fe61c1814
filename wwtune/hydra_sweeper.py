"""The work of the Hydra sweeper ``hydra/sweeper=wwtune``: an Optuna study over a user's own ``@hydra.main``
app, each trial one job of the app with the trial's parameters as overrides, the app's return value the
trial's value (``return wwtune.score_model(model)``, or a held-out metric with ``direction: maximize``).

The search space is hydra-optuna-sweeper's syntax, read by :func:`wwtune.search_space.parse_sweep_string`:
``hydra.sweeper.params`` in the app's config, and sweeps on the command line (``-m 'lr=interval(0.01, 0.5)'
'opt=choice(sgd, adam)' 'width=range(32, 128, 32)' 'wd=tag(log, interval(1e-6, 1e-2))'``; a comma list
``x=1,2,3`` is a choice); a command-line sweep of a key replaces that key's ``params`` entry. Plain
overrides (``epochs=3``) go to every job. The study is kept in ``storage`` (default: a journal file in the
sweep folder, which optuna-dashboard opens) and the best trial is written to
``<hydra.sweep.dir>/optimization_results.yaml``.

The plugin class lives in ``hydra_plugins/wwtune_sweeper`` (where Hydra looks for plugins); this module
is imported only when a sweep starts.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import optuna
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import OverrideType
from omegaconf import DictConfig, OmegaConf

from wwtune.diskio import atomic_write_text
from wwtune.exceptions import ConfigError
from wwtune.record import TrialWriter
from wwtune.search_space import SearchSpace, SearchSpaceError
from wwtune.storage import as_storage

__all__ = ["SAMPLERS", "sweep", "sweep_space"]

_logger = logging.getLogger(__name__)

#: ``hydra.sweeper.sampler`` names and the Optuna sampler each makes (seeded with ``hydra.sweeper.seed``)
SAMPLERS = ("tpe", "random", "cmaes", "gp", "grid")
_DIRECTIONS = ("minimize", "maximize")


def _key(override: Any) -> str:
    """The override's key as written, with its ``+``/``++`` prefix (``~`` deletions are refused)."""
    if override.type == OverrideType.DEL:
        raise ConfigError(f"{override.input_line!r}: a deletion cannot be swept.")
    return override.input_line.split("=", 1)[0].strip()


def sweep_space(
    params: Mapping[str, Any] | None, arguments: Sequence[str]
) -> tuple[dict[str, str], dict[str, Any], list[str]]:
    """Split the sweep's inputs: ``(keys, space, fixed)``.

    ``keys`` maps each searched parameter's name to the override key it is written to (``+x`` adds a key
    the app's config lacks); ``space`` is the search space (``hydra.sweeper.params``, then the command
    line's sweeps, which replace a key's entry); ``fixed`` are the plain overrides every job gets.
    """
    keys: dict[str, str] = {}
    space: dict[str, Any] = {}
    for key, spec in (params or {}).items():
        name = str(key).lstrip("+")
        keys[name], space[name] = str(key), spec
    fixed: list[str] = []
    for override in OverridesParser.create().parse_overrides(list(arguments)):
        if not override.is_sweep_override():
            fixed.append(override.input_line)
            continue
        key = _key(override)
        name = key.lstrip("+")
        keys[name], space[name] = key, override.input_line.split("=", 1)[1]  # the sweep as written
    return keys, space, fixed


def _override_value(value: Any) -> str:
    """A suggested value as Hydra override text (strings quoted, so ``a b`` or ``1e-3`` stay strings)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    text = str(value).replace("\\", "\\\\").replace("'", "\\'")
    return f"'{text}'"


def _sampler(name: str, seed: Any, space: SearchSpace) -> optuna.samplers.BaseSampler:
    if name not in SAMPLERS:
        raise ConfigError(f"hydra.sweeper.sampler must be one of {list(SAMPLERS)} but got {name!r}.")
    seed = None if seed is None else int(seed)
    if name == "grid":
        return optuna.samplers.GridSampler(space.grid(), seed=seed)
    make = {
        "tpe": optuna.samplers.TPESampler,
        "random": optuna.samplers.RandomSampler,
        "cmaes": optuna.samplers.CmaEsSampler,
        "gp": optuna.samplers.GPSampler,
    }[name]
    return make(seed=seed)


def _directions(direction: Any) -> list[str]:
    directions = [direction] if isinstance(direction, str) else list(direction or ())
    if not directions or any(d not in _DIRECTIONS for d in directions):
        raise ConfigError(
            f"hydra.sweeper.direction must be {' or '.join(_DIRECTIONS)} (or a list of them) but got "
            f"{direction!r}."
        )
    return directions


def _values(returned: Any, n: int) -> list[float] | str:
    """The trial's values from what the app returned, or why they cannot be (a string)."""
    items = list(returned) if isinstance(returned, (list, tuple)) else [returned]
    try:
        values = [float(v) for v in items]
    except (TypeError, ValueError):
        return f"the app returned {returned!r}; return a number (e.g. wwtune.score_model(model))"
    if len(values) != n:
        return f"the app returned {len(values)} value(s) but hydra.sweeper.direction has {n}"
    if not all(math.isfinite(v) for v in values):
        return f"the app returned a non-finite value {returned!r}"
    return values


def sweep(settings: Mapping[str, Any], config: DictConfig, launcher: Any, arguments: Sequence[str]) -> Any:
    """Run the study: ``settings`` is the ``hydra.sweeper`` node (less ``_target_``), ``config`` the
    composed config, ``launcher`` Hydra's launcher, ``arguments`` the command line's overrides. Returns
    the best trial (None when no trial completed)."""
    settings = (
        OmegaConf.to_container(settings, resolve=True) if isinstance(settings, DictConfig) else settings
    )
    directions = _directions(settings.get("direction", "minimize"))
    n_trials, n_jobs = int(settings.get("n_trials", 20)), int(settings.get("n_jobs", 1))
    if n_trials < 1 or n_jobs < 1:
        raise ConfigError(f"hydra.sweeper.n_trials and n_jobs must be >= 1 but got {n_trials}, {n_jobs}.")
    keys, params, fixed = sweep_space(settings.get("params"), arguments)
    try:
        space = SearchSpace(params)
    except SearchSpaceError as exc:
        raise ConfigError(f"hydra.sweeper.params / command-line sweeps: {exc}") from None
    if not space.names:
        raise ConfigError(
            "hydra/sweeper=wwtune has nothing to search: set hydra.sweeper.params or pass a sweep such as "
            "'lr=interval(0.01, 0.5)' with -m."
        )
    sweep_dir = Path(str(config.hydra.sweep.dir))
    name = settings.get("study_name") or str(config.hydra.job.name)
    storage = settings.get("storage") or str(sweep_dir / "journal.log")
    sweep_dir.mkdir(parents=True, exist_ok=True)
    if "://" not in storage:  # a journal file: created here, so a first sweep and a resumed one read alike
        Path(storage).parent.mkdir(parents=True, exist_ok=True)
        Path(storage).touch()
    study = optuna.create_study(
        study_name=name,
        storage=as_storage(storage),
        sampler=_sampler(str(settings.get("sampler", "tpe")), settings.get("seed", 0), space),
        directions=directions,
        load_if_exists=True,
    )
    _logger.info("wwtune sweeper: study %r (%s), %d trials, searching %s", name, storage, n_trials, params)
    job = 0
    while job < n_trials:
        trials = [study.ask() for _ in range(min(n_jobs, n_trials - job))]
        batch = []
        for trial in trials:
            values, _ = space.suggest(trial)
            batch.append([*fixed, *(f"{keys[k]}={_override_value(v)}" for k, v in values.items())])
        returns = launcher.launch(batch, initial_job_idx=job)
        for trial, ret in zip(trials, returns, strict=True):
            try:
                outcome = _values(ret.return_value, len(directions))
            except Exception as exc:  # noqa: BLE001 - the app raised: this trial fails, the study goes on
                outcome = f"the app raised {type(exc).__name__}: {exc}"
            if isinstance(outcome, str):
                TrialWriter(trial).fail_reason(outcome)
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
                _logger.warning("Trial %d failed: %s", trial.number, outcome)
            else:
                study.tell(trial, outcome)
        job += len(trials)
    return _write_results(study, sweep_dir)


def _write_results(study: optuna.Study, sweep_dir: Path) -> Any:
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not complete:
        _logger.warning("wwtune sweeper: no trial completed (see each job's log).")
        return None
    if len(study.directions) == 1:
        best = study.best_trial
        results = {"name": study.study_name, "best_params": best.params, "best_value": best.value}
    else:
        best = study.best_trials
        results = {
            "name": study.study_name,
            "solutions": [{"params": t.params, "values": t.values} for t in best],
        }
    atomic_write_text(
        sweep_dir / "optimization_results.yaml", OmegaConf.to_yaml(results), "the sweep results"
    )
    _logger.info("wwtune sweeper: best %s", results)
    return best
