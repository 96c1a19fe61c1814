"""The configuration schema: every section's keys, declared once, with their defaults and value rules.

:data:`SCHEMA` maps a section (``""`` is the top level, ``"objective.heldout"`` a nested one) to its keys;
each :class:`Key` says its default (:data:`REQUIRED` when there is none) and how its value is checked.
:func:`check_section` applies one section of it, :func:`normalize_config` accepts the deprecated key names
of :data:`DEPRECATED`. Two sections are declared by what they configure: ``analysis`` takes the keyword
arguments of :func:`wwtune.analyze` (:func:`analysis_keys`), ``storage`` the keys of
:data:`wwtune.storage.KNOWN_KEYS`; ``sampler`` and ``pruner`` are ``_target_`` nodes checked against
their target's signature (:mod:`wwtune.config`).

A new config key: add a :class:`Key` to its section here and to the YAML in ``conf/`` that sets it.
"""

from __future__ import annotations

import difflib
import math
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from wwtune.exceptions import ConfigError
from wwtune.spectral.analyze import OPTION_NAMES

__all__ = [
    "DEPRECATED",
    "REQUIRED",
    "SCHEMA",
    "ConfigError",
    "Section",
    "Key",
    "StudyConfig",
    "analysis_keys",
    "check_section",
    "check_value",
    "defaults",
    "normalize_config",
    "unknown_keys",
]


#: the default of a key that has none (it must be given)
REQUIRED: Any = object()

Check = Callable[[str, Any], None]


@dataclass(frozen=True)
class Key:
    """One config key: its default (:data:`REQUIRED`: none), its value rule and one line of doc."""

    default: Any = None
    check: Check | None = None
    doc: str = ""


# ------------------------------------------------------------------------------------------ value rules
_KIND_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def check_value(key: str, value: Any, kind: type) -> None:
    """``value`` must be of the plain ``kind`` (bool, int, float (an int counts), str)."""
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


def _kind(kind: type) -> Check:
    return lambda key, value: check_value(key, value, kind)


def _positive_int(key: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{key} must be a positive integer but got {value!r}.")


def _nullable(check: Check) -> Check:
    return lambda key, value: None if value is None else check(key, value)


def _one_of(*choices: Any) -> Check:
    def check(key: str, value: Any) -> None:
        if value not in choices:
            raise ConfigError(f"{key} must be one of {list(choices)} but got {value!r}.")

    return check


def _number(low: float, high: float, text: str, *, low_open: bool = False, high_open: bool = False) -> Check:
    """A number in the interval ``text`` names (e.g. "(0, 1]")."""

    def check(key: str, value: Any) -> None:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        ok = (
            ok
            and (low < value if low_open else low <= value)
            and (value < high if high_open else value <= high)
        )
        if not ok:
            raise ConfigError(f"{key} must be in {text} but got {value!r}.")

    return check


#: the longest time limit a timer can be armed with (the system timer overflows a little above 1e9 s)
MAX_SECONDS = 1e8


def _positive_seconds(key: str, value: Any) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 < value <= MAX_SECONDS:
        raise ConfigError(
            f"{key} must be a positive number of seconds up to {MAX_SECONDS:g} (about 3 years) or null "
            f"but got {value!r}."
        )


def _task(key: str, value: Any) -> None:
    if not isinstance(value, str) or ":" not in value:
        raise ConfigError(f"{key} must be 'module:function' (e.g. my_pkg.my_mod:train) but got {value!r}.")


def _mapping(what: str) -> Check:
    def check(key: str, value: Any) -> None:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key} must be {what} but got {value!r}.")

    return check


def _distinct(kind: type, at_least: int, what: str, inside: Check | None = None) -> Check:
    """A list of at least ``at_least`` distinct values of ``kind``, each passing ``inside``."""

    def check(key: str, value: Any) -> None:
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key} must be a list of {what} but got {value!r}.")
        for i, item in enumerate(value):
            check_value(f"{key}[{i}]", item, kind)
            if inside is not None:
                inside(f"{key}[{i}]", item)
        if len(set(value)) < at_least:
            raise ConfigError(f"{key} must hold at least {at_least} distinct {what} but got {list(value)!r}.")

    return check


def _section(key: str, value: Any) -> None:
    if not isinstance(value, Mapping):
        raise ConfigError(f"Config section '{key}' is missing or not a mapping (got {value!r}).")


_POSITIVE = _number(0.0, math.inf, "(0, inf)", low_open=True, high_open=True)
_NON_NEGATIVE = _number(0.0, math.inf, "[0, inf)", high_open=True)
_OPEN_UNIT = _number(0.0, 1.0, "(0, 1)", low_open=True, high_open=True)

