"""Plots of two versions of a model (``wwtune compare --plot``): α per layer, base against new, and each
flagged layer's two ESDs overlaid. Every function returns a ``matplotlib.figure.Figure``."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from wwtune.report.data import resolve_band
from wwtune.report.figures import COLORS, FIT_FLOOR, new_figure, save_figure
from wwtune.report.figures import as_evals as _as_evals
from wwtune.report.figures import fmt_value as _fmt
from wwtune.report.figures import row_get as _row_get

__all__ = ["plot_compare_alphas", "plot_esd_overlay", "save_compare_plots"]


def plot_compare_alphas(
    df: pd.DataFrame, band: Sequence[float] = (2.0, 6.0), *, flagged: Iterable[str] = ()
) -> Figure:
    """α of every layer of a ``wwtune.compare`` result, base (hollow) and new (filled), band shaded;
    ``flagged`` layers in red with a line from the base α to the new one. Failed fits are not drawn."""
    missing = [c for c in ("name", "alpha_base", "alpha_new") if c not in df.columns]
    if missing:
        raise ValueError(f"df is missing column(s) {missing}; pass the DataFrame of wwtune.compare().")
    low, high = resolve_band(None, band)
    flagged = set(flagged)
    a_b = np.array(pd.to_numeric(df["alpha_base"], errors="coerce"), dtype=float)
    a_n = np.array(pd.to_numeric(df["alpha_new"], errors="coerce"), dtype=float)
    a_b[a_b < 0], a_n[a_n < 0] = np.nan, np.nan  # failed fits (alpha = -1)
    n = len(df)
    fig = new_figure(width=float(np.clip(6.5 + 0.3 * n, 8.5, 18)), height=4.6)
    ax = fig.add_subplot()
    if high > low:
        ax.axhspan(low, high, color=COLORS["band"], alpha=0.15, label=f"band [{low:g}, {high:g}]", gid="band")
    else:
        ax.axhline(low, color=COLORS["band"], lw=2.5, alpha=0.7, label=f"target α = {low:g}", gid="band")
    xs = np.arange(n)
    is_flag = np.array([str(name) in flagged for name in df["name"]], dtype=bool)
    ax.scatter(xs, a_b, s=70, facecolors="none", edgecolors="#555555", label="base", gid="alpha_base")
    ax.scatter(xs[~is_flag], a_n[~is_flag], s=28, color=COLORS["ok"], label="new", gid="alpha_new")
    if is_flag.any():
        ax.scatter(
            xs[is_flag],
            a_n[is_flag],
            s=40,
            color=COLORS["over-trained"],
            label="new, flagged",
            gid="alpha_flagged",
        )
        for x in xs[is_flag]:
            ax.plot([x, x], [a_b[x], a_n[x]], color=COLORS["over-trained"], lw=1)
    ax.set_xticks(xs)
    ax.set_xticklabels([str(v) for v in df["name"]], rotation=90, fontsize=6 if n > 30 else 8)
    ax.set_ylabel("α (power-law exponent)")
    ax.set_title("α per layer: base vs new")
    ax.legend(loc="upper left", fontsize="small")
    return fig


def plot_esd_overlay(evals_base: Any, evals_new: Any, row: Any) -> Figure:
    """The base and new ESDs of one layer on shared log-log axes (histograms on the same log bins)."""
    xb, xn = _as_evals(evals_base), _as_evals(evals_new)
    xb, xn = xb[xb > FIT_FLOOR], xn[xn > FIT_FLOOR]
    if xb.size == 0 and xn.size == 0:
        raise ValueError(f"no eigenvalue above {FIT_FLOOR} on either side; nothing to plot on log axes.")
    both = np.concatenate([xb, xn])
    lo, hi = float(both.min()), float(both.max())
    hi = hi if hi > lo else lo * 1.01
    n_bins = int(np.clip(np.sqrt(both.size / 2) * 1.5, 10, 80))
    edges = np.geomspace(lo, hi, n_bins + 1)
    fig = new_figure()
    ax = fig.add_subplot()
    for x, label, color, gid in ((xb, "base", "#555555", "esd_base"), (xn, "new", COLORS["fit"], "esd_new")):
        if x.size:
            density, _ = np.histogram(x, bins=edges, density=True)
            ax.stairs(density, edges, color=color, lw=1.8, label=f"{label} ({x.size} eigenvalues)", gid=gid)
    ax.set_xscale("log")
    ax.set_yscale("log")
    name = str(_row_get(row, "name", "layer"))
    ax.set_title(
        f"{name}: α {_fmt(_row_get(row, 'alpha_base'), 2)} → {_fmt(_row_get(row, 'alpha_new'), 2)}, "
        f"ESD distance {_fmt(_row_get(row, 'esd_distance'), 3)}",
        fontsize="small",
    )
    ax.set_xlabel("eigenvalue λ (log scale)")
    ax.set_ylabel("density (log scale)")
    ax.legend(loc="lower left", fontsize="small")
    return fig


def save_compare_plots(
    df: pd.DataFrame,
    out_dir: str | Path,
    band: Sequence[float] = (2.0, 6.0),
    layers: Iterable[str] = (),
    formats: Sequence[str] = ("png",),
) -> list[Path]:
    """The ``wwtune compare --plot DIR`` files: ``compare_alphas.<fmt>`` and, for each of ``layers`` (the
    flagged ones) whose eigenvalues ``df`` holds (``compare(..., keep_evals=True)``),
    ``esd_compare_<layer>.<fmt>``. Returns the written paths."""
    out = Path(out_dir)
    layers = list(layers)
    written = save_figure(plot_compare_alphas(df, band, flagged=layers), out / "compare_alphas", formats)
    if "evals_base" in df.columns:
        for _, row in df[df["name"].isin(layers)].iterrows():
            eb, en = row["evals_base"], row["evals_new"]
            if eb is None or en is None:
                continue
            safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in str(row["name"]))
            written += save_figure(plot_esd_overlay(eb, en, row), out / f"esd_compare_{safe}", formats)
    return written
