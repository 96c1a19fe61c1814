"""``analyze``: any PyTorch model's layers → one DataFrame row of spectral diagnostics per layer."""

from __future__ import annotations

import dataclasses
import fnmatch
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from wwtune.spectral.columns import ALWAYS, LAYER_TYPES, MP_COLUMNS, RANDOMIZE_COLUMNS
from wwtune.spectral.esd import LayerESD, compute_esds, resolve_device
from wwtune.spectral.layers import WeightSpec, weight_specs
from wwtune.spectral.metrics import layer_metrics, warning_for
from wwtune.spectral.powerlaw import PowerLawFit, fit_hill, fit_power_law

__all__ = [
    "DEFAULT_MAX_EVALS",
    "DEFAULT_MIN_EVALS",
    "DEFAULT_PLOT_DIR",
    "FITS",
    "Options",
    "analyze",
    "check_options",
    "layer_row",
    "select_specs",
]

logger = logging.getLogger(__name__)

#: WeightWatcher's smallest analyzed layer (fewer eigenvalues: skipped).
DEFAULT_MIN_EVALS = 8
#: Above WeightWatcher's 15,000 (it caps for speed); a 20,000² float64 Gram already takes 3.2 GB.
DEFAULT_MAX_EVALS = 20_000
FITS = {"power_law": fit_power_law, "hill": fit_hill}
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
    if negative:
        raise ValueError(
            f"layers: layer ids are indices in model.named_modules() (0 or more) but got "
            f"{negative}; to leave layers out, list the ids or name patterns to keep."
        )
    patterns = [p for p in items if isinstance(p, str)]
    return patterns or None, ids or None


def _assign_layer_ids(specs: list[WeightSpec]) -> None:
    """Ids for weights that did not come from a module (state_dict, file): the order of their modules."""
    if all(s.layer_id is not None for s in specs):
        return
    order: dict[str, int] = {}
    for s in specs:
        module = s.name.rsplit(".in_proj.", 1)[0]  # a packed q/k/v triple shares its attention module's id
        s.layer_id = order.setdefault(module, len(order))


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
) -> list[WeightSpec]:
    chosen = specs
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
            if any(fnmatch.fnmatchcase(s.name, p) for p in layers or ()) or s.layer_id in (layer_ids or ())
        ]
    if layer_types is not None:
        chosen = [s for s in chosen if s.layer_type in layer_types]
    kept = [s for s in chosen if min_evals <= s.num_evals <= max_evals]
    for s in chosen:
        if s.num_evals > max_evals:
            logger.info("skipping %s: %d eigenvalues > max_evals=%d", s.name, s.num_evals, max_evals)
    if not kept:
        found = ", ".join(f"{s.name} ({s.layer_type}, {s.num_evals} evals)" for s in specs[:10]) or "none"
        raise ValueError(
            f"no analyzable layer: {len(specs)} weight matrices found [{found}], none left after "
            f"layers={layers!r}, layer_types={layer_types!r}, min_evals={min_evals}, max_evals={max_evals}."
        )
    return kept


@dataclass(frozen=True)
class Options:
    """``analyze``'s options, validated once (:func:`check_options`); shared with ``wwtune.compare``."""

    layers: list[str] | None
    layer_ids: list[int] | None
    layer_types: list[str] | None
    min_evals: int
    max_evals: int
    fit: str
    mp_fit: bool
    randomize: bool
    seed: int
    device: torch.device
    dtype: torch.dtype
    keep_evals: bool

    @property
    def columns(self) -> list[str]:
        """The result columns, in order."""
        return (
            list(ALWAYS)
            + (list(MP_COLUMNS) if self.mp_fit else [])
            + (list(RANDOMIZE_COLUMNS) if self.randomize else [])
            + (["evals"] if self.keep_evals else [])
        )


