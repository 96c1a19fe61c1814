"""Plots of one model: layer spectra and per-layer α. Every function returns a ``matplotlib.figure.Figure``.

Plots of a whole study are in :mod:`wwtune.report.study_plots`, of two versions of a model in
:mod:`wwtune.report.compare_plots`, the advisor's in :mod:`wwtune.report.advice_plot`; the shared colours
and figure helpers in :mod:`wwtune.report.figures` (re-exported here: ``COLORS``, :func:`new_figure`,
:func:`save_figure`, :func:`figure_data_uri`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from wwtune.report.data import resolve_band
from wwtune.report.figures import (
    COLORS,
    FIT_FLOOR,
    UNDER_TRAINED_ALPHA,
    figure_data_uri,
    new_figure,
    save_figure,
)
from wwtune.report.figures import as_evals as _as_evals
from wwtune.report.figures import require_columns as _require
from wwtune.report.figures import row_get as _row_get
from wwtune.spectral.fit_rule import alpha_values, finite_or_none, fit_failed
from wwtune.spectral.mp import mp_density, mp_edges

__all__ = [
    "COLORS",
    "figure_data_uri",
    "new_figure",
    "plot_esd",
    "plot_esd_linear",
    "plot_layer_alphas",
    "save_figure",
    "save_model_plots",
]


# ---------------------------------------------------------------------------------------------- layers
def plot_esd(evals: Any, row: Any) -> Figure:
    """Log-log empirical spectral density of one layer with its fitted power law and ``xmin`` marked.

    Args:
        evals: the layer's eigenvalues (``analyze(..., keep_evals=True)["evals"]``); values at or below
            1e-5 are left out, as in the fit.
        row: that layer's result row (Series or mapping) with ``alpha``, ``xmin`` and ``D``; ``name``,
            ``status`` and ``xmax`` are used when present.

    The density is a histogram on logarithmic bins. The fitted line is the power-law density of the tail
    ``p(λ) ∝ λ^(−α)`` for ``λ ≥ xmin``, scaled by the tail's share of the eigenvalues, so on these axes its
    slope is exactly ``−α``. A failed fit draws no line and says so in the title.

    Example::

        import torch
        import wwtune
        from wwtune.report import plot_esd, save_figure

        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(300, 200), torch.nn.ReLU(), torch.nn.Linear(200, 10))
        df = wwtune.analyze(model, keep_evals=True)
        fig = plot_esd(df.loc[0, "evals"], df.loc[0])
        save_figure(fig, "esd_first_layer")  # esd_first_layer.png and esd_first_layer.svg
    """
    _require(row, ["alpha", "xmin", "D"])
    x = _as_evals(evals)
    x = x[x > FIT_FLOOR]
    if x.size == 0:
        raise ValueError(f"evals has no eigenvalue above {FIT_FLOOR}; nothing to plot on log axes.")
    name = str(_row_get(row, "longname", _row_get(row, "name", "layer")))
    fig = new_figure()
    ax = fig.add_subplot()
    lo, hi = x[0], x[-1]
    if hi <= lo:
        hi = lo * 1.01
    n_bins = int(np.clip(np.sqrt(x.size) * 1.5, 10, 80))
    edges = np.geomspace(lo, hi, n_bins + 1)
    density, edges = np.histogram(x, bins=edges, density=True)
    ax.stairs(density, edges, fill=True, color=COLORS["ok"], alpha=0.35, label=f"ESD ({x.size} eigenvalues)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    xmin = finite_or_none(_row_get(row, "xmin"))
    if fit_failed(_row_get(row, "alpha"), _row_get(row, "status")) or xmin is None or xmin <= 0:
        ax.set_title(f"{name}: power-law fit failed")
    else:
        alpha = float(_row_get(row, "alpha"))
        xmax = finite_or_none(_row_get(row, "xmax")) or hi
        tail_share = float(np.count_nonzero(x >= xmin)) / x.size
        grid = np.geomspace(xmin, max(xmax, xmin * 1.0001), 50)
        pdf = tail_share * (alpha - 1.0) / xmin * (grid / xmin) ** (-alpha)
        ax.plot(
            grid,
            pdf,
            color=COLORS["fit"],
            lw=2,
            label=f"power-law fit, slope −α = {-alpha:.2f}",
            gid="powerlaw_fit",
        )
        ax.axvline(xmin, color=COLORS["xmin"], ls="--", lw=1.5, label=f"xmin = {xmin:.3g}", gid="xmin")
        d = finite_or_none(_row_get(row, "D"))
        ax.set_title(f"{name}: α = {alpha:.2f}, D = {d:.3f}" if d is not None else f"{name}: α = {alpha:.2f}")
    positive = density[density > 0]
    if positive.size:
        ax.set_ylim(positive.min() / 3, positive.max() * 3)
        _readable_log_ticks(ax.yaxis, positive.min() / 3, positive.max() * 3)
    ax.set_xlabel("eigenvalue λ (log scale)")
    ax.set_ylabel("density (log scale)")
    _readable_log_ticks(ax.xaxis, lo, hi)
    # below the axes, never over the bars (a small layer's few bins fill the whole plot)
    fig.legend(loc="outside lower center", ncols=3, fontsize="small", frameon=False)
    return fig


def _readable_log_ticks(axis: Any, lo: float, hi: float) -> None:
    """Plain labels (0.2, 1, 5) at 1-2-5 steps on a log axis spanning few decades, none on minor ticks
    (matplotlib's default labels every minor tick there, and the labels overlap)."""
    decades = math.log10(hi / lo) if hi > lo > 0 else 0.0
    if decades < 3:
        axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0) if decades < 1.5 else (1.0, 3.0)))
        axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.3g}"))
    axis.set_minor_formatter(NullFormatter())


