"""``analyze``: any PyTorch model's layers → one DataFrame row of spectral diagnostics per layer."""

from __future__ import annotations

import dataclasses
import fnmatch
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from wwtune.spectral.columns import ALWAYS, DESCRIBE_COLUMNS, LAYER_TYPES, MP_COLUMNS, RANDOMIZE_COLUMNS
from wwtune.spectral.esd import LayerESD, compute_esds, resolve_device
from wwtune.spectral.fitting import FITS, fit_columns, fit_layer
from wwtune.spectral.layers import WeightSpec, weight_specs
from wwtune.spectral.metrics import layer_metrics, warning_for
from wwtune.spectral.powerlaw import PowerLawFit
from wwtune.spectral.ww_args import WeightWatcherOptionError, WWOptions, check_ww_options, ww_fit

__all__ = [
    "DEFAULT_MAX_EVALS",
    "DEFAULT_MIN_EVALS",
    "FITS",
    "OPTION_NAMES",
    "AnalysisOptions",
    "analyze",
    "check_options",
    "describe",
    "layer_row",
    "select_specs",
]

logger = logging.getLogger(__name__)

#: WeightWatcher's smallest analyzed layer (fewer eigenvalues: skipped).
DEFAULT_MIN_EVALS = 8
#: Above WeightWatcher's 15,000 (it caps for speed); a 20,000² float64 Gram already takes 3.2 GB.
DEFAULT_MAX_EVALS = 20_000
_DTYPES = {"float64": torch.float64, "float32": torch.float32}


def _patterns(value: Any, option: str) -> list[str] | None:
    if value is None:
        return None
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple, set)) or not all(isinstance(p, str) for p in items) or not items:
        raise TypeError(f"{option} must be a string or a non-empty list of strings but got {value!r}.")
    return list(items)


def _layer_filter(value: Any) -> tuple[list[str] | None, list[int] | None]:
    """``layers=``: fnmatch patterns on ``name`` and/or integer ``layer_id`` values (WeightWatcher's ids)."""
    if value is None:
        return None, None
    items = [value] if isinstance(value, (str, int, np.integer)) else value
    ok = (
        isinstance(items, (list, tuple, set))
        and items
        and all(isinstance(p, (str, int, np.integer)) and not isinstance(p, (bool, np.bool_)) for p in items)
    )
    if not ok:
        raise TypeError(
            "layers must be a pattern string, a layer_id integer, or a non-empty list of them "
            f"but got {value!r}."
        )
    ids = [int(p) for p in items if not isinstance(p, str)]
    negative = [i for i in ids if i < 0]
    if negative and (len(negative) < len(ids) or len(ids) < len(items)):
        raise ValueError(
            "layers: negative ids (WeightWatcher's 'skip these layers') cannot be mixed with ids or patterns "
            f"to keep but got {list(items)!r}."
        )
    patterns = [p for p in items if isinstance(p, str)]
    return patterns or None, ids or None


def _assign_layer_ids(specs: list[WeightSpec]) -> None:
    """Ids for weights that got none (a sharded folder): the order of their modules, from 1 (WeightWatcher
    numbers a state_dict's layers from 1)."""
    if all(s.layer_id is not None for s in specs):
        return
    order: dict[str, int] = {}
    for s in specs:
        module = s.name.rsplit(".in_proj.", 1)[0]  # a packed q/k/v triple shares its attention module's id
        s.layer_id = order.setdefault(module, len(order) + 1)


