"""WeightWatcher 0.7.7's ``analyze()`` / ``describe()`` arguments in wwtune — the one place they are declared.

Every argument is one of: ``same`` (``wwtune.analyze`` has it under that name, with WeightWatcher's meaning),
``taken`` (``wwtune.analyze`` / ``describe`` take it as a keyword with WeightWatcher's meaning; validated
into :class:`WWOptions`), ``default only`` (WeightWatcher's default value is what wwtune always does;
another value is refused) or ``refused``. A refusal is one :class:`WeightWatcherOptionError` line naming the
WeightWatcher option and the wwtune equivalent or why there is none. ``docs/weightwatcher-migration.md``
shows this table (``tests/test_ww_args.py`` checks both against WeightWatcher's signatures).
"""

from __future__ import annotations

import difflib
import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from wwtune.exceptions import WwtuneError

__all__ = [
    "WW_ARGS",
    "WW_FITS",
    "WW_VERSION",
    "WWArg",
    "WWOptions",
    "WeightWatcherOptionError",
    "check_ww_options",
    "ww_fit",
    "ww_table_markdown",
]

logger = logging.getLogger(__name__)

WW_VERSION = "0.7.7"


class WeightWatcherOptionError(WwtuneError, TypeError):
    """A WeightWatcher argument (or value) wwtune does not take; the message is one line."""


@dataclass(frozen=True)
class WWArg:
    """How wwtune treats one WeightWatcher argument: ``status`` and a one-line ``note``."""

    status: str  # "same" | "taken" | "default only" | "refused"
    note: str
    default: Any = None  # for "default only": the one value accepted (WeightWatcher's default)


def _only(default: Any, note: str) -> WWArg:
    return WWArg("default only", note, default)


#: WeightWatcher's fit names → wwtune's (``E_TPL`` also sets ``fix_fingers='xmin_peak'``, as WeightWatcher).
WW_FITS = {
    "PL": "power_law",
    "power_law": "power_law",
    "TPL": "truncated_power_law",
    "truncated_power_law": "truncated_power_law",
    "E_TPL": "truncated_power_law",
}
_FINGERS = ("xmin_peak", "clip_xmax")