def plot_esd_linear(evals: Any, row: Any) -> Figure:
    """Linear-scale ESD of one layer, with the Marchenko–Pastur bulk when the row has an MP fit.

    Args:
        evals: the layer's eigenvalues.
        row: that layer's result row; the MP curve is drawn when ``sigma_mp`` and ``Q`` are finite
            (``analyze(..., mp_fit=True)``); ``name`` and ``num_spikes`` are used when present.

    Convention (spectral spec §5): ``sigma_mp`` is fitted on eigenvalues rescaled to mean 1, so the curve is
    the MP density with variance ``sigma_mp²`` and ratio ``Q`` mapped back to the eigenvalues' own units;
    the bulk edge is ``λ+ = sigma_mp² (1 + 1/√Q)² · mean(λ)``. When a few spikes lie far beyond the bulk the
    x axis stops at 3·λ+ and the title counts the eigenvalues beyond it.

    Example::

        import torch
        import wwtune
        from wwtune.report import plot_esd_linear

        torch.manual_seed(0)
        df = wwtune.analyze(torch.nn.Linear(300, 200), keep_evals=True, mp_fit=True)
        fig = plot_esd_linear(df.loc[0, "evals"], df.loc[0])
    """
    x = _as_evals(evals)
    name = str(_row_get(row, "longname", _row_get(row, "name", "layer")))
    sigma = finite_or_none(_row_get(row, "sigma_mp"))
    q = finite_or_none(_row_get(row, "Q"))
    has_mp = sigma is not None and sigma > 0 and q is not None and q > 0
    fig = new_figure()
    ax = fig.add_subplot()
    title = f"{name}: eigenvalues (linear scale)"
    right = x[-1] if x[-1] > x[0] else x[0] + 1.0
    lam_plus = None
    if has_mp:
        q_eff = q if q >= 1 else 1.0 / q
        scale = float(np.mean(x))  # the MP fit works on eigenvalues rescaled to mean 1
        lam_minus, lam_plus = (edge * scale for edge in mp_edges(sigma, q_eff))
        if x[-1] > 3 * lam_plus:
            right = 3 * lam_plus
            title += f" — {int(np.count_nonzero(x > right))} beyond the axis (λmax = {x[-1]:.3g})"
    shown = x[x <= right]
    n_bins = int(np.clip(np.sqrt(shown.size) * 1.5, 10, 100))
    density, edges = np.histogram(shown, bins=np.linspace(min(0.0, x[0]), right, n_bins + 1))
    density = density / (x.size * np.diff(edges))  # normalised over *all* eigenvalues, like the MP curve
    ax.stairs(density, edges, fill=True, color=COLORS["ok"], alpha=0.35, label=f"ESD ({x.size} eigenvalues)")
    if has_mp:
        grid = np.linspace(max(lam_minus, 0.0), lam_plus, 400)
        curve = mp_density(grid / scale, sigma, q_eff) / scale
        ax.plot(
            grid,
            curve,
            color=COLORS["mp"],
            lw=2,
            gid="mp_density",
            label=f"Marchenko–Pastur bulk (σ = {sigma:.3g}, Q = {q:.3g})",
        )
        spikes = _row_get(row, "num_spikes")
        spike_txt = f", {int(spikes)} spike(s) above" if finite_or_none(spikes) is not None else ""
        ax.axvline(
            lam_plus,
            color=COLORS["xmin"],
            ls="--",
            lw=1.5,
            gid="mp_edge",
            label=f"bulk edge λ+ = {lam_plus:.3g}{spike_txt}",
        )
    ax.set_xlim(min(0.0, x[0]), right)
    ax.set_title(title, fontsize="medium")
    ax.set_xlabel("eigenvalue λ")
    ax.set_ylabel("density")
    ax.legend(loc="upper right", fontsize="small")
    return fig


