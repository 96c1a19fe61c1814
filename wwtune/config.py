"""Checking the composed configuration before any training: unknown keys and bad values fail here.

The keys and their value rules are declared once, in :mod:`wwtune.schema`; :func:`validate_config` applies
them and the rules that join sections (a score direction against ``study.direction``, ``score=heldout``
against ``objective.heldout``, ``_target_`` nodes against their target's signature). It raises
:class:`ConfigError` naming the key, the value and what is allowed. :func:`load_config` parses a config
once into a :class:`~wwtune.schema.StudyConfig`; :func:`make_score` (from :mod:`wwtune.factories`, beside
the storage, sampler and pruner) builds the run's one :class:`~wwtune.score.Score`;
:func:`analysis_kwargs` turns ``analysis`` into :func:`wwtune.analyze`'s keyword arguments;
:func:`load_task` imports the ``objective.task`` function.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any

from hydra.utils import get_object

from wwtune.deprecation import section_of
from wwtune.factories import make_score
from wwtune.pick import PickRule
from wwtune.schema import (
    ANALYZE_ARGS,
    ConfigError,
    StudyConfig,
    analysis_keys,
    check_section,
    check_value,
    defaults,
    normalize_config,
    unknown_keys,
)
from wwtune.score import Score
from wwtune.search_space import SearchSpace
from wwtune.spectral import AnalysisOptions
from wwtune.storage import KNOWN_KEYS as STORAGE_KEYS
from wwtune.storage import kinds as storage_kinds

__all__ = [
    "ConfigError",
    "analysis_kwargs",
    "analysis_options",
    "load_config",
    "load_task",
    "loss_comparable",
    "make_score",
    "normalize_config",
    "unknown_keys",
    "validate_config",
]

_logger = logging.getLogger(__name__)

#: keys Hydra reads in a ``_target_`` node besides the target's own arguments
HYDRA_KEYS = ("_target_", "_convert_", "_recursive_", "_partial_", "_args_")


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
            check_value(f"{section}.{key}", value, kind)


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


def validate_config(cfg: Mapping[str, Any]) -> None:
    """Check the composed config: every key known, every value in range. Raises :class:`ConfigError`.

    Deprecated key names (:data:`wwtune.schema.DEPRECATED`) are accepted with a DeprecationWarning. A
    :class:`~wwtune.schema.StudyConfig` (from :func:`load_config`) was checked when it was built.
    """
    if isinstance(cfg, StudyConfig):
        return
    _check(normalize_config(cfg))


def _check(cfg: Mapping[str, Any]) -> None:
    """:func:`validate_config`'s checks on a normalised config."""
    check_section("", cfg)
    for section in ("study", "objective", "score", "sanity"):
        check_section(section, cfg[section])
    unknown_keys("storage", cfg["storage"], STORAGE_KEYS)
    heldout = cfg["objective"].get("heldout")
    if heldout is not None:
        check_section("objective.heldout", heldout)
    if cfg.get("advise") is not None:
        check_section("advise", cfg["advise"])
    if cfg.get("pick") is not None:
        check_section("pick", cfg["pick"])
    for section in ("sampler", "pruner"):
        node = cfg.get(section)
        if not isinstance(node, Mapping):
            raise ConfigError(f"Config section '{section}' is missing or not a mapping (got {node!r}).")
        _check_target(section, node)
    analysis = cfg.get("analysis") or {}
    unknown_keys("analysis", analysis, analysis_keys())
    _check_types("analysis", analysis, _analysis_params())
    try:
        score = make_score(cfg["score"], cfg["objective"])
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"score: {exc}") from None
    try:
        make_pick(cfg.get("pick"), score)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"pick: {exc}") from None
    try:
        space = SearchSpace.from_config(cfg.get("search_space"))
    except (ValueError, TypeError) as exc:
        raise ConfigError(str(exc)) from None
    kind = cfg["storage"].get("kind", "journal")
    if kind not in storage_kinds():
        raise ConfigError(f"storage.kind must be one of {storage_kinds()} but got {kind!r}.")
    fixed = cfg["objective"].get("fixed") or {}
    clash = sorted(set(fixed) & set(space.names + list(space.constants)))
    if clash:  # fixed values double as a task's untuned defaults (the advisor reads them); search wins
        _logger.info("Searched hyperparameter(s) %s override their objective.fixed values.", clash)
    wanted = cfg["study"].get("direction", "auto")
    if wanted != "auto" and wanted != score.direction:
        raise ConfigError(
            f"study.direction={wanted!r} contradicts score kind {score.kind!r}, which must be "
            f"{score.direction}d; set study.direction=auto."
        )
    if score.kind == "heldout" and heldout is None:
        raise ConfigError(
            "score.kind=heldout needs objective.heldout {name, direction}, but the objective has none."
        )
    if score.uses_train_loss and not loss_comparable(cfg["objective"]):
        raise ConfigError(
            f"score.kind={score.kind} ranks trials by their training loss, but this task declares its loss "
            "not comparable across trials (objective.loss_comparable=false or @task(loss_comparable=False));"
            " use score=band or score=heldout."
        )
    if score.multi_objective:
        pruner_target = str(cfg["pruner"].get("_target_", ""))
        if not pruner_target.endswith("NopPruner"):
            raise ConfigError(
                f"score.kind=pareto is a two-objective study, which Optuna cannot prune; use pruner=none "
                f"(got pruner {pruner_target!r}), or a single-objective score such as score=fit_band."
            )
        sampler_name = str(cfg["sampler"].get("_target_", "")).rsplit(".", 1)[-1]
        if sampler_name not in ("TPESampler", "NSGAIISampler", "NSGAIIISampler", "RandomSampler"):
            raise ConfigError(
                "score.kind=pareto needs a multi-objective sampler (tpe, nsga2, random) "
                f"but got {sampler_name}."
            )