def _check_int(value: Any, option: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{option} must be an integer but got {value!r}.")
    if value < low:
        raise ValueError(f"{option} cannot be less than {low} but got {value}.")
    return int(value)


def _check_bool(value: Any, option: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{option} must be True or False but got {value!r}.")
    return bool(value)


def _select(
    specs: list[WeightSpec],
    layers: list[str] | None,
    layer_types: list[str] | None,
    min_evals: int,
    max_evals: int,
    layer_ids: list[int] | None = None,
    max_n: int | None = None,
) -> list[WeightSpec]:
    chosen = specs
    if layer_ids is not None and all(i < 0 for i in layer_ids):  # WeightWatcher: skip these layers
        skip = {-i for i in layer_ids}
        chosen, layer_ids = [s for s in specs if s.layer_id not in skip], None
    if layer_ids is not None:
        missing = sorted(set(layer_ids) - {s.layer_id for s in specs})
        if missing:
            known = ", ".join(f"{s.layer_id}: {s.name}" for s in specs[:20])
            raise ValueError(
                f"layers: no weight matrix has layer_id {missing}; ids with weights: {known}"
                f"{' …' if len(specs) > 20 else ''}."
            )
    if layers is not None or layer_ids is not None:
        chosen = [
            s
            for s in chosen
            if any(
                fnmatch.fnmatchcase(s.name, p) or fnmatch.fnmatchcase(_ww_name(s), p) for p in layers or ()
            )
            or s.layer_id in (layer_ids or ())
        ]
    if layer_types is not None:
        chosen = [s for s in chosen if s.layer_type in layer_types]
    kept = [s for s in chosen if min_evals <= s.num_evals <= max_evals and (max_n is None or s.N <= max_n)]
    for s in chosen:
        if s.num_evals > max_evals:
            logger.info("skipping %s: %d eigenvalues > max_evals=%d", s.name, s.num_evals, max_evals)
        elif max_n is not None and s.N > max_n:
            logger.info("skipping %s: N=%d > max_N=%d", s.name, s.N, max_n)
    if not kept:
        found = ", ".join(f"{s.name} ({s.layer_type}, {s.num_evals} evals)" for s in specs[:10]) or "none"
        raise ValueError(
            f"no analyzable layer: {len(specs)} weight matrices found [{found}], none left after "
            f"layers={layers!r}, layer_types={layer_types!r}, min_evals={min_evals}, max_evals={max_evals}."
        )
    return kept


@dataclass(frozen=True)
class AnalysisOptions:
    """What to analyse and how: the options of :func:`wwtune.analyze`, :func:`wwtune.compare`, both
    command lines, the bridge and the study's ``analysis`` config section, declared and validated once.

    Each field is one option (a new option is one line here, with its check in :meth:`__post_init__`);
    a bad value raises ``TypeError`` / ``ValueError`` naming it and what is allowed. Values are kept
    normalised (``layers`` and ``layer_types`` as lists, ``device`` resolved), so
    ``dataclasses.replace(options, keep_evals=True)`` validates the changed copy again.

    Example:
        >>> opts = AnalysisOptions(layers="fc*", min_evals=20)
        >>> opts.layers, opts.min_evals, opts.fit
        (['fc*'], 20, 'power_law')
    """

    #: fnmatch pattern(s) on the layer ``name`` and/or integer ``layer_id`` values; None: all layers
    layers: str | int | Sequence[str | int] | None = None
    #: type(s) to keep, from :data:`wwtune.spectral.columns.LAYER_TYPES`; None: all
    layer_types: str | Sequence[str] | None = None
    #: skip layers with fewer eigenvalues (default 8, as WeightWatcher)
    min_evals: int = DEFAULT_MIN_EVALS
    #: skip layers with more eigenvalues (default 20,000; WeightWatcher: 15,000)
    max_evals: int = DEFAULT_MAX_EVALS
    #: ``"power_law"`` (the CSN fit; WeightWatcher's ``"PL"``), ``"hill"`` (Hill estimator, xmin = median),
    #: ``"truncated_power_law"`` (WeightWatcher's ``"TPL"``) or WeightWatcher's ``"E_TPL"``
    fit: str = "power_law"
    #: add the Marchenko-Pastur columns
    mp_fit: bool = False
    #: add the correlation-trap columns
    randomize: bool = False
    #: seed of the shuffle used by ``randomize``
    seed: int = 0
    #: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``, ``"cuda:N"``; kept as a ``torch.device``
    device: str | torch.device = "auto"
    #: ``"float64"`` or ``"float32"`` for the Gram matrices and eigensolver
    dtype: str = "float64"
    #: add an ``evals`` column with each layer's eigenvalues (float64, ascending)
    keep_evals: bool = False
    #: WeightWatcher's options beyond these (``wwtune.spectral.ww_args``; given by name to ``of`` / analyze)
    ww: WWOptions = WWOptions()
    # derived from the fields above
    layer_patterns: list[str] | None = field(init=False, repr=False, compare=False)
    layer_ids: list[int] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        def put(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        patterns, ids = _layer_filter(self.layers)
        put("layer_patterns", patterns)
        put("layer_ids", ids)
        if self.layers is not None:
            put("layers", [*(patterns or ()), *(ids or ())])
        types_ = _patterns(self.layer_types, "layer_types")
        if types_ is not None:
            bad = [t for t in types_ if t not in LAYER_TYPES]
            if bad:
                raise ValueError(f"layer_types must be among {list(LAYER_TYPES)} but got {bad!r}.")
        put("layer_types", types_)
        if not isinstance(self.ww, WWOptions):
            raise TypeError(f"ww must be a WWOptions but got {type(self.ww).__name__}.")
        fit, peak = ww_fit(self.fit)
        put("fit", fit)
        if peak:  # WeightWatcher's E_TPL: the TPL with fix_fingers='xmin_peak'
            if self.ww.fix_fingers == "clip_xmax":
                raise ValueError(
                    "fit='E_TPL' already sets fix_fingers='xmin_peak'; it cannot be 'clip_xmax'."
                )
            put("ww", dataclasses.replace(self.ww, fix_fingers="xmin_peak"))
        if isinstance(self.max_evals, (int, np.integer)) and not isinstance(self.max_evals, bool):
            if self.max_evals == 0:
                put("max_evals", 2**62)  # WeightWatcher: 0 is no limit
        put("min_evals", _check_int(self.min_evals, "min_evals", 1))
        put("max_evals", _check_int(self.max_evals, "max_evals", 1))
        if self.max_evals < self.min_evals:
            raise ValueError(
                f"max_evals cannot be less than min_evals but got max_evals={self.max_evals}, "
                f"min_evals={self.min_evals}."
            )
        if self.fit not in FITS:
            raise ValueError(f"fit must be one of {[*FITS, 'PL', 'TPL', 'E_TPL']} but got {self.fit!r}.")
        if self.dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {list(_DTYPES)} but got {self.dtype!r}.")
        put("mp_fit", _check_bool(self.mp_fit, "mp_fit"))
        put("randomize", _check_bool(self.randomize, "randomize"))
        put("seed", _check_int(self.seed, "seed", 0))
        put("device", resolve_device(self.device))
        put("keep_evals", _check_bool(self.keep_evals, "keep_evals"))

    @classmethod
    def of(cls, options: AnalysisOptions | None = None, /, **changes: Any) -> AnalysisOptions:
        """``options`` (default: all defaults) with ``changes`` applied, validated; an unknown option
        name is a ``TypeError`` naming it and the known ones."""
        if options is not None and not isinstance(options, cls):
            raise TypeError(f"options must be an AnalysisOptions but got {type(options).__name__}.")
        # WeightWatcher's other arguments: taken (into ``ww``) or refused in one line; other names too
        ww_given = {k: changes.pop(k) for k in list(changes) if k not in OPTION_NAMES}
        if ww_given:
            ww, renamed = check_ww_options(ww_given)
            for key, old in (("min_evals", "min_size"), ("max_evals", "max_size")):
                if key in renamed:
                    if key in changes:
                        raise ValueError(f"give {key} or WeightWatcher's old name {old}, not both.")
                    changes[key] = renamed[key]
            base = options.ww if options is not None else WWOptions()
            given = {f: getattr(ww, f) for f in _ww_fields(ww_given)}
            changes["ww"] = dataclasses.replace(base, **given)
        if options is None:
            return cls(**changes)
        return dataclasses.replace(options, **changes) if changes else options

    @property
    def torch_dtype(self) -> torch.dtype:
        """:attr:`dtype` as a torch dtype."""
        return _DTYPES[self.dtype]

    @property
    def columns(self) -> list[str]:
        """The result columns, in order."""
        return (
            list(ALWAYS)
            + fit_columns(self.fit, self.ww.fix_fingers)
            + (list(MP_COLUMNS) if self.mp_fit else [])
            + (list(RANDOMIZE_COLUMNS) if self.randomize else [])
            + (["evals"] if self.keep_evals else [])
        )


def _ww_fields(given: dict[str, Any]) -> list[str]:
    """The :class:`WWOptions` fields that WeightWatcher arguments ``given`` set."""
    names = {f.name for f in dataclasses.fields(WWOptions)}
    return sorted({("pool" if k == "ww2x" else k) for k in given} & names)


#: the option names of :class:`AnalysisOptions`, in order
OPTION_NAMES: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(AnalysisOptions) if f.init)
#: the old name of :class:`AnalysisOptions`
Options = AnalysisOptions


def check_options(**options: Any) -> AnalysisOptions:
    """:class:`AnalysisOptions` from keyword options (TypeError / ValueError naming the bad value)."""
    return AnalysisOptions.of(**options)


def select_specs(specs: list[WeightSpec], opts: AnalysisOptions) -> list[WeightSpec]:
    """The specs kept by the ``layers`` / ``layer_types`` / ``min_evals`` / ``max_evals`` filters."""
    _assign_layer_ids(specs)
    if opts.ww.start_ids:
        for s in specs:
            s.layer_id = int(s.layer_id or 0) + opts.ww.start_ids
    if not opts.ww.pool:
        specs = [part for s in specs for part in _unpooled(s)]
    return _select(
        specs,
        opts.layer_patterns,
        opts.layer_types,
        opts.min_evals,
        opts.max_evals,
        opts.layer_ids,
        opts.ww.max_N,
    )


def _unpooled(spec: WeightSpec) -> list[WeightSpec]:
    """WeightWatcher's ``pool=False``: a conv layer as one matrix per kernel position (others as they are),
    each scaled by √rf as WeightWatcher does there (with the conv 1/√2: eigenvalues × rf / 2)."""
    if not spec.layer_type.startswith("conv") or spec.rf == 1:
        return [spec]
    out, inp = spec.shape[0], spec.shape[1]
    parts = []
    for k in range(spec.rf):

        def load(k: int = k, parent: WeightSpec = spec) -> torch.Tensor:
            w = parent.load()
            return w.reshape(w.shape[0], w.shape[1], -1)[:, :, k] * math.sqrt(parent.rf)

        parts.append(
            dataclasses.replace(spec, shape=(out, inp), load=load, slice_of_rf=spec.rf)  # same names and id
        )
    return parts


def _ww_name(spec: WeightSpec) -> str:
    """WeightWatcher's ``name``: a module's last path part; for a state_dict or file, the full key prefix."""
    return spec.short_name or spec.name


def _identity(spec: WeightSpec) -> dict[str, Any]:
    return {
        "layer_id": spec.layer_id,
        "name": _ww_name(spec),
        "longname": spec.name,
        "layer_type": spec.layer_type,
        "N": spec.N,
        "M": spec.M,
        "Q": spec.N / spec.M,
        "rf": spec.slice_of_rf or spec.rf,
        "num_evals": spec.num_evals,
    }


def layer_row(spec: WeightSpec, esd: LayerESD, opts: AnalysisOptions) -> dict[str, Any]:
    """One result row of :func:`analyze`: shape, power-law fit and metrics of one layer's ESD."""
    row = _identity(spec)
    extra: dict[str, Any] = {c: math.nan for c in fit_columns(opts.fit, opts.ww.fix_fingers)}
    if esd.evals is None:
        fitted = PowerLawFit(-1.0, math.nan, math.nan, math.nan, math.nan, 0, "failed", esd.reason)
        logger.warning("layer %s: %s; marked failed", spec.name, esd.reason)
        metrics = {c: math.nan for c in ALWAYS if c not in row}
        metrics["has_esd"] = False
    else:
        ww = opts.ww
        fitted, extra = fit_layer(
            esd.evals,
            opts.fit,
            fix_fingers=ww.fix_fingers,
            xmin_max=ww.xmin_max,
            max_fingers=ww.max_fingers,
            finger_thresh=ww.finger_thresh,
            xmax=ww.xmax,
        )
        eps = float(torch.finfo(opts.torch_dtype).eps)
        metrics = layer_metrics(esd.evals, spec.N, fitted, eps=eps, tolerance=ww.tolerance)
        metrics.update(has_esd=True, sv_min=esd.sv_min)
    row.update(metrics)
    row.update(
        alpha=fitted.alpha,
        xmin=fitted.xmin,
        xmax=fitted.xmax,
        D=fitted.D,
        sigma=fitted.sigma,
        num_pl_spikes=fitted.num_pl_spikes,
        status=fitted.status,
        warning=warning_for(fitted),
        fail_reason=fitted.reason,
    )
    row.update(extra)
    if opts.mp_fit or opts.randomize:
        # lazy: scipy.optimize would add 0.34 s to `import wwtune` (python -X importtime)
        from wwtune.spectral.mp import mp_columns, randomize_columns

        if opts.mp_fit:
            row.update(mp_columns(esd.evals, spec))
        if opts.randomize:
            row.update(
                randomize_columns(esd.evals, spec, seed=opts.seed, device=opts.device, dtype=opts.torch_dtype)
            )
            row["rand_num_spikes"] = row["num_traps"]  # WeightWatcher writes both names
    if opts.keep_evals:
        row["evals"] = esd.evals
    return row


def analyze(source: Any, options: AnalysisOptions | None = None, /, **changes: Any) -> pd.DataFrame:
    """Spectral diagnostics of every weight matrix of a model, one row per layer. Draws nothing (the
    plots are :func:`wwtune.analyze`'s ``plot=`` / ``savefig=``).

    Args:
        source: an ``nn.Module``, a state_dict, a ``.pt``/``.pth``/``.bin``/``.safetensors`` file or a
            Hugging Face model folder (sharded safetensors are read tensor by tensor).
        options: an :class:`AnalysisOptions` (default: all defaults).
        **changes: options given by name, applied over ``options``:
            ``layers`` (fnmatch pattern(s) on the layer ``name`` and/or integer ``layer_id`` values,
            WeightWatcher's ids: the index in ``model.named_modules()``, e.g. ``["fc*", 4]``; default all),
            ``layer_types`` (from ``'dense', 'embedding', 'conv1d', 'conv2d', 'conv3d'``; default all),
            ``min_evals`` (skip layers with fewer eigenvalues; default 8, as WeightWatcher),
            ``max_evals`` (skip layers with more; default 20,000; WeightWatcher: 15,000),
            ``fit`` (``"power_law"``, the CSN fit, default, WeightWatcher's ``"PL"``; ``"hill"``: Hill
            estimator, xmin = median; ``"truncated_power_law"``, WeightWatcher's ``"TPL"``: adds ``Lambda``;
            ``"E_TPL"``),
            ``mp_fit`` (add the Marchenko-Pastur columns ``num_spikes``, ``sigma_mp``, ``mp_softrank``, ...),
            ``randomize`` (add the correlation-trap columns ``num_traps``, ``rand_distance``, ...),
            ``seed`` (of the shuffle used by ``randomize``; default 0),
            ``device`` (``"auto"``: CUDA when available, default; ``"cpu"``, ``"cuda"``, ``"cuda:N"``),
            ``dtype`` (``"float64"``, default, or ``"float32"`` for the Gram matrices and eigensolver),
            ``keep_evals`` (add an ``evals`` column with each layer's eigenvalues, float64, ascending),
            and WeightWatcher 0.7.7's other ``analyze()`` arguments (``fix_fingers``, ``xmax``, ``max_N``,
            ``pool``, …), each taken with WeightWatcher's meaning or refused in one line
            (``WeightWatcherOptionError``; the table: ``docs/weightwatcher-migration.md``).

    Returns:
        A DataFrame with the columns documented in :data:`wwtune.spectral.columns.COLUMNS`.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
        <torch._C.Generator object at ...>
        >>> df = analyze(nn.Sequential(nn.Linear(100, 50), nn.ReLU(), nn.Linear(50, 10)))
        >>> list(df["name"]), list(df["num_evals"])
        (['0', '2'], [50, 10])
    """
    opts = AnalysisOptions.of(options, **changes)
    specs = select_specs(weight_specs(source), opts)
    esds = compute_esds(specs, device=opts.device, dtype=opts.torch_dtype)
    rows = [layer_row(spec, esd, opts) for spec, esd in zip(specs, esds, strict=True)]
    return pd.DataFrame(rows, columns=opts.columns)


#: WeightWatcher 0.7.7's ``describe()`` arguments (the analysis-only ones are not taken there either).
_DESCRIBE_ARGS = frozenset(
    {"min_size", "max_size", "max_N", "glorot_fix", "savefig", "ww2x", "pool", "conv2d_fft", "fft"}
    | {"conv2d_norm", "intra", "channels", "stacked", "start_ids", "base_model", "peft", "model"}
)


def describe(
    source: Any,
    *,
    layers: str | int | Sequence[str | int] | None = None,
    layer_types: str | Sequence[str] | None = None,
    min_evals: int = DEFAULT_MIN_EVALS,
    max_evals: int = DEFAULT_MAX_EVALS,
    **ww_options: Any,
) -> pd.DataFrame:
    """The layers :func:`analyze` would analyze, without computing anything (WeightWatcher's ``describe()``).

    Columns ``layer_id, name, longname, layer_type, N, M, Q, rf, num_evals``; the filters are
    :func:`analyze`'s, and WeightWatcher's ``describe()`` arguments are taken or refused as there.

    Example:
        >>> from torch import nn
        >>> list(describe(nn.Sequential(nn.Linear(100, 50), nn.ReLU(), nn.Linear(50, 10)))["num_evals"])
        [50, 10]
    """
    savefig = ww_options.pop("savefig", None)  # describe draws nothing; a bad value is still named
    if savefig is not None and not isinstance(savefig, (str, os.PathLike, bool)):
        raise TypeError(f"savefig must be a folder path or True but got {savefig!r}.")
    allowed = {k: v for k, v in ww_options.items() if k in _DESCRIBE_ARGS}
    extra = sorted(set(ww_options) - set(allowed))
    if extra:
        raise WeightWatcherOptionError(
            f"describe() got an unexpected keyword argument {extra[0]!r} (WeightWatcher's describe() does "
            "not take it either; analysis options belong to analyze())"
        )
    given = {"min_evals": min_evals, "max_evals": max_evals}  # only those that differ from the defaults
    given = {
        k: v for k, v in given.items() if v != {"min_evals": DEFAULT_MIN_EVALS}.get(k, DEFAULT_MAX_EVALS)
    }
    opts = AnalysisOptions.of(layers=layers, layer_types=layer_types, device="cpu", **given, **allowed)
    rows = [_identity(s) for s in select_specs(weight_specs(source), opts)]
    return pd.DataFrame(rows, columns=list(DESCRIBE_COLUMNS))