#: a layer whose α is within this of the target band is on target: never drawn or shaded as a warning
#: (WeightWatcher's own ``warning`` column is still shown as it is in the tables)
ON_TARGET = 0.1


def band_gap(alpha: float, band: Sequence[float]) -> float:
    """Signed distance of ``alpha`` to the band: negative below ``lo``, positive above ``hi``, 0 inside."""
    lo, hi = float(band[0]), float(band[1])
    return alpha - lo if alpha < lo else (alpha - hi if alpha > hi else 0.0)


def on_target(alpha: float, band: Sequence[float]) -> bool:
    """Whether ``alpha`` is within ``ON_TARGET`` of the band (1.9 is on target for [2, 2]: the rounding
    error of 2 - 1.9 does not count)."""
    return abs(band_gap(alpha, band)) <= ON_TARGET + 1e-9


def _warning_kind(warning: Any, alpha: float, band: Sequence[float] | None = None) -> str:
    w = "" if warning is None or (isinstance(warning, float) and math.isnan(warning)) else str(warning)
    if math.isnan(alpha) or w == "failed":
        return "failed"
    if band is not None and on_target(alpha, band):
        return "ok"
    if w in ("over-trained", "under-trained"):
        return w
    return "ok"


def plot_layer_alphas(
    df: pd.DataFrame | Mapping[str, Sequence[Any]],
    band: Sequence[float] = (2.0, 2.0),
    *,
    min_evals: int | None = None,
    title: str | None = None,
) -> Figure:
    """α of every layer against the target band (shaded), warnings coloured, ineligible layers hollow.

    Args:
        df: an ``analyze()`` DataFrame or the columnar ``wwtune.layers`` dict; needs ``name`` and ``alpha``;
            uses ``warning``, ``status``, ``eligible`` and ``num_evals`` when present.
        band: target band ``[low, high]`` (default ``[2, 2]``: a line when low == high).
        min_evals: when ``df`` has no ``eligible`` column, layers with fewer eigenvalues than this are
            drawn hollow (default: every layer is eligible).
        title: figure title (default "α per layer").

    Failed fits are drawn as grey crosses at the bottom edge, never as a small α.
    """
    df = pd.DataFrame(df) if not isinstance(df, pd.DataFrame) else df
    if "longname" in df.columns:  # an analyze() table: label layers by their full path
        df = df.assign(name=df["longname"])
    missing = [c for c in ("name", "alpha") if c not in df.columns]
    if missing:
        raise ValueError(f"df is missing column(s) {missing}; it needs at least 'name' and 'alpha'.")
    if min_evals is not None and min_evals < 0:
        raise ValueError(f"min_evals cannot be negative but got {min_evals}.")
    low, high = resolve_band(None, band)
    alpha = alpha_values(df)
    if "eligible" in df.columns:
        eligible = df["eligible"].fillna(False).astype(bool).to_numpy()
    elif min_evals is not None and "num_evals" in df.columns:
        eligible = pd.to_numeric(df["num_evals"], errors="coerce").fillna(0).to_numpy() >= min_evals
    else:
        eligible = np.ones(len(df), dtype=bool)
    warnings = df["warning"].tolist() if "warning" in df.columns else [""] * len(df)
    kinds = np.array([_warning_kind(w, a, band) for w, a in zip(warnings, alpha, strict=True)])
    n = len(df)
    fig = new_figure(width=float(np.clip(6.5 + 0.35 * n, 8.5, 18)), height=4.4)
    ax = fig.add_subplot()
    if high > low:
        ax.axhspan(
            low, high, color=COLORS["band"], alpha=0.2, label=f"target band [{low:g}, {high:g}]", gid="band"
        )
    else:
        ax.axhline(low, color=COLORS["band"], lw=2.5, alpha=0.7, label=f"target α = {low:g}", gid="band")
    finite = alpha[np.isfinite(alpha)]
    y_lo = min([low, *finite.tolist()]) - 0.5
    y_hi = max([high, *finite.tolist()]) + 0.5
    if y_hi > UNDER_TRAINED_ALPHA:
        ax.axhline(
            UNDER_TRAINED_ALPHA,
            color=COLORS["under-trained"],
            ls=":",
            lw=1,
            label="α = 6 (under-trained above)",
        )
    xs = np.arange(n)
    labels = {
        "ok": "no warning, or on target (within 0.1 of the band)",
        "over-trained": "over-trained (α < 2)",
        "under-trained": "under-trained (α > 6)",
    }
    for kind, label in labels.items():
        for elig in (True, False):
            sel = (kinds == kind) & (eligible == elig)
            if not sel.any():
                continue
            color = COLORS[kind]
            ax.scatter(
                xs[sel],
                alpha[sel],
                s=60,
                zorder=3,
                edgecolors=color,
                linewidths=1.8,
                facecolors=color if elig else "none",
                label=label if elig else f"{label}, too few eigenvalues (not scored)",
                gid=f"layers:{kind}:{'eligible' if elig else 'ineligible'}",
            )
    failed = kinds == "failed"
    if failed.any():
        ax.scatter(
            xs[failed],
            np.full(failed.sum(), y_lo + 0.15),
            marker="x",
            s=70,
            zorder=3,
            color=COLORS["failed"],
            label="fit failed",
            gid="layers:failed",
        )
    ax.set_ylim(y_lo, y_hi)
    ax.set_xticks(
        xs,
        [str(s) for s in df["name"]],
        rotation=45 if n > 4 else 0,
        ha="right" if n > 4 else "center",
        fontsize="small" if n > 12 else "medium",
    )
    ax.set_xlim(-0.6, n - 0.4)
    ax.set_ylabel("α (power-law exponent)")
    ax.set_title(title or "α per layer")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    return fig


