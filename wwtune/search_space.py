"""Search spaces from YAML: global and per-layer hyperparameters, turned into Optuna suggestions.

A ``conf/search_space/<task>.yaml`` has two parts::

    params:                                   # global hyperparameters -> params.values
      lr: {type: float, low: 1.0e-3, high: 0.5, log: true}
      epochs: {type: int, low: 2, high: 10, step: 2}
      opt: {type: categorical, choices: [sgd, adam]}
      momentum: {type: float, low: 0.5, high: 0.99, when: {opt: sgd}}   # conditional
      width: "choice(64, 128)"                # Hydra-optuna-sweeper syntax
      wd: "tag(log, interval(1e-6, 1e-2))"
    layers:                                   # per-layer settings -> params.layers
      "fc1": {lr_mult: {type: float, low: 0.5, high: 2.0, log: true}}
      "drop*": {dropout: "interval(0, 0.5)"}

Dict form keys: ``type`` (``float``, ``int`` or ``categorical``), ``low``/``high`` (inclusive),
``log`` (bool), ``step`` (float/int grid spacing; not with ``log``), ``choices`` (categorical) and ``when``
(``{earlier_param: value or [values]}``: the parameter is suggested only when every named earlier
parameter was suggested with one of the given values; otherwise it is absent from the trial).

String form (parsed by Hydra's own override grammar, as in hydra-optuna-sweeper):

* ``interval(a, b)`` → float in [a, b]; ``tag(log, interval(a, b))`` → log scale; ``int(interval(a, b))``
  or tag ``int`` → integer in [a, b].
* ``range(a, b, step)`` → samplers draw a, a+step, … up to b **inclusive** (hydra-optuna-sweeper's
  convention, ``range(-5.5, 5.5, step=0.5)`` ≡ ``{low: -5.5, high: 5.5, step: 0.5}``); int when a, b and
  step are ints.
* ``shuffle(range(a, b, step))`` → categorical over Python's ``range`` values: b **excluded**.
* ``choice(x, y, …)`` or ``x,y`` → categorical.

The grid sampler walks a sweep string's stepped range as hydra-optuna-sweeper does: from ``low`` in
``step`` increments, stopping one step before ``high`` (``range(-5.5, 5.5, step=0.5)``: 22 points, -5.5 …
5.0; ``int(interval(1, 4))``: 1, 2, 3). The dict form keeps both ends in the grid.
* anything else (``"0.5"``, a number, a string) → a constant, recorded in the trial's values unsearched.

Per-layer settings are :data:`wwtune.objective.LAYER_SETTINGS` (``lr_mult``, ``weight_decay``,
``dropout``); their Optuna parameter names are ``"<pattern>/<setting>"`` (e.g. ``"fc1/lr_mult"``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, RangeSweep
from hydra.errors import HydraException
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from wwtune.exceptions import SearchSpaceError
from wwtune.objective import LAYER_SETTINGS

__all__ = ["Dimension", "SearchSpace", "SearchSpaceError", "parse_sweep_string"]

TYPES = ("float", "int", "categorical")
_SPEC_KEYS = {"type", "low", "high", "log", "step", "choices", "when"}
_SWEEP_TAGS = {"log", "int"}


@dataclass(frozen=True)
class Dimension:
    """One searched hyperparameter.

    ``layer`` is ``(pattern, setting)`` for a per-layer setting, else ``None``. ``when`` maps earlier
    parameter names to the tuple of values under which this one is active.
    """

    name: str
    distribution: BaseDistribution
    when: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    layer: tuple[str, str] | None = None
    #: a sweep string (hydra-optuna-sweeper syntax): its grid stops one step before ``high``, as the sweeper's
    sweeper_grid: bool = False

    def active(self, chosen: Mapping[str, Any]) -> bool:
        return all(key in chosen and chosen[key] in values for key, values in self.when.items())

    def suggest(self, trial: optuna.trial.BaseTrial) -> Any:
        d = self.distribution
        if isinstance(d, FloatDistribution):
            return trial.suggest_float(self.name, d.low, d.high, log=d.log, step=d.step)
        if isinstance(d, IntDistribution):
            return trial.suggest_int(self.name, d.low, d.high, log=d.log, step=d.step)
        return trial.suggest_categorical(self.name, d.choices)

    def grid_values(self) -> list[Any]:
        """All values of a discrete dimension (for the grid sampler)."""
        d = self.distribution
        if isinstance(d, CategoricalDistribution):
            return list(d.choices)
        values: list[Any] | None = None
        if isinstance(d, IntDistribution) and not d.log:
            values = list(range(d.low, d.high + 1, d.step))
        if isinstance(d, FloatDistribution) and d.step is not None:
            n = int(round((d.high - d.low) / d.step))
            values = [round(d.low + i * d.step, 12) for i in range(n + 1)]
        if values is not None:
            if self.sweeper_grid:
                values = values[:-1]
            if not values:
                raise SearchSpaceError(
                    f"The grid of {self.name!r} is empty: {d} stops one step before high (as "
                    "hydra-optuna-sweeper's grid); widen the range."
                )
            return values
        raise SearchSpaceError(
            f"The grid sampler needs discrete values but {self.name!r} is {d}; give it a 'step', "
            "use choice(...)/range(...), or pick another sampler."
        )


def _number(entry: str, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SearchSpaceError(f"{entry}: {key!r} must be a finite number but got {value!r}.")
    return value


def _distribution(
    entry: str,
    kind: str,
    low: Any = None,
    high: Any = None,
    log: bool = False,
    step: Any = None,
    choices: Any = None,
) -> BaseDistribution:
    if kind not in TYPES:
        raise SearchSpaceError(f"{entry}: type must be one of {list(TYPES)} but got {kind!r}.")
    if kind == "categorical":
        if low is not None or high is not None or step is not None or log:
            raise SearchSpaceError(f"{entry}: a categorical takes only 'choices' (no low/high/step/log).")
        if not isinstance(choices, Sequence) or isinstance(choices, str) or len(choices) == 0:
            raise SearchSpaceError(f"{entry}: 'choices' must be a non-empty list but got {choices!r}.")
        for c in choices:
            if c is not None and not isinstance(c, (bool, int, float, str)):
                raise SearchSpaceError(
                    f"{entry}: choices must be None, bool, int, float or str but got {c!r}."
                )
        return CategoricalDistribution(list(choices))
    if choices is not None:
        raise SearchSpaceError(f"{entry}: 'choices' is only for type categorical, not {kind!r}.")
    if low is None or high is None:
        raise SearchSpaceError(f"{entry}: type {kind} needs both 'low' and 'high'.")
    low, high = _number(entry, "low", low), _number(entry, "high", high)
    if low > high:
        raise SearchSpaceError(f"{entry}: 'low' cannot exceed 'high' but got low={low}, high={high}.")
    if not isinstance(log, bool):
        raise SearchSpaceError(f"{entry}: 'log' must be true or false but got {log!r}.")
    if log and low <= 0:
        raise SearchSpaceError(f"{entry}: a log range needs low > 0 but got low={low}.")
    if step is not None:
        _number(entry, "step", step)
        if step <= 0:
            raise SearchSpaceError(f"{entry}: 'step' must be positive but got {step}.")
        if log:
            raise SearchSpaceError(f"{entry}: 'step' and 'log' cannot be combined.")
    if kind == "int":
        for key, v in (("low", low), ("high", high), ("step", step)):
            if v is not None and float(v) != int(v):
                raise SearchSpaceError(f"{entry}: {key!r} of an int range must be an integer but got {v!r}.")
        istep = int(step) if step is not None else 1
        ihigh = int(low) + (int(high) - int(low)) // istep * istep  # high on the last step
        return IntDistribution(int(low), ihigh, log=log, step=istep)
    if step is not None:
        n = math.floor((high - low) / step + 1e-9)
        high = round(low + n * step, 12)  # keep the grid exact: high on the last step
    return FloatDistribution(float(low), float(high), log=log, step=float(step) if step is not None else None)


_CONSTANT = object()


def parse_sweep_string(entry: str, text: str) -> BaseDistribution | tuple[object, Any]:
    """Parse a Hydra-optuna-sweeper string; returns a distribution, or ``(_CONSTANT, value)``."""
    try:
        override = OverridesParser.create().parse_overrides([f"x={text}"])[0]
    except HydraException as exc:
        raise SearchSpaceError(
            f"{entry}: cannot parse {text!r} with Hydra's override grammar: {exc}"
        ) from None
    value = override.value()
    if not override.is_sweep_override():
        return (_CONSTANT, value)
    tags = set(getattr(value, "tags", set()) or set())
    unknown = sorted(tags - _SWEEP_TAGS)
    if unknown:
        raise SearchSpaceError(
            f"{entry}: unknown tag(s) {unknown} in {text!r}; allowed: {sorted(_SWEEP_TAGS)}."
        )
    if isinstance(value, ChoiceSweep):
        if tags:
            raise SearchSpaceError(f"{entry}: tags {sorted(tags)} do not apply to choice(...) in {text!r}.")
        return _distribution(entry, "categorical", choices=list(value.list))
    if isinstance(value, IntervalSweep):
        low, high = value.start, value.end
        # int(interval(a, b)) is Hydra's cast: the end points arrive as ints
        cast_int = all(isinstance(v, int) and not isinstance(v, bool) for v in (low, high))
        kind = "int" if "int" in tags or cast_int else "float"
        if kind == "int":
            low, high = int(math.ceil(low)), int(math.floor(high))
        return _distribution(entry, kind, low, high, log="log" in tags)
    if isinstance(value, RangeSweep):
        if "log" in tags:
            raise SearchSpaceError(
                f"{entry}: range(...) is a stepped grid; it cannot take tag log ({text!r})."
            )
        start, stop, step = value.start, value.stop, value.step
        is_int = all(isinstance(v, int) and not isinstance(v, bool) for v in (start, stop, step))
        if step is None or step <= 0:
            raise SearchSpaceError(f"{entry}: range(...) needs a positive step but got {step!r} in {text!r}.")
        if value.shuffle:  # the values of Python's range (end excluded), in a fixed order
            choices = sorted(override.sweep_iterator())
            if not choices:
                raise SearchSpaceError(f"{entry}: {text!r} has no values (range excludes its end).")
            if tags:
                raise SearchSpaceError(f"{entry}: tags {sorted(tags)} do not apply to shuffle(range(...)).")
            return _distribution(entry, "categorical", choices=choices)
        return _distribution(entry, "int" if is_int or "int" in tags else "float", start, stop, step=step)
    raise SearchSpaceError(f"{entry}: unsupported sweep {text!r}; use interval, range, choice or tag(...).")


class SearchSpace:
    """Global and per-layer hyperparameters to search, built from a ``conf/search_space`` mapping.

    Example:

        .. code-block:: python

            import optuna
            from wwtune.search_space import SearchSpace

            space = SearchSpace(
                params={"lr": "tag(log, interval(1e-3, 0.5))", "opt": "choice(sgd, adam)",
                        "momentum": {"type": "float", "low": 0.5, "high": 0.99, "when": {"opt": "sgd"}}},
                layers={"fc1": {"lr_mult": {"type": "float", "low": 0.5, "high": 2.0, "log": True}}},
            )
            trial = optuna.create_study().ask()
            values, layers = space.suggest(trial)
            assert 1e-3 <= values["lr"] <= 0.5 and 0.5 <= layers["fc1"]["lr_mult"] <= 2.0

    Args:
        params: ``{name: spec}`` of global hyperparameters; a spec is a dict (see the module docstring),
            a Hydra-optuna-sweeper string, or a constant. Default: none.
        layers: ``{pattern: {setting: spec}}`` with settings from ``lr_mult``, ``weight_decay``,
            ``dropout``; patterns are fnmatch patterns on module names. Default: none.
    """

    def __init__(
        self, params: Mapping[str, Any] | None = None, layers: Mapping[str, Mapping[str, Any]] | None = None
    ) -> None:
        self.dimensions: list[Dimension] = []
        self.constants: dict[str, Any] = {}
        self.layer_constants: dict[str, dict[str, Any]] = {}
        params = {} if params is None else params
        layers = {} if layers is None else layers
        if not isinstance(params, Mapping):
            raise SearchSpaceError(f"search_space.params must be a mapping but got {type(params).__name__}.")
        if not isinstance(layers, Mapping):
            raise SearchSpaceError(f"search_space.layers must be a mapping but got {type(layers).__name__}.")
        for name, spec in params.items():
            self._add(str(name), f"search_space.params.{name}", spec, None)
        for pattern, settings in layers.items():
            if not isinstance(settings, Mapping):
                raise SearchSpaceError(
                    f"search_space.layers.{pattern!r} must map settings {list(LAYER_SETTINGS)} to specs "
                    f"but got {settings!r}."
                )
            for setting, spec in settings.items():
                if setting not in LAYER_SETTINGS:
                    raise SearchSpaceError(
                        f"search_space.layers.{pattern!r}: unknown per-layer setting {setting!r}; "
                        f"allowed: {list(LAYER_SETTINGS)}."
                    )
                self._add(
                    f"{pattern}/{setting}",
                    f"search_space.layers.{pattern!r}.{setting}",
                    spec,
                    (str(pattern), str(setting)),
                )

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any] | None) -> SearchSpace:
        """Build from the composed ``search_space`` node: keys ``params``, ``layers`` and ``extend`` (whether
        a study's own space extends the selected group's instead of replacing it, read at composition by
        :func:`wwtune.cli.own_search_space`)."""
        cfg = {} if cfg is None else cfg
        unknown = sorted(set(cfg) - {"params", "layers", "extend"})
        if unknown:
            raise SearchSpaceError(
                f"Unknown search_space key(s) {unknown}; allowed: ['extend', 'layers', 'params']."
            )
        if not isinstance(cfg.get("extend", False), bool):
            raise SearchSpaceError(f"search_space.extend must be true or false but got {cfg['extend']!r}.")
        return cls(cfg.get("params"), cfg.get("layers"))

    def _add(self, name: str, entry: str, spec: Any, layer: tuple[str, str] | None) -> None:
        when: dict[str, tuple[Any, ...]] = {}
        sweeper_grid = False
        if isinstance(spec, Mapping):
            unknown = sorted(set(spec) - _SPEC_KEYS)
            if unknown:
                raise SearchSpaceError(f"{entry}: unknown key(s) {unknown}; allowed: {sorted(_SPEC_KEYS)}.")
            if "type" not in spec:
                raise SearchSpaceError(f"{entry}: missing 'type'; one of {list(TYPES)}.")
            when = self._conditions(entry, spec.get("when"))
            distribution = _distribution(
                entry,
                spec["type"],
                spec.get("low"),
                spec.get("high"),
                spec.get("log", False),
                spec.get("step"),
                spec.get("choices"),
            )
        elif isinstance(spec, str):
            parsed = parse_sweep_string(entry, spec)
            if isinstance(parsed, tuple):
                self._constant(name, parsed[1], layer)
                return
            distribution = parsed
            sweeper_grid = isinstance(distribution, (IntDistribution, FloatDistribution))
        elif spec is None or isinstance(spec, (bool, int, float)):
            self._constant(name, spec, layer)
            return
        else:
            raise SearchSpaceError(
                f"{entry}: expected a dict, a sweep string or a constant but got {spec!r}."
            )
        self.dimensions.append(Dimension(name, distribution, when, layer, sweeper_grid))

    def _constant(self, name: str, value: Any, layer: tuple[str, str] | None) -> None:
        if layer is None:
            self.constants[name] = value
        else:
            self.layer_constants.setdefault(layer[0], {})[layer[1]] = value

    def _conditions(self, entry: str, when: Any) -> dict[str, tuple[Any, ...]]:
        if when is None:
            return {}
        if not isinstance(when, Mapping) or not when:
            raise SearchSpaceError(f"{entry}: 'when' must map earlier parameters to values but got {when!r}.")
        known = [d.name for d in self.dimensions if d.layer is None]
        out = {}
        for key, values in when.items():
            if key not in known:
                raise SearchSpaceError(
                    f"{entry}: 'when' refers to {key!r}, which is not a searched global parameter defined "
                    f"before it; defined so far: {known}."
                )
            out[str(key)] = tuple(values) if isinstance(values, (list, tuple)) else (values,)
        return out

    @property
    def names(self) -> list[str]:
        return [d.name for d in self.dimensions]

    def suggest(self, trial: optuna.trial.BaseTrial) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
        """Suggest every active dimension; returns ``(values, layers)`` for ``Params``."""
        values: dict[str, Any] = dict(self.constants)
        layers: dict[str, dict[str, Any]] = {p: dict(s) for p, s in self.layer_constants.items()}
        chosen: dict[str, Any] = {}
        for dim in self.dimensions:
            if not dim.active(chosen):
                continue
            value = dim.suggest(trial)
            chosen[dim.name] = value
            if dim.layer is None:
                values[dim.name] = value
            else:
                layers.setdefault(dim.layer[0], {})[dim.layer[1]] = value
        return values, layers

    def split(self, flat: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
        """Turn a trial's flat Optuna params back into ``(values, layers)`` (constants included)."""
        values: dict[str, Any] = dict(self.constants)
        layers: dict[str, dict[str, Any]] = {p: dict(s) for p, s in self.layer_constants.items()}
        by_name = {d.name: d for d in self.dimensions}
        for name, value in flat.items():
            dim = by_name.get(name)
            if dim is not None and dim.layer is not None:
                layers.setdefault(dim.layer[0], {})[dim.layer[1]] = value
            else:
                values[name] = value
        return values, layers

    def grid(self) -> dict[str, list[Any]]:
        """``{name: values}`` for ``optuna.samplers.GridSampler``; fails on a continuous dimension."""
        return {d.name: d.grid_values() for d in self.dimensions}

    def describe(self) -> list[str]:
        lines = [
            f"{d.name}: {d.distribution}" + (f" when {dict(d.when)}" if d.when else "")
            for d in self.dimensions
        ]
        lines += [f"{k} = {v!r} (constant)" for k, v in self.constants.items()]
        return lines
