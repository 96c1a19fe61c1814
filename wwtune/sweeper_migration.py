"""One-line messages for hydra-optuna-sweeper configs and overrides, naming what to write in wwtune instead.

hydra-optuna-sweeper cannot be installed beside Optuna ≥ 4, so its users move over with configs that
select ``hydra/sweeper: optuna``, fill ``hydra.sweeper.params`` or pass sweeps (``x=interval(0, 1)``) to
``-m``. Hydra alone would fail on these with its own traceback, or ignore ``hydra.sweeper.params``
silently; :func:`check_overrides` (before Hydra starts) and :func:`check_sweeper_node` (on the composed
``hydra.sweeper``) turn them into one :class:`SweeperMoved` message with the converted
``search_space.params`` line. The sweeper's string syntax itself is read by
:func:`wwtune.search_space.parse_sweep_string` unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from wwtune.exceptions import SweeperMoved

__all__ = [
    "MARKER",
    "OptunaSweeperMoved",
    "SweeperMoved",
    "check_composed",
    "check_overrides",
    "check_sweeper_node",
    "converted_params",
]

#: Key of ``conf/hydra/sweeper/optuna.yaml``: its presence says the user selected the sweeper.
MARKER = "wwtune_moved_from"

#: hydra.sweeper keys → their wwtune equivalents.
EQUIVALENTS = {
    "params": "search_space.params",
    "search_space": "search_space.params",
    "n_trials": "study.n_trials",
    "direction": "study.direction",
    "study_name": "study.name",
    "storage": "storage=journal|sqlite|postgres",
    "sampler": "sampler=tpe|random|cmaes|gp|grid (sampler.seed follows study.seed)",
    "n_jobs": "several workers: worker_id=0,1 hydra/launcher=joblib",
    "max_failure_rate": "(none: one failed trial never ends a wwtune study)",
    "custom_search_space": "search_space.params with 'when' conditions",
}


class OptunaSweeperMoved:
    """``_target_`` of the shipped ``hydra/sweeper/optuna`` config: a multirun that reaches Hydra's sweeper
    instantiation with it fails with the migration message (the CLI normally says so earlier)."""

    def __init__(self, **node: Any) -> None:
        raise SweeperMoved(check_sweeper_node(node) or _selected_message({}))


def _leaf(key: str) -> str:
    return key.lstrip("+~").rsplit(".", 1)[-1]


def converted_params(params: Mapping[str, Any]) -> str:
    """``search_space.params`` as one YAML flow line: ``search_space: {params: {x: "interval(0, 1)"}}``."""
    items = ", ".join(f"{_leaf(str(k))}: {_quote(v)}" for k, v in params.items())
    return f"search_space: {{params: {{{items}}}}}"


def _quote(value: Any) -> str:
    if isinstance(value, str):
        return '"' + value.replace('"', '\\"') + '"'
    return str(value)


def _command_line(params: Mapping[str, Any]) -> str:
    return " ".join(f"'++search_space.params.{_leaf(str(k))}={_quote(v)}'" for k, v in params.items())


def _params_message(where: str, params: Mapping[str, Any]) -> str:
    return (
        f"{where} is hydra-optuna-sweeper's search space, which wwtune does not read; wwtune's equivalent is "
        f"search_space.params: write `{converted_params(params)}` in your study or search_space config, or "
        f"pass {_command_line(params)} (without -m; parameter names are the task's params keys)."
    )


def _settings(node: Mapping[str, Any]) -> str:
    """The sweeper settings the node sets, each with its wwtune equivalent ('' when none)."""
    moved = [
        f"{k} → {EQUIVALENTS[k]}"
        for k in node
        if k in EQUIVALENTS and k not in ("params", "sampler") and node.get(k) not in (None, {}, [])
    ]
    sampler = node.get("sampler")
    if isinstance(sampler, Mapping) and sampler:
        chosen = sampler.get("wwtune_sampler")
        known = ("tpe", "random", "cmaes", "gp", "grid")
        moved.append(
            f"sampler → sampler={chosen}" if chosen in known else f"sampler → {EQUIVALENTS['sampler']}"
        )
    return f" Its settings map to: {'; '.join(moved)}." if moved else ""


def _selected_message(node: Mapping[str, Any]) -> str:
    return (
        "hydra/sweeper=optuna (hydra-optuna-sweeper) is not used by wwtune, which runs the Optuna study "
        "itself: drop the hydra/sweeper override, put the search space under search_space.params (same "
        'syntax, e.g. search_space: {params: {x: "interval(-5.0, 5.0)"}}) and run without -m.'
        + _settings(node)
    )


def check_sweeper_node(node: Mapping[str, Any] | None) -> str | None:
    """The message for a composed ``hydra.sweeper`` node that carries sweeper settings, or None."""
    if not node:
        return None
    params = node.get("params")
    if params:
        return _params_message("hydra.sweeper.params", params) + _settings(node)
    space = node.get("search_space")
    if space:  # the sweeper's Hydra 1.1 dict form: {name: {type, low, high, ...}}, wwtune's dict form too
        return _params_message("hydra.sweeper.search_space", space) + _settings(node)
    if node.get(MARKER):
        return _selected_message(node)
    return None


def check_composed(args: Sequence[str]) -> str | None:
    """With ``-m``: the message for a ``hydra.sweeper`` that the configs (not the command line) fill, or None.

    (A single run checks the composed ``hydra.sweeper`` in the task function; a multirun would reach
    Hydra's sweeper first.)
    """
    if not any(a in ("-m", "--multirun") for a in args):
        return None
    # lazy: Hydra's parser and the config only when the check runs
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    parser = OverridesParser.create()
    overrides = []
    for a in args:
        if "=" not in a or a.startswith("-"):
            continue
        try:
            if parser.parse_overrides([a])[0].is_sweep_override():
                continue
        except Exception:  # noqa: BLE001 - Hydra reports its own parse errors
            continue
        overrides.append(a)
    try:
        GlobalHydra.instance().clear()
        with initialize_config_module(config_module="wwtune.conf", version_base="1.3"):
            cfg = compose(config_name="config", overrides=overrides, return_hydra_config=True)
        node = OmegaConf.to_container(cfg.hydra.sweeper, resolve=False)
    except Exception:  # noqa: BLE001 - any other config problem: Hydra's own message follows
        return None
    finally:
        GlobalHydra.instance().clear()
    return check_sweeper_node(node)  # type: ignore[arg-type]


def check_overrides(args: Sequence[str]) -> str | None:
    """The message for command-line overrides written for hydra-optuna-sweeper, or None.

    Caught: selecting the sweeper (``hydra/sweeper=optuna``), any ``hydra.sweeper.*`` key, and with
    ``-m``/``--multirun`` a sweep that Hydra's own sweeper cannot run (``interval(...)``, tagged sweeps) or
    that sweeps a key outside wwtune's config sections (``-m lr=choice(0.1, 0.01)``).
    """
    plain = [a for a in args if "=" in a and not a.startswith("-")]
    for arg in plain:
        key, _, value = arg.partition("=")
        name = key.lstrip("+~")
        if name == "hydra/sweeper" and value == "wwtune":
            return (
                "hydra/sweeper=wwtune tunes your own @hydra.main app (docs/hydra-sweeper.md); "
                "`python -m wwtune` runs its Optuna study itself: drop the override and put the search "
                "space under search_space.params."
            )
        if name == "hydra/sweeper" and value != "basic":
            return _selected_message({})
        if name.startswith("hydra.sweeper.params."):
            return _params_message(f"{name}=", {name[len("hydra.sweeper.params.") :]: value})
        if name.startswith("hydra.sweeper."):
            leaf = name[len("hydra.sweeper.") :].split(".", 1)[0]
            target = EQUIVALENTS.get(leaf, "no wwtune equivalent; see `python -m wwtune --help`")
            return f"{name} is a hydra-optuna-sweeper setting, which wwtune does not read; use {target}."
    if not any(a in ("-m", "--multirun") for a in args):
        return None
    # lazy: Hydra's parser and the config only when the check runs
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import IntervalSweep
    from hydra.errors import HydraException

    # lazy: Hydra's parser and the config only when the check runs
    from wwtune.schema import SCHEMA

    # a multirun over wwtune's own sections (`-m worker_id=0,1`, `-m study.seed=0,1`) is Hydra's own job
    sections = (*SCHEMA[""], "hydra")
    parser = OverridesParser.create()
    sweeps: dict[str, str] = {}
    for arg in plain:
        try:
            override = parser.parse_overrides([arg])[0]
        except HydraException:
            continue  # Hydra reports its own parse errors
        if not override.is_sweep_override():
            continue
        key = override.get_key_element().lstrip("+~")
        value = override.value()
        tagged = bool(getattr(value, "tags", None))
        if isinstance(value, IntervalSweep) or tagged or key.split(".", 1)[0] not in sections:
            sweeps[key] = arg.partition("=")[2]
    if not sweeps:
        return None
    return _params_message("-m " + " ".join(f"{k}={v}" for k, v in sweeps.items()), sweeps)