def check_options(
    *,
    layers: Any = None,
    layer_types: Any = None,
    min_evals: Any = DEFAULT_MIN_EVALS,
    max_evals: Any = DEFAULT_MAX_EVALS,
    fit: Any = "power_law",
    mp_fit: Any = False,
    randomize: Any = False,
    seed: Any = 0,
    device: Any = "auto",
    dtype: Any = "float64",
    keep_evals: Any = False,
) -> Options:
    """Validate :func:`analyze`'s keyword options (TypeError / ValueError naming the bad value)."""
    layers_, layer_ids = _layer_filter(layers)
    types_ = _patterns(layer_types, "layer_types")
    if types_ is not None:
        bad = [t for t in types_ if t not in LAYER_TYPES]
        if bad:
            raise ValueError(f"layer_types must be among {list(LAYER_TYPES)} but got {bad!r}.")
    min_evals = _check_int(min_evals, "min_evals", 1)
    max_evals = _check_int(max_evals, "max_evals", 1)
    if max_evals < min_evals:
        raise ValueError(
            f"max_evals cannot be less than min_evals but got max_evals={max_evals}, min_evals={min_evals}."
        )
    if fit not in FITS:
        raise ValueError(f"fit must be one of {list(FITS)} but got {fit!r}.")
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {list(_DTYPES)} but got {dtype!r}.")
    return Options(
        layers=layers_,
        layer_ids=layer_ids,
        layer_types=types_,
        min_evals=min_evals,
        max_evals=max_evals,
        fit=fit,
        mp_fit=_check_bool(mp_fit, "mp_fit"),
        randomize=_check_bool(randomize, "randomize"),
        seed=_check_int(seed, "seed", 0),
        device=resolve_device(device),
        dtype=_DTYPES[dtype],
        keep_evals=_check_bool(keep_evals, "keep_evals"),
    )


def select_specs(specs: list[WeightSpec], opts: Options) -> list[WeightSpec]:
    """The specs kept by the ``layers`` / ``layer_types`` / ``min_evals`` / ``max_evals`` filters."""
    _assign_layer_ids(specs)
    return _select(specs, opts.layers, opts.layer_types, opts.min_evals, opts.max_evals, opts.layer_ids)


def layer_row(spec: WeightSpec, esd: LayerESD, opts: Options) -> dict[str, Any]:
    """One result row of :func:`analyze`: shape, power-law fit and metrics of one layer's ESD."""
    row: dict[str, Any] = {
        "layer_id": spec.layer_id,
        "name": spec.name,
        "longname": spec.name,
        "layer_type": spec.layer_type,
        "N": spec.N,
        "M": spec.M,
        "Q": spec.N / spec.M,
        "rf": spec.rf,
        "num_evals": spec.num_evals,
    }
    if esd.evals is None:
        fitted = PowerLawFit(-1.0, math.nan, math.nan, math.nan, math.nan, 0, "failed", esd.reason)
        logger.warning("layer %s: %s; marked failed", spec.name, esd.reason)
        metrics = {c: math.nan for c in ALWAYS if c not in row}
    else:
        fitted = FITS[opts.fit](esd.evals)
        metrics = layer_metrics(esd.evals, spec.N, fitted, eps=float(torch.finfo(opts.dtype).eps))
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
    if opts.mp_fit or opts.randomize:
        # lazy: scipy.optimize would add 0.34 s to `import wwtune` (python -X importtime)
        from wwtune.spectral.mp import mp_columns, randomize_columns

        if opts.mp_fit:
            row.update(mp_columns(esd.evals, spec))
        if opts.randomize:
            row.update(
                randomize_columns(esd.evals, spec, seed=opts.seed, device=opts.device, dtype=opts.dtype)
            )
    if opts.keep_evals:
        row["evals"] = esd.evals
    return row


