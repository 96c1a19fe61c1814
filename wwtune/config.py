"""Checking the composed configuration before any training: unknown keys and bad values fail here.

:func:`validate_config` raises :class:`ConfigError` naming the key, the value and what is allowed;
:func:`make_score` builds the run's one :class:`~wwtune.score.Score` from the ``score`` section;
:func:`load_task` imports the ``objective.task`` function.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import logging
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any

from hydra.utils import get_object

from wwtune.score import Score
from wwtune.search_space import SearchSpace
from wwtune.spectral import analyze
from wwtune.storage import KNOWN_KEYS as STORAGE_KEYS
from wwtune.storage import kinds as storage_kinds

__all__ = ["KNOWN_KEYS", "ConfigError", "load_task", "make_score", "unknown_keys", "validate_config"]

_logger = logging.getLogger(__name__)

#: Allowed keys of each section of the composed config. A teammate adding a section adds it here.
KNOWN_KEYS: dict[str, tuple[str, ...]] = {
    "": (
        "mode",
        "advise",
        "study",
        "objective",
        "search_space",
        "sampler",
        "pruner",
        "storage",
        "score",
        "sanity",
        "analysis",
        "worker_id",
    ),
    "study": (
        "name",
        "n_trials",
        "seed",
        "direction",
        "timeout",
        "studies_dir",
        "progress_bar",
        "torch_threads",
        "report",
        "artifacts",
        "spectra",
    ),
    "objective": ("task", "budget", "report_every", "data_fraction", "fixed", "heldout"),
    "objective.heldout": ("name", "direction"),
    "score": ("kind", "band", "min_evals", "weights", "failed_penalty", "tie_break"),
    "storage": STORAGE_KEYS,
    "sanity": ("check_weights", "min_loss_drop", "on_violation"),
}
MODES = ("optimize", "advise", "report")
ON_VIOLATION = ("fail", "infeasible")
#: keys Hydra reads in a ``_target_`` node besides the target's own arguments
HYDRA_KEYS = ("_target_", "_convert_", "_recursive_", "_partial_", "_args_")


class ConfigError(ValueError):
    """The composed configuration is invalid; the message names the key, the value and what is allowed."""


def unknown_keys(section: str, given: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(given) - set(allowed))
    if not unknown:
        return
    where = f"'{section}'" if section else "the top level"
    hints = []
    for key in unknown:
        close = difflib.get_close_matches(key, allowed, n=1)
        hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    raise ConfigError(f"Unknown key(s) in {where}: {', '.join(hints)}; allowed: {sorted(allowed)}.")


def _check_target(section: str, node: Mapping[str, Any]) -> None:
    """A ``_target_`` node's keys must be arguments of the target (no silently ignored options)."""
    target = node.get("_target_")
    if not isinstance(target, str):
        raise ConfigError(
            f"'{section}' needs a '_target_' (e.g. optuna.samplers.TPESampler) but got {target!r}."
        )
    try:
        obj = get_object(target)
    except Exception as exc:  # noqa: BLE001 - any import failure is a config error here
        raise ConfigError(f"'{section}._target_' {target!r} cannot be imported: {exc}") from None
    try:
        params = inspect.signature(obj).parameters
    except (TypeError, ValueError):
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    allowed = tuple(k for k in params if k != "self") + HYDRA_KEYS
    unknown_keys(section, node, allowed)
    _check_types(section, node, params)


def _check_types(section: str, node: Mapping[str, Any], params: Mapping[str, inspect.Parameter]) -> None:
    """Values of parameters annotated (or defaulting to) one plain kind (bool, int, float, str, optionally
    None) must be of that kind: a typo such as ``n_startup_trials=abc`` or ``multivariate=maybe`` fails
    here, not inside every trial."""
    for key, value in node.items():
        param = params.get(key)
        if param is None or value is None or key in HYDRA_KEYS:
            continue
        kind = int if key == "seed" else _plain_kind(param)
        if kind is not None:
            _check_value(f"{section}.{key}", value, kind)


def _plain_kind(param: inspect.Parameter) -> type | None:
    kinds = {"bool": bool, "int": int, "float": float, "str": str}
    annotation = param.annotation
    if annotation is inspect.Parameter.empty:
        return type(param.default) if type(param.default) in kinds.values() else None
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
    text = text.replace(" ", "").replace("typing.", "")
    if text.startswith("Optional[") and text.endswith("]"):
        text = text[len("Optional[") : -1]
    names = set(text.split("|")) - {"None"}
    return kinds.get(names.pop()) if len(names) == 1 else None


_KIND_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def _check_value(key: str, value: Any, kind: type) -> None:
    if kind is bool:
        ok = isinstance(value, bool)
    elif kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    else:
        ok = isinstance(value, kind)
    if not ok:
        raise ConfigError(f"{key} must be {_KIND_NAMES[kind]} but got {value!r}.")