# ------------------------------------------------------------------------------------------ the schema
MODES = ("optimize", "advise", "report")
ON_VIOLATION = ("fail", "infeasible")

#: Every section's keys (``analysis`` and ``storage``: see :func:`analysis_keys` and the module docstring).
SCHEMA: dict[str, dict[str, Key]] = {
    "": {
        "mode": Key("optimize", _one_of(*MODES), "optimize | advise | report"),
        "advise": Key(None, _nullable(_section), "settings of mode=advise"),
        "study": Key(REQUIRED, _section, "the study"),
        "objective": Key(REQUIRED, _section, "the training task"),
        "search_space": Key(None, None, "the hyperparameters searched (wwtune.search_space)"),
        "sampler": Key(REQUIRED, None, "an Optuna sampler (_target_ node)"),
        "pruner": Key(REQUIRED, None, "an Optuna pruner (_target_ node)"),
        "storage": Key(REQUIRED, _section, "where trials are stored"),
        "score": Key(REQUIRED, _section, "the study's objective (wwtune.score)"),
        "pick": Key(None, _nullable(_section), "the pick rule: which trial the study returns (wwtune.pick)"),
        "sanity": Key(REQUIRED, _section, "rules that fail diverged or non-learning runs"),
        "analysis": Key(None, _nullable(_section), "keyword arguments of wwtune.analyze"),
        "worker_id": Key(None, None, "this worker's id (null: a single worker)"),
    },
    "study": {
        "name": Key(REQUIRED, None, "folder under studies_dir; the same name resumes"),
        "n_trials": Key(REQUIRED, _positive_int, "total finished trials wanted"),
        "seed": Key(REQUIRED, _kind(int), "sampler seed; trial k trains with seed + k"),
        "direction": Key("auto", _one_of("auto", "minimize", "maximize"), "auto: from the score"),
        "timeout": Key(None, _nullable(_positive_seconds), "seconds for this run, or null"),
        "trial_timeout": Key(None, _nullable(_positive_seconds), "seconds one trial may run, or null"),
        "allow_config_change": Key(False, _kind(bool), "resume this study.name under a changed config"),
        "studies_dir": Key("studies", None, "where study folders live"),
        "progress_bar": Key(True, _kind(bool), "Optuna's progress bar"),
        "torch_threads": Key(None, _nullable(_positive_int), "torch.set_num_threads for the trials"),
        "report": Key(True, _kind(bool), "write report.html at the end of each run"),
        "artifacts": Key(False, _kind(bool), "attach each trial's α-per-layer figure as an Optuna artifact"),
        "spectra": Key(True, _kind(bool), "keep each trial's final eigenvalues for the report"),
    },
    "objective": {
        "task": Key(REQUIRED, _task, "module:function of the task"),
        "budget": Key(REQUIRED, _positive_int, "training budget per trial, in the task's unit"),
        "report_every": Key(1, _positive_int, "analyse every this many steps"),
        "data_fraction": Key(1.0, _number(0.0, 1.0, "(0, 1]", low_open=True), "share of the training data"),
        "fixed": Key(None, _nullable(_mapping("a mapping of hyperparameter values")), "values not searched"),
        "heldout": Key(None, _nullable(_mapping("{name, direction} or null")), "the task's held-out metric"),
        "alpha_band": Key(None, None, "the task's α band; every score without its own band uses it"),
        "loss_comparable": Key(
            None, _nullable(_kind(bool)), "false: the reported loss is not comparable across trials"
        ),
    },
    "objective.heldout": {
        "name": Key(REQUIRED, None, "name of the held-out metric"),
        "direction": Key(REQUIRED, _one_of("minimize", "maximize"), "its direction"),
    },
    "score": {  # values are checked by wwtune.score.Score as well
        "kind": Key(
            "band_distance",
            None,
            "band_distance | mean_alpha | mean_alpha_weighted | heldout | train_loss | fit_band | pareto",
        ),
        "band": Key(None, None, "target band of α (null: the task's objective.alpha_band, else [2, 2])"),
        "min_evals_counted": Key(50, _positive_int, "layers with fewer eigenvalues are listed, not counted"),
        "weights": Key("uniform", None, "uniform | num_evals"),
        "failed_penalty": Key(None, None, "what a failed fit counts (default by kind)"),
        "tie_break": Key(0.01, None, "pull toward the band centre"),
        "weight": Key(5.0, None, "fit_band: weight of the band distance against log10(training loss)"),
        "trap_weight": Key(0.5, None, "fit_band: weight of the fraction of layers with a correlation trap"),
        "loss_floor": Key(1e-6, None, "fit kinds: the training loss is clipped below at this"),
        "fit_quantile": Key(1.0, None, "pareto: the pick considers losses up to this quantile"),
    },
    "pick": {  # values are checked by wwtune.pick.PickRule as well
        "kind": Key("loss_group", None, "loss_group | train_loss | value"),
        "group": Key(0.1, None, "loss_group: share of feasible trials, by lowest loss, picked among"),
        "guard": Key("below", None, "loss_group: below (share of layers with α < band low edge) | band"),
        "limit": Key(None, None, "loss_group: null = smallest guard; a number: lowest loss with guard <= it"),
    },
    "sanity": {
        "check_weights": Key(True, _kind(bool), "NaN/Inf weights fail the trial"),
        "min_loss_drop": Key(
            0.0,
            _nullable(_number(0.0, 1.0, "[0, 1) or null", high_open=True)),
            "the last loss must be this much below the first",
        ),
        "on_violation": Key(
            "infeasible", _one_of(*ON_VIOLATION), "infeasible (samplers learn from it) | fail"
        ),
        "norm_growth": Key(
            100.0,
            _nullable(_number(1.0, math.inf, "(1, inf) or null", low_open=True, high_open=True)),
            "α < 2 with a norm grown more than this since the first analysis is divergence",
        ),
        "penalty": Key(None, _nullable(_kind(float)), "value of a diverged run (null: ±inf)"),
    },
    "advise": {  # the defaults are wwtune.advice's (DecisionRule reads its thresholds from here)
        "fractions": Key(
            [0.125, 0.25, 0.5, 1.0],
            _distinct(float, 2, "fractions in (0, 1]", _number(0.0, 1.0, "(0, 1]", low_open=True)),
            "data fractions at which the best and the typical trial are retrained",
        ),
        "seeds": Key([0, 1], _distinct(int, 2, "seeds"), "seeds per fraction"),
        "budget_per_data": Key(True, _kind(bool), "scale an epoch budget by 1/fraction (equal steps)"),
        "data_threshold": Key(0.3, _POSITIVE, "|Δ mean α| per doubling that counts as data-sensitive"),
        "spread_threshold": Key(0.05, _POSITIVE, "narrowing of the α spread per doubling that counts too"),
        "z": Key(2.0, _POSITIVE, "standard errors an effect must clear"),
        "min_effect": Key(0.05, _NON_NEGATIVE, "smallest typical−best α-score gap that counts"),
        # the cross-fitted advice (wwtune.advice.crossfit; tasks with supports_resplit)
        "method": Key("auto", _one_of("auto", "crossfit", "spectral"), "auto | crossfit | spectral"),
        "curve_fractions": Key(
            [0.125, 0.25, 0.5, 0.75],
            _distinct(float, 3, "fractions in (0, 1)", _OPEN_UNIT),
            "fractions of the data one has for the best trial's learning curve",
        ),
        "splits": Key(4, _positive_int, "re-splits of the training data (at least 2)"),
        "max_candidates": Key(8, _positive_int, "study trials (best first) compared for the tuning gain"),
        "level": Key(0.9, _OPEN_UNIT, "interval level of both gains"),
        "n_boot": Key(400, _positive_int, "bootstrap resamples (at least 10)"),
        "compare": Key("overlap", _one_of("overlap", "difference"), "how the two gain intervals decide"),
    },
}

