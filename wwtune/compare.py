"""``compare``: two versions of a model, layer by layer: did the new one break something?

Pure (torch, numpy, pandas; only :mod:`wwtune.spectral` from wwtune). Both models are read tensor by tensor:
one pair of matching weights is loaded, checked for byte identity, analysed and dropped before the next,
so memory stays bounded by the largest pair of tensors, not by the models.

Two spectral distances between the ESDs (eigenvalues of WᵀW) of the base and the new layer:

* ``esd_distance``, the one the verdict and the default ``--fail-on`` use: the **1-Wasserstein distance
  between the two ESDs on a log10 scale**, i.e. the mean over quantiles of |log10 λ_new − log10 λ_base|
  (the i-th smallest eigenvalue against the i-th smallest), in decades; eigenvalues below the rank noise
  floor (λ_max · N · eps, as ``matrix_rank``) count as the floor. Why: ESDs span orders of magnitude, so
  "how far did the eigenvalues move" is a ratio, read on a log scale; the mean over the whole spectrum
  sees the bulk, which α (a tail fit) ignores, and one eigenvalue crossing another barely moves it.
  Compression noise lifts the small eigenvalues and pruning lowers all of them: on MiniLM a 4-bit round
  trip reads 0.07-0.14, 90 % pruning 0.24-0.35, a light fine-tune ≤ 0.001, and a layer scaled by s reads
  exactly |2 log10 s| (0.0087 for s = 0.99).
* ``esd_ks``: the two-sample **Kolmogorov-Smirnov distance** (largest gap between the empirical
  distribution functions; 0 … 1, no binning or fit, unchanged by any monotone rescaling of λ such as the
  log). It says how much the *shape* of the spectrum changed; it moves in steps of 1/M (one eigenvalue
  passing another), so it is a coarse signal for small layers, and compression moves it less than
  ``esd_distance`` (4-bit: 0.04-0.08).

Verdicts (column ``verdict``, in words; several are joined by "; "):
``unchanged`` (byte-identical weights, or the same spectrum when the base is a stored analysis),
``small change`` (nothing below fired), ``removed`` / ``added`` / ``reshaped`` / ``renamed from X``,
``crossed above/below the band`` (α was inside ``band`` and left it), ``became under-trained``
(α > 6 now), ``became over-trained`` (α < 2 now), ``fit failed`` (the new fit failed, the base's did not),
``new correlation trap`` (with ``randomize=True``: more traps than the base), ``rank collapse``
(at least :data:`RANK_COLLAPSE_SHARE` of the eigenvalues newly lost to the noise floor),
``spectrum changed`` (``esd_distance`` above :data:`ESD_CHANGED` or ``esd_ks`` above :data:`KS_CHANGED`),
``norm grew/shrank ×f`` (‖W‖_F changed by the factor f; |Δ log10 Σλ| above :data:`NORM_CHANGED`),
``α shifted`` (|Δα| above :data:`ALPHA_SHIFT`). A fit of α can jump when a small change moves the chosen
``xmin``; ``crossed`` and ``α shifted`` inherit that noise, the spectral distances do not.
"""

from __future__ import annotations

import fnmatch
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd
import torch

from wwtune.compare_rules import DEFAULT_FAIL_ON, RULES, check_rules, parse_rules
from wwtune.compare_verdict import (
    ALPHA_SHIFT,
    ESD_CHANGED,
    KS_CHANGED,
    NORM_CHANGED,
    RANK_COLLAPSE_SHARE,
    events,
)
from wwtune.execution import check_execution, layer_task, run_tasks
from wwtune.spectral.analyze import AnalysisOptions, layer_row, select_specs
from wwtune.spectral.distance import esd_distance, ks_distance
from wwtune.spectral.esd import compute_esds
from wwtune.spectral.layers import WeightSpec, weight_specs