WW_ARGS: dict[str, WWArg] = {
    "model": WWArg("refused", "pass the model as the first argument: wwtune.analyze(model)"),
    "layers": WWArg(
        "same",
        "layer_id integers (negative ids: skip those layers) and also fnmatch patterns on longname/name",
    ),
    "min_evals": WWArg("same", "skip layers with fewer eigenvalues (default 8, as WeightWatcher)"),
    "max_evals": WWArg("same", "skip layers with more eigenvalues; 0: no limit (wwtune's default 20,000)"),
    "min_size": WWArg("taken", "WeightWatcher's old name of min_evals; taken as min_evals"),
    "max_size": WWArg("taken", "WeightWatcher's old name of max_evals; taken as max_evals"),
    "max_N": WWArg("taken", "skip layers whose larger side N exceeds it (default 50,000)"),
    "glorot_fix": _only(False, "wwtune does not rescale weights by the Glorot factor; rescale W yourself"),
    "plot": WWArg("same", "save α-per-layer and ESD plots (into savefig, default ww-img)"),
    "randomize": WWArg("same", "correlation-trap columns (num_traps = rand_num_spikes, rand_distance, …)"),
    "savefig": WWArg("same", "folder for the plots; a folder implies plot=True"),
    "mp_fit": WWArg("same", "Marchenko-Pastur columns (num_spikes, sigma_mp, mp_softrank, …)"),
    "conv2d_norm": _only(True, "conv kernel slices are always scaled by 1/√2 (WeightWatcher's default)"),
    "ww2x": WWArg("taken", "WeightWatcher's deprecated name: ww2x=True is pool=False"),
    "pool": WWArg(
        "taken",
        "True (default): one ESD per conv layer, its kernel positions pooled; False: one row per kernel "
        "position (same layer_id, name and rf; num_evals = M)",
    ),
    "conv2d_fft": _only(False, "FFT of conv kernels is not available (deprecated in WeightWatcher)"),
    "fft": _only(False, "FFT of conv maps is not available (experimental in WeightWatcher)"),
    "deltas": _only(False, "eigenvalue-spacing plots are not available; use keep_evals=True and np.diff"),
    "intra": _only(False, "intra-layer (W_i+1·W_i) analysis is not available"),
    "vectors": _only(False, "eigenvector metrics are not available; wwtune computes eigenvalues only"),
    "channels": _only(None, "wwtune reads PyTorch layouts (out, in, *kernel) only"),
    "stacked": _only(False, "stacking all layers into one matrix is not available"),
    "fix_fingers": WWArg("taken", "'xmin_peak' or 'clip_xmax' (adds num_fingers, raw_alpha)"),
    "xmin_max": WWArg("taken", "top of the xmin range of fix_fingers='xmin_peak'"),
    "max_fingers": WWArg("taken", "most top eigenvalues clip_xmax may clip (default 10)"),
    "finger_thresh": WWArg("taken", "how far α must drop for clip_xmax to keep a clip (default 1.0)"),
    "fit": WWArg("same", "'PL', 'TPL' (adds Lambda), 'E_TPL' (TPL with xmin_peak), and wwtune's 'hill'"),
    "sparsify": WWArg("taken", "only used with intra=True, which wwtune does not take; accepted, no effect"),
    "detX": _only(False, "the detX (trace-log-norm) constraint is not available"),
    "ERG": _only(False, "the ERG (exact renormalization group) condition is not available"),
    "svd_method": WWArg(
        "taken", "'fast' and 'accurate' both give every eigenvalue (float64 Gram eigvalsh); see dtype="
    ),
    "tolerance": WWArg("taken", "threshold of weak_rank_loss (#λ < tolerance, default 1e-6)"),
    "start_ids": WWArg("taken", "added to layer_id (0 or more); layers= ids use the shifted ids"),
    "pl_package": WWArg(
        "taken",
        "'ww' or 'powerlaw': wwtune always uses its own fit, which reproduces WeightWatcher's 'ww' fit",
    ),
    "xmax": WWArg("taken", "None, or an integer k: the k largest eigenvalues are left out of the fit"),
    "base_model": WWArg("refused", "delta analysis is wwtune.compare(base_model, model)"),
    "peft": _only(
        False, "merge LoRA adapters first (peft's model.merge_and_unload()), then analyze the model"
    ),
    "inverse": _only(False, "eigenvalues of the inverse are not available"),
}


@dataclass(frozen=True)
class WWOptions:
    """WeightWatcher options ``wwtune.analyze`` takes beyond its own (validated; WeightWatcher's defaults)."""

    max_N: int = 50_000  # noqa: N815 - WeightWatcher's name
    fix_fingers: str | None = None
    xmin_max: float | None = None
    max_fingers: int = 10
    finger_thresh: float = 1.0
    xmax: int | None = None
    tolerance: float = 1e-6
    start_ids: int = 0
    pool: bool = True


def _bad(option: str, value: Any, allowed: str) -> WeightWatcherOptionError:
    return WeightWatcherOptionError(f"{option} must be {allowed} but got {value!r}.")