def save_model_plots(
    df: pd.DataFrame,
    out_dir: str | Path,
    band: Sequence[float] = (2.0, 2.0),
    formats: Sequence[str] = ("png",),
    *,
    min_evals: int | None = None,
) -> list[Path]:
    """All plots of one analysed model into ``out_dir`` (the ``wwtune analyze --plot DIR`` call).

    Writes ``layer_alphas.<fmt>`` and, when ``df`` has an ``evals`` column (``keep_evals=True``), one
    ``esd_<layer>.<fmt>`` per layer, plus ``esd_linear_<layer>.<fmt>`` with the MP bulk for a layer that has
    an MP fit (``mp_fit=True``; without one the linear plot adds nothing and costs as much again).
    Returns the written paths.

    Example::

        import torch
        import wwtune
        from wwtune.report import save_model_plots

        model = torch.nn.Sequential(torch.nn.Linear(300, 200), torch.nn.ReLU(), torch.nn.Linear(200, 100))
        paths = save_model_plots(wwtune.analyze(model, keep_evals=True), "plots", band=(2, 2))
    """
    out = Path(out_dir)
    written = []
    fig = plot_layer_alphas(df, band, min_evals=min_evals)
    written += save_figure(fig, out / "layer_alphas", formats)
    if "evals" in df.columns:
        for _, row in df.iterrows():
            label = row["longname"] if "longname" in row else row["name"]
            safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in str(label))
            evals = np.asarray(row["evals"], dtype=float)
            if np.count_nonzero(evals > FIT_FLOOR):
                written += save_figure(plot_esd(evals, row), out / f"esd_{safe}", formats)
            if finite_or_none(row.get("sigma_mp")) is not None:  # only with an MP fit (mp_fit=True)
                written += save_figure(plot_esd_linear(evals, row), out / f"esd_linear_{safe}", formats)
    return written
