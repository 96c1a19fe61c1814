"""``analyze``: any PyTorch model's layers → one DataFrame row of spectral diagnostics per layer."""

from __future__ import annotations

import fnmatch
import logging
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from wwtune.spectral.columns import ALWAYS, LAYER_TYPES, MP_COLUMNS, RANDOMIZE_COLUMNS
from wwtune.spectral.esd import compute_esds, resolve_device
from wwtune.spectral.layers import WeightSpec, weight_specs
from wwtune.spectral.metrics import layer_metrics, warning_for
from wwtune.spectral.powerlaw import PowerLawFit, fit_hill, fit_power_law

__all__ = ["DEFAULT_MAX_EVALS", "DEFAULT_MIN_EVALS", "FITS", "analyze"]

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


def _select(specs: list[WeightSpec], layers: list[str] | None, layer_types: list[str] | None,
            min_evals: int, max_evals: int) -> list[WeightSpec]:
    chosen = specs
    if layers is not None:
        chosen = [s for s in chosen if any(fnmatch.fnmatchcase(s.name, p) for p in layers)]
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
            f"layers={layers!r}, layer_types={layer_types!r}, min_evals={min_evals}, max_evals={max_evals}.")
    return kept


def analyze(
    source: Any,
    *,
    layers: str | Sequence[str] | None = None,
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
) -> pd.DataFrame:
    """Spectral diagnostics of every weight matrix of a model, one row per layer.

    Args:
        source: an ``nn.Module``, a state_dict, a ``.pt``/``.pth``/``.bin``/``.safetensors`` file or a
            Hugging Face model folder (sharded safetensors are read tensor by tensor).
        layers: fnmatch pattern(s) on the layer ``name``; default: all layers.
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
    layers_ = _patterns(layers, "layers")
    types_ = _patterns(layer_types, "layer_types")
    if types_ is not None:
        bad = [t for t in types_ if t not in LAYER_TYPES]
        if bad:
            raise ValueError(f"layer_types must be among {list(LAYER_TYPES)} but got {bad!r}.")
    min_evals = _check_int(min_evals, "min_evals", 1)
    max_evals = _check_int(max_evals, "max_evals", 1)
    if max_evals < min_evals:
        raise ValueError(f"max_evals cannot be less than min_evals but got max_evals={max_evals}, "
                         f"min_evals={min_evals}.")
    if fit not in FITS:
        raise ValueError(f"fit must be one of {list(FITS)} but got {fit!r}.")
    mp_fit = _check_bool(mp_fit, "mp_fit")
    randomize = _check_bool(randomize, "randomize")
    seed = _check_int(seed, "seed", 0)
    keep_evals = _check_bool(keep_evals, "keep_evals")
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {list(_DTYPES)} but got {dtype!r}.")
    dev = resolve_device(device)

    specs = _select(weight_specs(source), layers_, types_, min_evals, max_evals)
    esds = compute_esds(specs, device=dev, dtype=_DTYPES[dtype])
    fitter = FITS[fit]
    rows = []
    for spec, esd in zip(specs, esds, strict=True):
        row: dict[str, Any] = {"name": spec.name, "layer_type": spec.layer_type, "N": spec.N, "M": spec.M,
                               "Q": spec.N / spec.M, "rf": spec.rf, "num_evals": spec.num_evals}
        if esd.evals is None:
            fitted = PowerLawFit(-1.0, math.nan, math.nan, math.nan, math.nan, 0, "failed", esd.reason)
            logger.warning("layer %s: %s; marked failed", spec.name, esd.reason)
            metrics = {c: math.nan for c in ALWAYS if c not in row}
        else:
            fitted = fitter(esd.evals)
            metrics = layer_metrics(esd.evals, spec.N, fitted, eps=float(torch.finfo(_DTYPES[dtype]).eps))
        row.update(metrics)
        row.update(alpha=fitted.alpha, xmin=fitted.xmin, xmax=fitted.xmax, D=fitted.D, sigma=fitted.sigma,
                   num_pl_spikes=fitted.num_pl_spikes, status=fitted.status, warning=warning_for(fitted),
                   fail_reason=fitted.reason)
        if mp_fit or randomize:
            # lazy: scipy.optimize would add 0.34 s to `import wwtune` (python -X importtime)
            from wwtune.spectral.mp import mp_columns, randomize_columns

            if mp_fit:
                row.update(mp_columns(esd.evals, spec))
            if randomize:
                row.update(randomize_columns(esd.evals, spec, seed=seed, device=dev, dtype=_DTYPES[dtype]))
        if keep_evals:
            row["evals"] = esd.evals
        rows.append(row)
    columns = list(ALWAYS) + (list(MP_COLUMNS) if mp_fit else []) + \
        (list(RANDOMIZE_COLUMNS) if randomize else []) + (["evals"] if keep_evals else [])
    return pd.DataFrame(rows, columns=columns)