__all__ = [
    "ALPHA_SHIFT",
    "DEFAULT_FAIL_ON",
    "ESD_CHANGED",
    "KS_CHANGED",
    "NORM_CHANGED",
    "RANK_COLLAPSE_SHARE",
    "RULES",
    "SIDE_COLUMNS",
    "check_rules",
    "compare",
    "esd_distance",
    "ks_distance",
    "parse_rules",
    "write_baseline",
]

#: Columns taken from each side's analysis, suffixed ``_base`` / ``_new``.
SIDE_COLUMNS = (
    "alpha",
    "D",
    "log_norm",
    "log_spectral_norm",
    "stable_rank",
    "matrix_rank",
    "rank_loss",
    "num_evals",
    "status",
    "warning",
)
#: Side columns added with ``mp_fit=True`` / ``randomize=True``.
MP_SIDE_COLUMNS = ("num_spikes", "mp_softrank")
RANDOMIZE_SIDE_COLUMNS = ("num_traps", "rand_distance")
#: Warning thresholds of ``analyze`` (over-trained below, under-trained above).
_OVER, _UNDER = 2.0, 6.0
_BASELINE_NEEDS = (
    "name",
    "layer_type",
    "N",
    "M",
    "rf",
    "num_evals",
    "alpha",
    "status",
    "warning",
    "D",
    "log_norm",
    "log_spectral_norm",
    "stable_rank",
    "matrix_rank",
    "rank_loss",
    "norm",
    "lambda_max",
)