def analyze(
    source: Any,
    *,
    layers: str | int | Sequence[str | int] | None = None,
    layer_types: str | Sequence[str] | None = None,
    min_evals: int = DEFAULT_MIN_EVALS,
    max_evals: int = DEFAULT_MAX_EVALS,
    fit: str = "power_law",
    mp_fit: bool = False,
    randomize: bool = False,
    seed: int = 0,
    device: str | torch.device = "auto",
    dtype: str = "float64",
    keep_evals: bool = False,
    plot: bool = False,
    savefig: str | os.PathLike[str] | bool | None = None,
) -> pd.DataFrame:
    """Spectral diagnostics of every weight matrix of a model, one row per layer.

    Args:
        source: an ``nn.Module``, a state_dict, a ``.pt``/``.pth``/``.bin``/``.safetensors`` file or a
            Hugging Face model folder (sharded safetensors are read tensor by tensor).
        layers: fnmatch pattern(s) on the layer ``name`` and/or integer ``layer_id`` values (WeightWatcher's
            ids: the index in ``model.named_modules()``), e.g. ``["fc*", 4]``; default: all layers.
        layer_types: type(s) to keep, from ``'dense', 'embedding', 'conv1d', 'conv2d', 'conv3d'``;
            default: all.
        min_evals: skip layers with fewer eigenvalues (default 8, as WeightWatcher).
        max_evals: skip layers with more eigenvalues (default 20,000; WeightWatcher: 15,000).
        fit: ``"power_law"`` (the CSN fit, default) or ``"hill"`` (Hill estimator, xmin = median).
        mp_fit: add the Marchenko-Pastur columns (``num_spikes``, ``sigma_mp``, ``mp_softrank``, ...).
        randomize: add the correlation-trap columns (``num_traps``, ``rand_distance``, ...).
        seed: seed of the shuffle used by ``randomize`` (default 0).
        device: ``"auto"`` (CUDA when available, default), ``"cpu"``, ``"cuda"``, ``"cuda:N"``.
        dtype: ``"float64"`` (default) or ``"float32"`` for the Gram matrices and eigensolver.
        keep_evals: add an ``evals`` column with each layer's eigenvalues (float64, ascending).
        plot: write the plots of :func:`wwtune.report.save_model_plots` (α per layer, each layer's ESD)
            into ``savefig`` (default folder ``ww-img``, as WeightWatcher's); the paths are in
            ``df.attrs["plots"]``. Default False.
        savefig: folder for the plots; giving one implies ``plot=True`` (``True``: ``ww-img``).

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
    opts = check_options(
        layers=layers,
        layer_types=layer_types,
        min_evals=min_evals,
        max_evals=max_evals,
        fit=fit,
        mp_fit=mp_fit,
        randomize=randomize,
        seed=seed,
        device=device,
        dtype=dtype,
        keep_evals=keep_evals,
    )
    plot_dir = _plot_dir(_check_bool(plot, "plot"), savefig)
    if plot_dir is not None and not opts.keep_evals:
        opts = dataclasses.replace(opts, keep_evals=True)  # the ESD plots need the eigenvalues
    specs = select_specs(weight_specs(source), opts)
    esds = compute_esds(specs, device=opts.device, dtype=opts.dtype)
    rows = [layer_row(spec, esd, opts) for spec, esd in zip(specs, esds, strict=True)]
    df = pd.DataFrame(rows, columns=opts.columns)
    if plot_dir is not None:
        # lazy: matplotlib only when plots are asked for
        from wwtune.report import save_model_plots

        paths = save_model_plots(df, plot_dir, min_evals=opts.min_evals)
        logger.info("analyze: %d plots written to %s", len(paths), plot_dir)
        if not keep_evals:
            df = df.drop(columns=["evals"])
        df.attrs["plots"] = [str(p) for p in paths]
    return df


#: WeightWatcher's default folder for ``savefig``.
DEFAULT_PLOT_DIR = "ww-img"


def _plot_dir(plot: bool, savefig: Any) -> Path | None:
    """Where ``plot=True`` / ``savefig=`` write the figures, or None for no plots."""
    if savefig is None or savefig is False:
        return Path(DEFAULT_PLOT_DIR) if plot else None
    if savefig is True:
        return Path(DEFAULT_PLOT_DIR)
    if not isinstance(savefig, (str, os.PathLike)) or not str(savefig):
        raise TypeError(f"savefig must be a folder path or True but got {savefig!r}.")
    return Path(savefig)
