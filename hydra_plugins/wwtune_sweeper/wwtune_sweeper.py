"""The Hydra sweeper plugin ``wwtune``: Hydra finds it here (the ``hydra_plugins`` namespace package).

This module stays light (every Hydra app in the environment imports it at start-up): the config node and a
thin :class:`WWTuneSweeper`; the work is in :mod:`wwtune.hydra_sweeper`, imported when a sweep starts.
"""

# no `from __future__ import annotations`: Hydra's plugin scanner runs this module before it is in
# sys.modules, where dataclasses cannot resolve string annotations
from dataclasses import dataclass, field
from typing import Any, Dict, Optional  # noqa: UP035 - OmegaConf reads these annotations

from hydra.core.config_store import ConfigStore
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


@dataclass
class WWTuneSweeperConf:
    """``hydra.sweeper`` of ``hydra/sweeper=wwtune`` (keys as hydra-optuna-sweeper's where they exist)."""

    _target_: str = "hydra_plugins.wwtune_sweeper.wwtune_sweeper.WWTuneSweeper"
    #: minimize | maximize (what the app returns), or a list of them for several returned values
    direction: Any = "minimize"
    #: the Optuna study's name; null: the app's job name
    study_name: Any = None
    #: an Optuna storage URL or a journal file path; null: ``<hydra.sweep.dir>/journal.log``
    storage: Any = None
    n_trials: int = 20
    #: trials launched together (one launcher batch)
    n_jobs: int = 1
    #: tpe | random | cmaes | gp | grid
    sampler: str = "tpe"
    seed: Any = 0
    #: the search space: ``{key: "interval(0, 1)"}``, ``choice(a, b)``, ``range(1, 9)``, ``tag(log, ...)``
    params: Dict[str, Any] = field(default_factory=dict)  # noqa: UP006


ConfigStore.instance().store(group="hydra/sweeper", name="wwtune", node=WWTuneSweeperConf, provider="wwtune")


class WWTuneSweeper(Sweeper):
    """Runs ``n_trials`` jobs of the app, each with a trial's parameters as overrides; the app's return
    value is the trial's value (see :func:`wwtune.hydra_sweeper.sweep`)."""

    def __init__(self, **settings: Any) -> None:
        self.settings = settings
        self.config: Optional[DictConfig] = None  # noqa: UP045
        self.launcher: Any = None
        self.hydra_context: Optional[HydraContext] = None  # noqa: UP045

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        from hydra.core.plugins import Plugins  # lazy: Hydra's plugin registry, once a sweep starts

        self.config, self.hydra_context = config, hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: list[str]) -> Any:
        from wwtune.hydra_sweeper import sweep  # lazy: wwtune (and torch) only when a sweep runs

        assert self.config is not None and self.launcher is not None
        return sweep(self.settings, self.config, self.launcher, arguments)
