"""Plots of one model: layer spectra and per-layer α. Every function returns a ``matplotlib.figure.Figure``.

Plots of a whole study are in :mod:`wwtune.report.study_plots`, the advisor's in
:mod:`wwtune.report.advice_plot`; the shared colours and figure helpers are here.

Figures are built with the object API on an Agg canvas: nothing touches ``matplotlib.pyplot``, so no
global figure state leaks and no display is needed. Save with :func:`save_figure` (PNG and/or SVG) or
embed with :func:`figure_data_uri`.

Colours carry one meaning throughout: green = the target band, blue = a layer without warning,
red = over-trained (α < 2), orange = under-trained (α > 6), grey = failed fit; hollow markers = layers
with too few eigenvalues to count in the score (ineligible).
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from wwtune.record import (
    alpha_values,
    finite_or_none,
    fit_failed,
)
from wwtune.report.data import resolve_band
from wwtune.spectral.mp import mp_density, mp_edges

__all__ = [
    "COLORS",
    "figure_data_uri",
    "new_figure",
    "plot_compare_alphas",
    "plot_esd",
    "plot_esd_linear",
    "plot_esd_overlay",
    "plot_layer_alphas",
    "save_compare_plots",
    "save_figure",
    "save_model_plots",
]

COLORS = {
    "band": "#2ca02c",
    "ok": "#1f77b4",
    "over-trained": "#d62728",
    "under-trained": "#ff7f0e",
    "failed": "#7f7f7f",
    "fit": "#d62728",
    "xmin": "#9467bd",
    "mp": "#ff7f0e",
    "pruned": "#ff7f0e",
}
#: Eigenvalues at or below this are left out of log-scale plots (the fit ignores them too).
FIT_FLOOR = 1e-5
#: α above which a layer is called under-trained (spectral spec §3).
UNDER_TRAINED_ALPHA = 6.0
_FORMATS = ("png", "svg")


# ---------------------------------------------------------------------------------------------- helpers
def new_figure(width: float = 6.4, height: float = 4.2) -> Figure:
    """A constrained-layout figure on its own Agg canvas (no pyplot state)."""
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def figure_data_uri(fig: Figure, fmt: str = "png", dpi: int = 100) -> str:
    """The figure as a ``data:`` URI (base64 PNG or SVG), for embedding in a self-contained page."""
    if fmt not in _FORMATS:
        raise ValueError(f"fmt must be one of {list(_FORMATS)} but got {fmt!r}.")
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=dpi)
    mime = "image/png" if fmt == "png" else "image/svg+xml"
    return f"data:{mime};base64,{base64.b64encode(buf.getvalue()).decode('ascii')}"


def save_figure(
    fig: Figure, path: str | Path, formats: Sequence[str] = ("png", "svg"), dpi: int = 120
) -> list[Path]:
    """Write ``fig`` as ``path`` with each suffix in ``formats`` (``"png"``, ``"svg"``); returns the paths.

    ``path`` may carry a suffix or not: ``save_figure(fig, "plots/esd_fc1")`` writes ``esd_fc1.png`` and
    ``esd_fc1.svg``. Parent folders are created.
    """
    formats = [formats] if isinstance(formats, str) else list(formats)
    bad = [f for f in formats if f not in _FORMATS]
    if bad or not formats:
        raise ValueError(f"formats must be a non-empty subset of {list(_FORMATS)} but got {formats!r}.")
    path = Path(path)
    stem = path.with_suffix("") if path.suffix.lower().lstrip(".") in _FORMATS else path
    stem.parent.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in formats:
        out = stem.parent / f"{stem.name}.{fmt}"
        fig.savefig(out, format=fmt, dpi=dpi)
        written.append(out)
    return written


def _as_evals(evals: Any) -> np.ndarray:
    try:
        x = np.asarray(evals, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(f"evals must be a 1-D array of eigenvalues but got {type(evals).__name__}.") from None
    if x.ndim != 1:
        raise ValueError(f"evals must be 1-D but got shape {x.shape}.")
    if not np.isfinite(x).any():
        raise ValueError(f"evals must contain finite eigenvalues but got {x.size} value(s), none finite.")
    return np.sort(x[np.isfinite(x)])


def _row_get(row: Any, key: str, default: Any = None) -> Any:
    if isinstance(row, pd.Series):
        return row.get(key, default)
    if isinstance(row, Mapping):
        return row.get(key, default)
    raise TypeError(
        f"row must be a mapping or a pandas Series of layer results but got {type(row).__name__}."
    )


def _require(row: Any, keys: Iterable[str]) -> None:
    missing = [k for k in keys if _row_get(row, k) is None]
    if missing:
        raise ValueError(f"row is missing required column(s) {missing} (an analyze() result row has them).")


def _fmt(x: Any, digits: int = 3) -> str:
    v = finite_or_none(x)
    return "–" if v is None else f"{v:.{digits}g}"


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
    name = str(_row_get(row, "name", "layer"))
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
    name = str(_row_get(row, "name", "layer"))
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
        "ok": "no warning",
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
            safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in str(row["name"]))
            evals = np.asarray(row["evals"], dtype=float)
            if np.count_nonzero(evals > FIT_FLOOR):
                written += save_figure(plot_esd(evals, row), out / f"esd_{safe}", formats)
            if finite_or_none(row.get("sigma_mp")) is not None:  # only with an MP fit (mp_fit=True)
                written += save_figure(plot_esd_linear(evals, row), out / f"esd_linear_{safe}", formats)
    return written


# ---------------------------------------------------------------------------------------------- compare
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