def _analysis_params() -> dict[str, inspect.Parameter]:
    """wwtune.analyze's parameters under their ``analysis`` names."""
    rename = {v: k for k, v in ANALYZE_ARGS.items()}
    return {rename.get(k, k): p for k, p in inspect.signature(AnalysisOptions).parameters.items()}


def load_config(raw: Mapping[str, Any]) -> StudyConfig:
    """The composed config ``raw`` normalised (deprecated key names renamed, with a warning) and validated
    (:func:`validate_config`), once: a :class:`~wwtune.schema.StudyConfig`, which every later step takes as
    it is (``load_config(config) is config``). Raises :class:`~wwtune.exceptions.ConfigError`."""
    if isinstance(raw, StudyConfig):
        return raw
    cfg = normalize_config(raw)
    _check(cfg)
    return StudyConfig(cfg)


def analysis_kwargs(analysis: Mapping[str, Any] | None, score: Score | None = None) -> dict[str, Any]:
    """The ``analysis`` section as :func:`wwtune.analyze` keyword arguments. With ``score``, a missing
    ``min_evals_analysed`` defaults to ``min(8, score.min_evals)`` (a layer the score counts is analysed)."""
    section = section_of(analysis or {}, "analysis") or {}
    analysis = dict(normalize_config({"analysis": section})["analysis"])  # deprecated names, with a warning
    out = {ANALYZE_ARGS.get(k, k): v for k, v in analysis.items()}
    if score is not None:
        out.setdefault("min_evals", min(8, score.min_evals))
    return out


def analysis_options(analysis: Mapping[str, Any] | None, score: Score | None = None) -> AnalysisOptions:
    """:func:`analysis_kwargs` as the validated :class:`~wwtune.spectral.analyze.AnalysisOptions`."""
    return AnalysisOptions.of(**analysis_kwargs(analysis, score))


def make_pick(pick: Mapping[str, Any] | None, score: Score) -> PickRule:
    """The run's :class:`~wwtune.pick.PickRule` from the ``pick`` section (absent: the schema's defaults),
    with the band and layer rule of the run's ``score``."""
    node = {**defaults("pick"), **dict(pick or {})}
    return PickRule.from_config({**node, "min_evals_counted": score.min_evals}, band=score.band)


def loss_comparable(objective: Mapping[str, Any], task_fn: Callable[..., Any] | None = None) -> bool:
    """Whether the task's reported training loss can be compared across trials (the training-loss pick
    and the fit scores need it): ``objective.loss_comparable`` when set, else the task's
    ``@task(loss_comparable=...)`` declaration, else True."""
    objective = section_of(objective, "objective")
    value = objective.get("loss_comparable")
    if value is not None:
        return bool(value)
    if task_fn is None:
        try:
            task_fn = load_task(objective["task"])
        except ConfigError:
            return True
    return bool(getattr(task_fn, "loss_comparable", True))


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