def _int(value: Any, option: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise _bad(option, value, f"an integer ≥ {low}")
    return int(value)


def _number(value: Any, option: str, positive: bool = True) -> float:
    ok = not isinstance(value, bool) and isinstance(value, (int, float, np.integer, np.floating))
    if not ok or not math.isfinite(float(value)) or (positive and value <= 0):
        raise _bad(option, value, "a positive number" if positive else "a number")
    return float(value)


def ww_fit(fit: Any) -> tuple[str, bool]:
    """``fit`` (wwtune's or WeightWatcher's name) → (wwtune's fit name, whether it implies xmin_peak)."""
    if isinstance(fit, str) and fit in WW_FITS:
        return WW_FITS[fit], fit == "E_TPL"
    return fit, False


def _unknown(name: str, call: str) -> WeightWatcherOptionError:
    if name in WW_ARGS:  # an option of the public wwtune.analyze that this lower-level call does not take
        return WeightWatcherOptionError(
            f"{call}() got an unexpected keyword argument {name!r} (an option of wwtune.{call}, which takes "
            f"it before the analysis; this call does not)"
        )
    close = difflib.get_close_matches(name, list(WW_ARGS), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return WeightWatcherOptionError(
        f"{call}() got an unexpected keyword argument {name!r} (neither a wwtune nor a WeightWatcher "
        f"{WW_VERSION} option{hint})"
    )


def check_ww_options(
    options: dict[str, Any], call: str = "analyze", allowed: Any = None
) -> tuple[WWOptions, dict[str, Any]]:
    """Validate WeightWatcher keyword arguments given to ``call`` (``analyze`` / ``describe``).

    Returns the :class:`WWOptions` and the wwtune keyword arguments they stand for (``min_size`` →
    ``min_evals``, ``max_size`` → ``max_evals``). Raises :class:`WeightWatcherOptionError` (one line) for a
    refused option or value and for a name that is no option at all.
    """
    values: dict[str, Any] = {}
    renamed: dict[str, Any] = {}
    for name, value in options.items():
        arg = WW_ARGS.get(name) if allowed is None or name in allowed else None
        if arg is None or arg.status == "same":
            raise _unknown(name, call)
        if arg.status == "refused":
            raise WeightWatcherOptionError(f"WeightWatcher's {name}= is not a wwtune option: {arg.note}.")
        if arg.status == "default only":
            if value is arg.default or (value == arg.default and type(value) is type(arg.default)):
                continue
            raise WeightWatcherOptionError(
                f"WeightWatcher's {name}={value!r} is not available in wwtune (only {arg.default!r}): "
                f"{arg.note}."
            )
        if name in ("min_size", "max_size"):
            if value is not None:
                renamed["min_evals" if name == "min_size" else "max_evals"] = value
        elif name in ("pool", "ww2x"):
            if not isinstance(value, (bool, np.bool_)):
                raise _bad(name, value, "True or False")
            if name == "pool" or value:
                values["pool"] = bool(value) if name == "pool" else False
        elif name == "sparsify":
            if not isinstance(value, (bool, np.bool_)):
                raise _bad("sparsify", value, "True or False")
        elif name == "svd_method":
            if value not in ("fast", "accurate"):
                raise _bad("svd_method", value, "'fast' or 'accurate' (wwtune computes every eigenvalue)")
        elif name == "pl_package":
            if value not in ("ww", "powerlaw"):
                raise _bad("pl_package", value, "'ww' or 'powerlaw'")
        elif name == "fix_fingers":
            if value not in (False, None, *_FINGERS):
                raise _bad("fix_fingers", value, f"False, {_FINGERS[0]!r} or {_FINGERS[1]!r}")
            values[name] = value or None
        elif name == "xmax":
            if value == "force":
                raise WeightWatcherOptionError(
                    "WeightWatcher's xmax='force' (a power law bounded at λ_max, only with "
                    "pl_package='powerlaw') is not available: wwtune's fit is unbounded; xmax=k leaves out "
                    "the k largest eigenvalues."
                )
            values[name] = None if value is None or value is False else abs(_xmax(value))
        elif name in ("max_N", "max_fingers"):
            values[name] = _int(value, name, 1)
        elif name == "start_ids":
            values[name] = _int(value, name, 0)
        elif name in ("xmin_max",):
            values[name] = None if value is None else _number(value, name)
        elif name in ("finger_thresh", "tolerance"):
            values[name] = _number(value, name)
    return WWOptions(**values), renamed


def _xmax(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value == 0:
        raise _bad("xmax", value, "None or a non-zero integer (the number of top eigenvalues to leave out)")
    return int(value)


def ww_table_markdown() -> str:
    """The option table of ``docs/weightwatcher-migration.md`` (one row per WeightWatcher argument)."""
    rows = ["| WeightWatcher argument | in wwtune | what it does / why not |", "|---|---|---|"]
    for name, arg in WW_ARGS.items():
        status = f"only `{arg.default!r}`" if arg.status == "default only" else arg.status
        rows.append(f"| `{name}` | {status} | {arg.note} |")
    return "\n".join(rows)