def validate_config(cfg: Mapping[str, Any]) -> None:
    """Check the composed config: every key known, every value in range. Raises :class:`ConfigError`."""
    unknown_keys("", cfg, KNOWN_KEYS[""])
    for section in ("study", "objective", "score", "storage", "sanity"):
        node = cfg.get(section)
        if not isinstance(node, Mapping):
            raise ConfigError(f"Config section '{section}' is missing or not a mapping (got {node!r}).")
        unknown_keys(section, node, KNOWN_KEYS[section])
    mode = cfg.get("mode", "optimize")
    if mode not in MODES:
        raise ConfigError(f"mode must be one of {list(MODES)} but got {mode!r}.")
    study, objective, sanity = cfg["study"], cfg["objective"], cfg["sanity"]
    _positive_int("study.n_trials", study.get("n_trials"))
    _positive_int("objective.budget", objective.get("budget"))
    _positive_int("objective.report_every", objective.get("report_every", 1))
    if not isinstance(study.get("seed"), int) or isinstance(study.get("seed"), bool):
        raise ConfigError(f"study.seed must be an integer but got {study.get('seed')!r}.")
    if study.get("direction", "auto") not in ("auto", "minimize", "maximize"):
        raise ConfigError(
            f"study.direction must be one of ['auto', 'minimize', 'maximize'] but got {study['direction']!r}."
        )
    threads = study.get("torch_threads")
    if threads is not None:
        _positive_int("study.torch_threads", threads)
    for key in ("progress_bar", "report", "artifacts", "spectra"):
        _check_value(f"study.{key}", study.get(key, False), bool)
    _check_value("sanity.check_weights", sanity.get("check_weights", True), bool)
    timeout = study.get("timeout")
    if timeout is not None and (not isinstance(timeout, (int, float)) or timeout <= 0):
        raise ConfigError(f"study.timeout must be a positive number of seconds or null but got {timeout!r}.")
    frac = objective.get("data_fraction", 1.0)
    if not isinstance(frac, (int, float)) or not 0.0 < frac <= 1.0:
        raise ConfigError(f"objective.data_fraction must be in (0, 1] but got {frac!r}.")
    if not isinstance(objective.get("task"), str) or ":" not in objective["task"]:
        raise ConfigError(
            "objective.task must be 'module:function' (e.g. my_pkg.my_mod:train) "
            f"but got {objective.get('task')!r}."
        )
    fixed = objective.get("fixed") or {}
    if not isinstance(fixed, Mapping):
        raise ConfigError(f"objective.fixed must be a mapping of hyperparameter values but got {fixed!r}.")
    heldout = objective.get("heldout")
    if heldout is not None:
        if not isinstance(heldout, Mapping):
            raise ConfigError(f"objective.heldout must be {{name, direction}} or null but got {heldout!r}.")
        unknown_keys("objective.heldout", heldout, KNOWN_KEYS["objective.heldout"])
        if heldout.get("direction") not in ("minimize", "maximize"):
            raise ConfigError(
                "objective.heldout.direction must be one of ['minimize', 'maximize'] "
                f"but got {heldout.get('direction')!r}."
            )
    if sanity.get("on_violation", "fail") not in ON_VIOLATION:
        raise ConfigError(
            f"sanity.on_violation must be one of {list(ON_VIOLATION)} but got {sanity.get('on_violation')!r}."
        )
    drop = sanity.get("min_loss_drop", 0.0)
    if drop is not None and (not isinstance(drop, (int, float)) or not 0.0 <= drop < 1.0):
        raise ConfigError(f"sanity.min_loss_drop must be in [0, 1) or null but got {drop!r}.")
    for section in ("sampler", "pruner"):
        node = cfg.get(section)
        if not isinstance(node, Mapping):
            raise ConfigError(f"Config section '{section}' is missing or not a mapping (got {node!r}).")
        _check_target(section, node)
    analysis = cfg.get("analysis") or {}
    analyze_params = inspect.signature(analyze).parameters
    allowed = tuple(k for k in analyze_params if k not in ("source", "keep_evals"))
    unknown_keys("analysis", analysis, allowed)
    _check_types("analysis", analysis, analyze_params)
    try:
        score = make_score(cfg)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"score: {exc}") from None
    try:
        space = SearchSpace.from_config(cfg.get("search_space"))
    except (ValueError, TypeError) as exc:
        raise ConfigError(str(exc)) from None
    kind = cfg["storage"].get("kind", "journal")
    if kind not in storage_kinds():
        raise ConfigError(f"storage.kind must be one of {storage_kinds()} but got {kind!r}.")
    clash = sorted(set(fixed) & set(space.names + list(space.constants)))
    if clash:  # fixed values double as a task's untuned defaults (the advisor reads them); search wins
        _logger.info("Searched hyperparameter(s) %s override their objective.fixed values.", clash)
    wanted = study.get("direction", "auto")
    if wanted != "auto" and wanted != score.direction:
        raise ConfigError(
            f"study.direction={wanted!r} contradicts score kind {score.kind!r}, which must be "
            f"{score.direction}d; set study.direction=auto."
        )
    if score.kind == "heldout" and heldout is None:
        raise ConfigError(
            "score.kind=heldout needs objective.heldout {name, direction}, but the objective has none."
        )


def _positive_int(name: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{name} must be a positive integer but got {value!r}.")


def make_score(cfg: Mapping[str, Any]) -> Score:
    heldout = cfg["objective"].get("heldout") or {}
    return Score.from_config(cfg["score"], heldout_direction=heldout.get("direction", "maximize"))


def load_task(spec: str) -> Callable[..., Any]:
    """Import ``"module:function"``; the current directory is importable (for a user's own tasks)."""
    module_name, _, func_name = spec.partition(":")
    if not module_name or not func_name:
        raise ConfigError(f"objective.task must be 'module:function' but got {spec!r}.")
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"objective.task {spec!r}: cannot import module {module_name!r}: {exc}") from None
    fn = getattr(module, func_name, None)
    if not callable(fn):
        public = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_"))
        raise ConfigError(
            f"objective.task {spec!r}: module {module_name!r} has no function {func_name!r};"
            f" callables there: {public}."
        )
    return fn