# ------------------------------------------------------------------------------------------------ helpers
def _same_bytes(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Bitwise equality of two tensors (dtype, shape and every byte; NaN payloads included)."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.data_ptr() == b.data_ptr() and a.stride() == b.stride():
        return True
    return torch.equal(a.contiguous().view(torch.uint8), b.contiguous().view(torch.uint8))


def _frobenius(w: torch.Tensor, other: torch.Tensor | None = None, chunk: int = 1 << 21) -> float:
    """‖w‖_F, or ‖other − w‖_F, in float64 over row chunks of about ``chunk`` elements (16 MB)."""
    a = w.reshape(w.shape[0], -1)
    b = other.reshape(other.shape[0], -1) if other is not None else None
    rows = max(1, chunk // max(1, a.shape[1]))
    total = 0.0
    for r in range(0, a.shape[0], rows):
        c = a[r : r + rows].to(torch.float64)
        if b is not None:
            c = b[r : r + rows].to(torch.float64) - c
        total += float(torch.sum(c * c))
    return math.sqrt(total)


def _shape_text(n: Any, m: Any, rf: Any) -> str:
    text = f"{int(n)}×{int(m)}"
    return text if int(rf) == 1 else f"{text}×{int(rf)}"


@dataclass
class _Side:
    """One model's view of a layer: an analyze row (dict) and, when available, the weights' spec."""

    row: dict[str, Any]
    spec: WeightSpec | None = None


# ------------------------------------------------------------------------------------------------ compare
def _is_baseline_table(base: Any) -> bool:
    return isinstance(base, pd.DataFrame) or (
        isinstance(base, (str, Path)) and str(base).lower().endswith(".csv")
    )


def _baseline_rows(base: Any, opts: AnalysisOptions) -> list[dict[str, Any]]:
    df = base
    if not isinstance(base, pd.DataFrame):
        path = Path(base)
        if not path.is_file():
            raise FileNotFoundError(f"no such baseline CSV: {str(path)!r}")
        df = pd.read_csv(path, keep_default_na=False, na_values=["", "NaN", "nan"])
    missing = [c for c in _BASELINE_NEEDS if c not in df.columns]
    if missing:
        raise ValueError(
            f"the baseline table lacks analyze() column(s) {missing}; pass the DataFrame of "
            f"wwtune.analyze() or the CSV of `wwtune analyze`."
        )
    df = df.copy()
    df["warning"] = df["warning"].fillna("").astype(str)
    if "evals" in df.columns:  # a CSV of write_baseline(): JSON lists
        df["evals"] = [
            np.asarray(json.loads(v), dtype=np.float64)
            if isinstance(v, str) and v
            else (v if isinstance(v, (np.ndarray, list)) else None)
            for v in df["evals"]
        ]
    rows = df.to_dict("records")
    if opts.layer_patterns is not None:
        rows = [
            r
            for r in rows
            if any(fnmatch.fnmatchcase(str(r.get("longname") or r["name"]), p) for p in opts.layer_patterns)
        ]
    if opts.layer_types is not None:
        rows = [r for r in rows if r["layer_type"] in opts.layer_types]
    return [r for r in rows if opts.min_evals <= int(r["num_evals"]) <= opts.max_evals]


def _held(spec: WeightSpec, w: torch.Tensor) -> WeightSpec:
    """``spec`` with its already loaded weight (each tensor is read once)."""
    return WeightSpec(spec.name, spec.layer_type, spec.shape, lambda: w)


def write_baseline(df: pd.DataFrame, path: str | Path | IO[str]) -> Path | IO[str]:
    """Write an :func:`wwtune.analyze` result as a CSV baseline for :func:`compare`, eigenvalues included
    (``keep_evals=True``: the ``evals`` column as JSON lists), so that a later compare against it has the
    spectral distances too. Returns the path (``path`` may also be an open text stream, e.g. stdout).

    Example::

        wwtune.write_baseline(wwtune.analyze("model_v1/", keep_evals=True), "baseline.csv")
    """
    out = df.copy()
    if "evals" in out.columns:
        out["evals"] = [
            json.dumps([float(x) for x in np.asarray(v)]) if v is not None else "" for v in out["evals"]
        ]
    if hasattr(path, "write"):
        out.to_csv(path, index=False)
        return path
    path = Path(path)
    out.to_csv(path, index=False)
    return path


def _analyse_pair(sb: WeightSpec | None, sn: WeightSpec, opts: AnalysisOptions) -> dict[str, Any]:
    """Load the pair, detect identity, analyse each side once; returns both rows and the differences."""
    wn = sn.load()
    wb = sb.load() if sb is not None else None
    identical = wb is not None and _same_bytes(wb, wn)
    held = _held(sn, wn)
    if wb is None or identical:
        esd_n = compute_esds([held], device=opts.device, dtype=opts.torch_dtype)[0]
        row_n = layer_row(held, esd_n, opts)
        row_b = dict(row_n) if identical else None
        esd_b = esd_n if identical else None
    else:
        held_b = _held(sb, wb)
        esd_b, esd_n = compute_esds([held_b, held], device=opts.device, dtype=opts.torch_dtype)
        row_b, row_n = layer_row(held_b, esd_b, opts), layer_row(held, esd_n, opts)
    out: dict[str, Any] = {
        "row_base": row_b,
        "row_new": row_n,
        "identical": bool(identical) if wb is not None else None,
        "evals_base": esd_b.evals if esd_b is not None else None,
        "evals_new": esd_n.evals,
    }
    if identical:
        out["rel_frobenius_change"] = 0.0
    elif wb is not None:
        base_norm = _frobenius(wb)
        out["rel_frobenius_change"] = _frobenius(wb, wn) / base_norm if base_norm > 0 else math.inf
    return out


def compare(
    base: Any,
    new: Any,
    options: AnalysisOptions | None = None,
    /,
    *,
    keep_evals: bool = False,
    band: Sequence[float] = (_OVER, _UNDER),
    progress: Callable[[int, int, str], None] | None = None,
    workers: int | str | None = None,
    cluster: str | None = None,
    **changes: Any,
) -> pd.DataFrame:
    """Layer-by-layer comparison of two versions of a model: what changed, and did it break a layer?

    Args:
        base: the reference: anything :func:`wwtune.analyze` takes (module, state_dict, checkpoint file,
            Hugging Face folder), or an already computed ``analyze`` DataFrame / the path of its CSV (a
            stored baseline; it must come from the same analysis options). With a table the weights of
            the base are not available: ``rel_frobenius_change`` and ``identical`` are then NaN/None, and
            ``esd_distance`` / ``esd_ks`` too unless the table holds the eigenvalues (a ``keep_evals=True``
            DataFrame, or a CSV written by :func:`write_baseline` / ``wwtune analyze --keep-evals``);
            without them only α and the norms are compared. A layer is ``unchanged`` when its α, norm
            and λ_max equal the baseline's.
        new: the version to check; anything :func:`wwtune.analyze` takes.
        options: the :class:`~wwtune.spectral.analyze.AnalysisOptions` applied to both sides (default: all
            defaults); its ``keep_evals`` is not used (see ``keep_evals`` below). ``randomize=True`` adds
            ``num_traps_*`` and the "new correlation trap" verdict.
        keep_evals: add ``evals_base`` / ``evals_new`` columns (the eigenvalues; e.g. for plots).
        band: the healthy α range ``(low, high)``; "crossed" means α was inside and is now outside
            (default ``(2, 6)``: analyze's over-/under-trained thresholds).
        progress: called as ``progress(done, total, layer_name)`` after each layer (the CLI's progress bar).
        **changes: analysis options by name over ``options`` (``layers=``, ``min_evals=``, ``fit=``, ...), as
            for :func:`wwtune.analyze`.
        workers, cluster: layer pairs over worker processes or a Dask cluster, as :func:`wwtune.analyze`.

    Returns:
        One row per layer present in either model, base order first. Columns: ``name``, ``layer_type``,
        ``presence`` ("both", "renamed", "removed", "added", "reshaped"), ``renamed_from``, ``shape_base``,
        ``shape_new``, ``identical``, ``<c>_base`` and ``<c>_new`` for every ``c`` in :data:`SIDE_COLUMNS`
        (plus :data:`MP_SIDE_COLUMNS` with ``mp_fit``, :data:`RANDOMIZE_SIDE_COLUMNS` with
        ``randomize``), ``delta_alpha`` (new − base), ``delta_log_norm``
        (log10 Σλ, new − base), ``rel_frobenius_change`` (‖W_new − W_base‖_F / ‖W_base‖_F),
        ``spectral_norm_change`` (σ_max,new / σ_max,base − 1),
        ``esd_distance`` and ``esd_ks`` (spectral distances, see the module docstring), ``crossed`` (bool),
        ``events`` (the verdict as comma-joined codes: the rule names of :data:`RULES` plus "unchanged",
        "small", "renamed", "spectrum", "norm", "alpha-shift") and ``verdict`` (in words).

    Example:
        >>> import torch
        >>> from torch import nn
        >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
        <torch._C.Generator object at ...>
        >>> model = nn.Sequential(nn.Linear(200, 100), nn.ReLU(), nn.Linear(100, 50))
        >>> list(compare(model, model)["verdict"])
        ['unchanged', 'unchanged']
    """
    opts = AnalysisOptions.of(options, **changes, keep_evals=False)
    low, high = _check_band(band)
    keep_evals = bool(keep_evals)
    check_execution(workers, cluster)
    new_specs = select_specs(weight_specs(new), opts)
    if _is_baseline_table(base):
        base_rows = _baseline_rows(base, opts)
        base_side = {str(r.get("longname") or r["name"]): _Side(r) for r in base_rows}
    else:
        base_side = {
            s.name: _Side({"name": s.name, "layer_type": s.layer_type, "N": s.N, "M": s.M, "rf": s.rf}, s)
            for s in select_specs(weight_specs(base), opts)
        }
    new_side = {s.name: s for s in new_specs}
    renamed = _renames(base_side, new_side)
    order = list(base_side) + [n for n in new_side if n not in base_side and n not in renamed]
    names = [n for n in order if n not in renamed.values()] + list(renamed)  # renamed: on the new name
    tasks = []
    for name in names:
        b = base_side.get(renamed.get(name, name))
        parts = (b.row, b.spec) if b is not None else (None, None)
        args = (name, renamed.get(name), *parts, new_side.get(name), opts, keep_evals, low, high)
        tasks.append(layer_task(name, _compare_task, args, opts.torch_dtype))
    records = run_tasks(tasks, workers=workers, cluster=cluster, progress=progress)
    df = pd.DataFrame(records)
    cols = _columns(opts.mp_fit, opts.randomize, keep_evals)
    return df.reindex(columns=cols)


def _check_band(band: Any) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in band)
    except (TypeError, ValueError):
        raise TypeError(f"band must be two numbers (low, high) but got {band!r}.") from None
    if not 0 < low <= high:
        raise ValueError(f"band must satisfy 0 < low <= high but got {band!r}.")
    return low, high


def _side_columns(mp_fit: bool, randomize: bool) -> list[str]:
    return (
        list(SIDE_COLUMNS)
        + (list(MP_SIDE_COLUMNS) if mp_fit else [])
        + (list(RANDOMIZE_SIDE_COLUMNS) if randomize else [])
    )


def _columns(mp_fit: bool, randomize: bool, keep_evals: bool) -> list[str]:
    side = _side_columns(mp_fit, randomize)
    cols = ["name", "layer_type", "presence", "renamed_from", "shape_base", "shape_new", "identical"]
    for c in side:
        cols += [f"{c}_base", f"{c}_new"]
    cols += [
        "delta_alpha",
        "delta_log_norm",
        "rel_frobenius_change",
        "spectral_norm_change",
        "esd_distance",
        "esd_ks",
        "crossed",
        "events",
        "verdict",
    ]
    return cols + (["evals_base", "evals_new"] if keep_evals else [])


def _renames(base_side: dict[str, _Side], new_side: dict[str, WeightSpec]) -> dict[str, str]:
    """new name -> old name for layers only in one model whose weights are byte-identical (same shape)."""
    gone = {n: s for n, s in base_side.items() if n not in new_side and s.spec is not None}
    fresh = [s for n, s in new_side.items() if n not in base_side]
    out: dict[str, str] = {}
    if not gone or not fresh:
        return out
    for spec in fresh:
        candidates = [
            o for o, side in gone.items() if side.spec.shape == spec.shape and o not in out.values()
        ]
        if not candidates:
            continue
        w = spec.load()
        for old in candidates:
            if _same_bytes(gone[old].spec.load(), w):
                out[spec.name] = old
                break
    return out


def _compare_task(name: str, old: str | None, row_b: Any, spec_b: Any, sn: Any, *rest: Any) -> dict[str, Any]:
    """One layer pair as a task (picklable arguments: the pair's own sides only)."""
    base_side = {old or name: _Side(row_b, spec_b)} if row_b is not None else {}
    new_side = {name: sn} if sn is not None else {}
    return _compare_one(name, base_side, new_side, {name: old} if old else {}, *rest)


def _compare_one(
    name: str,
    base_side: dict[str, _Side],
    new_side: dict[str, WeightSpec],
    renamed: dict[str, str],
    opts: AnalysisOptions,
    keep_evals: bool,
    low: float,
    high: float,
) -> dict[str, Any]:
    old = renamed.get(name)
    b = base_side.get(old or name)
    sn = new_side.get(name)
    rec: dict[str, Any] = {"name": name, "renamed_from": old or "", "identical": None}
    row_b = row_n = None
    evals_b = evals_n = None
    if b is not None and sn is not None and (b.row["N"], b.row["M"], b.row["rf"]) != (sn.N, sn.M, sn.rf):
        presence = "reshaped"
    elif b is not None and sn is not None:
        presence = "renamed" if old else "both"
    else:
        presence = "removed" if sn is None else "added"
    rec["presence"] = presence
    if presence in ("both", "renamed"):
        pair = _analyse_pair(b.spec, sn, opts)
        row_n, evals_n = pair["row_new"], pair["evals_new"]
        if b.spec is not None:
            row_b, evals_b = pair["row_base"], pair["evals_base"]
            rec["identical"] = pair["identical"]
            rec["rel_frobenius_change"] = pair["rel_frobenius_change"]
        else:  # a stored baseline: its row, and its evals when it kept them
            row_b = b.row
            stored = b.row.get("evals")
            evals_b = np.asarray(stored, dtype=np.float64) if isinstance(stored, (np.ndarray, list)) else None
            rec["rel_frobenius_change"] = math.nan
    else:
        # one side only (or reshaped): analysed on its own, nothing to difference
        if b is not None:
            if b.spec is not None:
                esd = compute_esds([b.spec], device=opts.device, dtype=opts.torch_dtype)[0]
                row_b, evals_b = layer_row(b.spec, esd, opts), esd.evals
            else:
                row_b = b.row
        if sn is not None:
            esd = compute_esds([sn], device=opts.device, dtype=opts.torch_dtype)[0]
            row_n, evals_n = layer_row(sn, esd, opts), esd.evals
    ref = row_n if row_n is not None else row_b
    rec["layer_type"] = ref["layer_type"]
    rec["shape_base"] = _shape_text(row_b["N"], row_b["M"], row_b["rf"]) if row_b is not None else ""
    rec["shape_new"] = _shape_text(row_n["N"], row_n["M"], row_n["rf"]) if row_n is not None else ""
    side_cols = _side_columns(opts.mp_fit, opts.randomize)
    for c in side_cols:
        rec[f"{c}_base"] = row_b.get(c, math.nan) if row_b is not None else math.nan
        rec[f"{c}_new"] = row_n.get(c, math.nan) if row_n is not None else math.nan
    for c in ("warning", "status"):
        for s in ("base", "new"):
            if not isinstance(rec[f"{c}_{s}"], str):
                rec[f"{c}_{s}"] = ""
    both = row_b is not None and row_n is not None and presence != "reshaped"
    ok = both and row_b["status"] == "success" and row_n["status"] == "success"
    rec["delta_alpha"] = float(row_n["alpha"] - row_b["alpha"]) if ok else math.nan
    rec["delta_log_norm"] = float(row_n["log_norm"] - row_b["log_norm"]) if both else math.nan
    rec.setdefault("rel_frobenius_change", math.nan)
    if both and row_b["lambda_max"] > 0 and np.isfinite(row_b["lambda_max"]):
        rec["spectral_norm_change"] = math.sqrt(row_n["lambda_max"] / row_b["lambda_max"]) - 1.0
    else:
        rec["spectral_norm_change"] = math.nan
    if rec["identical"]:
        rec["esd_distance"], rec["esd_ks"] = 0.0, 0.0
    elif both and evals_b is not None and evals_n is not None:
        eps = float(torch.finfo(opts.torch_dtype).eps)
        floor = max(float(row_b["lambda_max"]), float(row_n["lambda_max"])) * int(row_n["N"]) * eps
        rec["esd_distance"] = esd_distance(evals_b, evals_n, floor)
        rec["esd_ks"] = ks_distance(evals_b, evals_n)
    else:
        rec["esd_distance"], rec["esd_ks"] = math.nan, math.nan
    if rec["identical"] is None and both and row_b is not None and _same_numbers(row_b, row_n):
        rec["same_spectrum"] = True
    rec["crossed"] = bool(ok and low <= row_b["alpha"] <= high and not low <= row_n["alpha"] <= high)
    notable = events(rec, low, high)
    rec["events"] = ",".join(code for code, _ in notable)
    rec["verdict"] = "; ".join(text for _, text in notable)
    rec.pop("same_spectrum", None)
    if keep_evals:
        rec["evals_base"], rec["evals_new"] = evals_b, evals_n
    return rec


def _same_numbers(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """The same spectrum up to float round-off (a stored baseline has no weights to compare bytes)."""
    for c in ("alpha", "norm", "lambda_max"):
        x, y = float(a[c]), float(b[c])
        close = math.isfinite(x) and math.isfinite(y) and abs(x - y) <= 1e-9 * max(abs(x), abs(y))
        if not (x == y or close):
            return False
    return True