#: Renamed keys: ``(section, old name) -> new name``. The old names are accepted, with a
#: DeprecationWarning, in wwtune 0.1.x and removed in the next release.
DEPRECATED: dict[tuple[str, str], str] = {
    ("analysis", "min_evals"): "min_evals_analysed",
    ("score", "min_evals"): "min_evals_counted",
}
#: wwtune.analyze's own names of the ``analysis`` keys that differ from them
ANALYZE_ARGS = {"min_evals_analysed": "min_evals"}


def analysis_keys() -> tuple[str, ...]:
    """The ``analysis`` keys: :func:`wwtune.analyze`'s keyword arguments (``min_evals`` is
    ``min_evals_analysed`` here, apart from ``score.min_evals_counted``)."""
    rename = {v: k for k, v in ANALYZE_ARGS.items()}
    return tuple(rename.get(k, k) for k in OPTION_NAMES if k != "keep_evals")


def defaults(section: str) -> dict[str, Any]:
    """The defaults of a section's optional keys."""
    return {k: key.default for k, key in SCHEMA[section].items() if key.default is not REQUIRED}


# ------------------------------------------------------------------------------------------ checking
def unknown_keys(section: str, given: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    """Raise :class:`ConfigError` naming each key of ``given`` not in ``allowed`` (with a close match)."""
    unknown = sorted(set(given) - set(allowed))
    if not unknown:
        return
    where = f"'{section}'" if section else "the top level"
    hints = []
    for key in unknown:
        close = difflib.get_close_matches(key, allowed, n=1)
        hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    raise ConfigError(f"Unknown key(s) in {where}: {', '.join(hints)}; allowed: {sorted(allowed)}.")


def check_section(section: str, node: Mapping[str, Any]) -> None:
    """Every key of ``node`` known to the schema's ``section``, every value (or default) by its rule."""
    keys = SCHEMA[section]
    unknown_keys(section, node, tuple(keys))
    prefix = f"{section}." if section else ""
    for name, key in keys.items():
        value = node.get(name, None if key.default is REQUIRED else key.default)
        if key.check is not None:
            key.check(prefix + name, value)


class Section(Mapping[str, Any]):
    """One section of a :class:`StudyConfig`, read-only and typed by :data:`SCHEMA`: each key the schema
    declares for the section is an attribute (``config.study.n_trials``; its declared default when the
    config leaves it out), a declared sub-section is a :class:`Section` too (``config.objective.heldout``),
    and an undeclared attribute fails naming the section's keys. As a mapping it holds exactly the
    config's keys (``dict(config.sampler)`` is the node Hydra instantiates)."""

    __slots__ = ("_path", "_values")

    def __init__(self, path: str, values: Mapping[str, Any]) -> None:
        object.__setattr__(self, "_path", path)
        object.__setattr__(self, "_values", dict(values))

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __getattr__(self, key: str) -> Any:
        if key.startswith("__"):
            raise AttributeError(key)
        declared = SCHEMA.get(self._path, {})
        if key in self._values:
            value = self._values[key]
        elif key in declared:
            value = None if declared[key].default is REQUIRED else declared[key].default
        else:
            known = sorted(set(declared) | set(self._values))
            close = difflib.get_close_matches(key, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise AttributeError(f"config section {self._path!r} has no key {key!r}{hint}; it has: {known}.")
        return _typed(f"{self._path}.{key}", value)

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError(f"config section {self._path!r} is read-only; compose another config instead.")

    def __reduce__(self) -> tuple[Any, ...]:
        return (Section, (self._path, self._values))

    def __repr__(self) -> str:
        return f"Section({self._path!r}, {self._values!r})"


def _typed(path: str, value: Any) -> Any:
    """A mapping-valued key as a :class:`Section` (declared or not: ``sampler``, ``storage``...)."""
    return Section(path, value) if isinstance(value, Mapping) else value


class StudyConfig(dict):  # type: ignore[type-arg]
    """A composed study config, normalised and validated once: what :func:`wwtune.config.load_config`
    returns, and what every later step takes. Each root key of :data:`SCHEMA` is an attribute:
    ``config.study``, ``config.storage``, ``config.score``... are read-only :class:`Section` objects typed
    by the schema (``config.study.n_trials``, ``config.sanity.on_violation``), which the factories of
    :mod:`wwtune.factories` take one each (``make_storage(config.storage, config.study)``). It is a
    ``dict`` of the plain config too (``cfg["study"]["name"]`` keeps working, and it serialises as it
    always did). :func:`normalize_config` and :func:`wwtune.config.validate_config` return at once on it:
    a run parses its config one time."""


def _root_key(name: str) -> property:
    key = SCHEMA[""][name]
    default = None if key.default is REQUIRED else key.default
    return property(lambda self: _typed(name, self.get(name, default)), doc=key.doc)


for _name in SCHEMA[""]:
    setattr(StudyConfig, _name, _root_key(_name))


def normalize_config(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``cfg`` with the :data:`DEPRECATED` key names renamed, each with a DeprecationWarning.

    The old names appear only in a user's own configs, so an old name given beside the new one (which the
    shipped configs set) wins, and the warning names both values.
    """
    if isinstance(cfg, StudyConfig):
        return cfg  # normalised when it was built
    out = dict(cfg)
    for (section, old), new in DEPRECATED.items():
        node = out.get(section)
        if not isinstance(node, Mapping) or old not in node:
            continue
        node = dict(node)
        value = node.pop(old)
        shadowed = (
            f" (it overrides {section}.{new}={node[new]!r})" if new in node and node[new] != value else ""
        )
        warnings.warn(
            f"{section}.{old} is renamed {section}.{new}; the old name is accepted in wwtune 0.1.x "
            f"only: write {section}.{new}={value!r}{shadowed}.",
            DeprecationWarning,
            stacklevel=2,
        )
        node[new] = value
        out[section] = node
    return out
