"""Content tests of the plot functions: what is drawn is read back from the figures' artists."""

from __future__ import annotations

import io
import math
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib import _pylab_helpers
from matplotlib.colors import to_rgba
from PIL import Image
from report_fixtures import LAYERS, heavy_tailed_evals, layers_attr, synthetic_study

from wwtune.record import FAILED_FIT_MAX_ALPHA
from wwtune.report import (
    plot_advice,
    plot_alpha_heatmap,
    plot_esd,
    plot_esd_linear,
    plot_layer_alphas,
    plot_score_history,
    plot_trust_scatter,
    save_figure,
    save_model_plots,
)
from wwtune.report.plots import COLORS
from wwtune.spectral.mp import mp_density

optuna.logging.set_verbosity(optuna.logging.WARNING)
FIXTURES = Path(__file__).parent / "fixtures"


def by_gid(fig, gid):
    found = [a for a in fig.axes[0].get_children() if a.get_gid() == gid]
    assert len(found) <= 1, f"more than one artist with gid {gid}"
    return found[0] if found else None


def loglog_slope(line):
    x, y = (np.asarray(v, dtype=float) for v in line.get_data())
    return np.polyfit(np.log10(x), np.log10(y), 1)[0]


@pytest.fixture(scope="module")
def mlp_digits():
    return np.load(FIXTURES / "mlp_digits_esd.npz")


# ---------------------------------------------------------------------------------------------- plot_esd
@settings(max_examples=20, deadline=None)
@given(
    alpha=st.floats(1.3, 7.0),
    xmin=st.floats(1e-3, 1e3),
    seed=st.integers(0, 2**16),
)
def test_esd_fitted_line_has_slope_minus_alpha_and_starts_at_xmin(alpha, xmin, seed):
    evals = heavy_tailed_evals(alpha, n=300, xmin=xmin, bulk=200, seed=seed)
    row = {"name": "fc1", "alpha": alpha, "xmin": xmin, "D": 0.05, "xmax": evals[-1]}
    fig = plot_esd(evals, row)
    line = by_gid(fig, "powerlaw_fit")
    assert loglog_slope(line) == pytest.approx(-alpha, rel=1e-9, abs=1e-9)
    x, y = line.get_data()
    assert x[0] == pytest.approx(xmin) and x[-1] == pytest.approx(evals[-1])
    # Its height at xmin is the tail's power-law density scaled by the tail's share of the eigenvalues.
    share = np.count_nonzero(evals >= xmin) / np.count_nonzero(evals > 1e-5)
    assert y[0] == pytest.approx(share * (alpha - 1) / xmin, rel=1e-9)
    assert by_gid(fig, "xmin").get_xdata()[0] == pytest.approx(xmin)
    assert fig.axes[0].get_xscale() == "log" and fig.axes[0].get_yscale() == "log"
    assert f"α = {alpha:.2f}" in fig.axes[0].get_title() and "D = 0.050" in fig.axes[0].get_title()


def test_esd_of_weightwatcher_fixture_matches_its_fit(mlp_digits):
    for i, name in enumerate(["fc1", "fc2", "fc3"]):
        row = {k: float(mlp_digits[k][i]) for k in ("alpha", "xmin", "xmax", "D")} | {"name": name}
        fig = plot_esd(mlp_digits[f"evals_{i}"], row)
        assert loglog_slope(by_gid(fig, "powerlaw_fit")) == pytest.approx(-row["alpha"], rel=1e-9)
        assert fig.axes[0].get_title() == f"{name}: α = {row['alpha']:.2f}, D = {row['D']:.3f}"
    # the histogram holds every eigenvalue above the fit floor, as a density (area 1 on the bins)
    hist = [a for a in fig.axes[0].patches if a.get_label().startswith("ESD")][0]
    assert "(10 eigenvalues)" in hist.get_label()


def test_esd_histogram_is_a_density_over_log_bins():
    evals = heavy_tailed_evals(2.5, seed=3)
    fig = plot_esd(evals, {"alpha": 2.5, "xmin": 1.0, "D": 0.1})
    stairs = [p for p in fig.axes[0].patches if p.get_label().startswith("ESD")][0]
    values, edges = stairs.get_data().values, stairs.get_data().edges
    assert np.sum(values * np.diff(edges)) == pytest.approx(1.0)
    ratios = edges[1:] / edges[:-1]
    assert np.allclose(ratios, ratios[0])  # logarithmic bins


@pytest.mark.parametrize(
    "row",
    [
        {"alpha": -1.0, "xmin": 1.0, "D": 1.0, "status": "failed"},
        {"alpha": 2.5, "xmin": 1.0, "D": 0.1, "status": "failed"},
    ],
)
def test_failed_fit_draws_no_line_and_says_so(row):
    fig = plot_esd(heavy_tailed_evals(2.5), row)
    assert by_gid(fig, "powerlaw_fit") is None and by_gid(fig, "xmin") is None
    assert "fit failed" in fig.axes[0].get_title()


def test_esd_bad_input_is_named():
    row = {"alpha": 2.0, "xmin": 1.0, "D": 0.1}
    with pytest.raises(ValueError, match="1-D"):
        plot_esd(np.ones((3, 3)), row)
    with pytest.raises(ValueError, match="none finite"):
        plot_esd([np.nan, np.inf], row)
    with pytest.raises(ValueError, match=r"\['xmin'\]"):
        plot_esd([1.0, 2.0], {"alpha": 2.0, "D": 0.1})
    with pytest.raises(ValueError, match="no eigenvalue above"):
        plot_esd([0.0, 1e-9], row)
    with pytest.raises(TypeError, match="row must be"):
        plot_esd([1.0, 2.0], [2.0, 1.0, 0.1])


# ---------------------------------------------------------------------------------------------- linear / MP
@settings(max_examples=15, deadline=None)
@given(sigma=st.floats(0.2, 3.0), q=st.floats(1.0, 50.0))
def test_mp_density_integrates_to_one(sigma, q):
    lo, hi = sigma**2 * (1 - q**-0.5) ** 2, sigma**2 * (1 + q**-0.5) ** 2
    # substitute λ = c + r·cos θ to integrate the square-root edges exactly enough
    c, r = (lo + hi) / 2, (hi - lo) / 2
    theta = np.linspace(0, np.pi, 20001)
    lam = c - r * np.cos(theta)
    total = np.trapezoid(mp_density(lam, sigma, q) * r * np.sin(theta), theta)
    assert total == pytest.approx(1.0, abs=2e-3)


def test_mp_bulk_edge_matches_weightwatcher_bulk_max(mlp_digits):
    for i in range(3):
        evals = mlp_digits[f"evals_{i}"]
        q = float(mlp_digits["N"][i] / mlp_digits["M"][i])
        row = {
            "name": str(i),
            "sigma_mp": float(mlp_digits["mp_sigma_mp"][i]),
            "Q": q,
            "num_spikes": int(mlp_digits["mp_num_spikes"][i]),
        }
        fig = plot_esd_linear(evals, row)
        edge = by_gid(fig, "mp_edge").get_xdata()[0]
        assert edge == pytest.approx(float(mlp_digits["mp_bulk_max"][i]), rel=1e-6)
        x, y = by_gid(fig, "mp_density").get_data()
        assert x[-1] == pytest.approx(edge) and np.all(y >= 0)


def test_mp_curve_fits_a_random_matrix_spectrum():
    rng = np.random.default_rng(0)
    n, m = 800, 400
    w = rng.normal(size=(n, m))
    evals = np.linalg.eigvalsh(w.T @ w)  # mean n: rescaled to mean 1 this is MP with σ = 1, Q = 2
    fig = plot_esd_linear(evals, {"sigma_mp": 1.0, "Q": n / m})
    stairs = fig.axes[0].patches[0]
    values, edges = stairs.get_data().values, stairs.get_data().edges
    mids = (edges[1:] + edges[:-1]) / 2
    scale = evals.mean()
    expected = mp_density(mids / scale, 1.0, n / m) / scale
    inner = (mids > edges[2]) & (mids < by_gid(fig, "mp_edge").get_xdata()[0] * 0.9)
    assert np.sum(values * np.diff(edges)) == pytest.approx(1.0)
    assert np.max(np.abs(values[inner] - expected[inner])) < 0.25 * expected.max()


def test_linear_esd_without_mp_columns_has_no_curve_and_clips_far_spikes():
    evals = heavy_tailed_evals(2.5)
    fig = plot_esd_linear(evals, {"name": "fc"})
    assert by_gid(fig, "mp_density") is None
    assert fig.axes[0].get_xlim()[1] == pytest.approx(evals[-1])
    fig = plot_esd_linear(np.append(np.linspace(0.1, 2.0, 100), [50.0, 80.0]), {"sigma_mp": 0.95, "Q": 1.0})
    assert fig.axes[0].get_xlim()[1] < 50 and "2 beyond the axis" in fig.axes[0].get_title()


# ---------------------------------------------------------------------------------------------- layer α
def span_y(patch):
    ext = patch.get_path().get_extents(patch.get_patch_transform())
    return ext.y0, ext.y1


def test_band_shading_spans_the_band_and_a_point_band_is_a_line():
    df = pd.DataFrame(layers_attr([2.5, 3.5, 1.5, 7.0]))
    fig = plot_layer_alphas(df, (3.0, 4.0))
    assert span_y(by_gid(fig, "band")) == pytest.approx((3.0, 4.0))
    fig = plot_layer_alphas(df, [2, 2])
    line = by_gid(fig, "band")
    assert list(line.get_ydata()) == [2, 2]


@settings(max_examples=20, deadline=None)
@given(st.lists(st.one_of(st.floats(0.5, 9.0), st.just(None)), min_size=1, max_size=4))
def test_every_layer_is_drawn_once_in_its_warning_colour(values):
    failed = {i for i, v in enumerate(values) if v is None}
    attr = layers_attr([2.0 if v is None else v for v in values], failed=failed)
    fig = plot_layer_alphas(attr, (2, 2))
    seen = {}
    for coll in fig.axes[0].collections:
        gid = coll.get_gid() or ""
        if not gid.startswith("layers:"):
            continue
        _, kind, *elig = gid.split(":")
        for x, y in coll.get_offsets():
            assert int(x) not in seen
            seen[int(x)] = (kind, elig, y, coll)
    assert sorted(seen) == list(range(len(values)))
    for i, (kind, elig, y, coll) in seen.items():
        if i in failed or values[i] <= FAILED_FIT_MAX_ALPHA:  # α ≤ 1 is a failed fit (wwtune.record)
            assert kind == "failed"
            continue
        a = values[i]
        expected = "over-trained" if a < 2 else "under-trained" if a > 6 else "ok"
        assert kind == expected and y == pytest.approx(a)
        eligible = attr["eligible"][i]
        assert elig == ["eligible" if eligible else "ineligible"]
        edge = coll.get_edgecolors()[0]
        assert tuple(edge) == pytest.approx(to_rgba(COLORS[kind]))
        face = coll.get_facecolors()
        if eligible:
            assert tuple(face[0]) == pytest.approx(to_rgba(COLORS[kind]))
        else:  # hollow
            assert len(face) == 0 or face[0][3] == 0


def test_ineligible_from_min_evals_when_no_eligible_column():
    df = pd.DataFrame({"name": ["a", "b"], "alpha": [2.5, 3.0], "num_evals": [10, 500]})
    fig = plot_layer_alphas(df, (2, 3), min_evals=50)
    gids = {c.get_gid() for c in fig.axes[0].collections}
    assert gids == {"layers:ok:eligible", "layers:ok:ineligible"}
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["a", "b"]


def test_layer_alphas_bad_input():
    with pytest.raises(ValueError, match=r"\['alpha'\]"):
        plot_layer_alphas({"name": ["a"]}, (2, 2))
    with pytest.raises(ValueError, match="low <= high"):
        plot_layer_alphas({"name": ["a"], "alpha": [2.0]}, (3, 2))
    with pytest.raises(ValueError, match="two numbers"):
        plot_layer_alphas({"name": ["a"], "alpha": [2.0]}, "2-3")
    with pytest.raises(ValueError, match="min_evals cannot be negative but got -1"):
        plot_layer_alphas({"name": ["a"], "alpha": [2.0]}, (2, 2), min_evals=-1)


# ---------------------------------------------------------------------------------------------- studies
@pytest.fixture(scope="module")
def study():
    return synthetic_study()


def test_score_history_best_so_far_is_the_running_minimum(study):
    fig = plot_score_history(study)
    done = [(t.number, t.value) for t in study.trials if t.state.name == "COMPLETE"]
    pts = by_gid(fig, "complete").get_offsets()
    assert np.allclose(pts, done)
    x, y = by_gid(fig, "best_so_far").get_data()
    running = np.minimum.accumulate([v for _, v in done])
    assert np.allclose(y[:-1], running) and np.allclose(x[:-1], [n for n, _ in done])
    assert x[-1] == study.trials[-1].number  # the line reaches the last trial
    pruned = by_gid(fig, "pruned").get_offsets()
    assert np.allclose(pruned, [[9, study.trials[9].intermediate_values[5]]])
    assert len(by_gid(fig, "failed").get_offsets()) == 1


def test_score_history_maximize_and_empty():
    trials = synthetic_study().trials
    fig = plot_score_history(trials, direction="maximize")
    _, y = by_gid(fig, "best_so_far").get_data()
    assert np.all(np.diff(y) >= 0)
    fig = plot_score_history([])
    assert "no trials yet" in [t.get_text() for t in fig.axes[0].texts]
    with pytest.raises(ValueError, match="direction must be"):
        plot_score_history(trials, direction="down")
    with pytest.raises(TypeError, match="FrozenTrial"):
        plot_score_history([1, 2])


def test_heatmap_is_trials_by_layers_with_failed_fits_masked(study):
    fig = plot_alpha_heatmap(study)
    im = by_gid(fig, "alpha_heatmap")
    arr = im.get_array()
    with_layers = [t for t in study.trials if "wwtune.layers" in t.user_attrs]
    assert arr.shape == (len(with_layers), len(LAYERS))
    for i, t in enumerate(with_layers):
        attr = t.user_attrs["wwtune.layers"]
        for j, (a, status) in enumerate(zip(attr["alpha"], attr["status"], strict=True)):
            if status == "failed":
                assert arr.mask[i, j]
            else:
                assert arr[i, j] == pytest.approx(a)
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == LAYERS
    norm = im.norm
    assert norm.vcenter == 2.0  # centred on the band


def test_heatmap_colour_range_survives_a_blown_up_layer():
    study = optuna.create_study()
    for i in range(10):
        alphas = [2.0 + 0.1 * i, 2.5, 19.0 if i == 3 else 3.0]
        study.add_trial(
            optuna.trial.create_trial(value=1.0, user_attrs={"wwtune.layers": layers_attr(alphas)})
        )
    im = by_gid(plot_alpha_heatmap(study, band=(2, 2)), "alpha_heatmap")
    assert im.get_array()[3, 2] == 19.0 and im.norm.vmax < 19.0
    assert im.norm.vmin == 1.0  # no colour is spent on α < 1, which a power-law fit cannot return


def test_heatmap_without_layers_says_so():
    fig = plot_alpha_heatmap(optuna.create_study())
    assert any("no trial has stored" in t.get_text() for t in fig.axes[0].texts)


def test_trust_scatter_points_and_picks(study):
    fig = plot_trust_scatter(study, trust=study.user_attrs["wwtune.trust"])
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    pts = by_gid(fig, "trials").get_offsets()
    assert np.allclose(pts, [(t.value, t.user_attrs["wwtune.heldout"]) for t in done])
    best_alpha = min(done, key=lambda t: t.value)
    best_held = max(done, key=lambda t: t.user_attrs["wwtune.heldout"])
    assert np.allclose(
        by_gid(fig, "alpha_best").get_offsets(), [[best_alpha.value, best_alpha.user_attrs["wwtune.heldout"]]]
    )
    assert np.allclose(
        by_gid(fig, "heldout_best").get_offsets()[0][1], best_held.user_attrs["wwtune.heldout"]
    )
    assert "verdict: α ranked trials well" in fig.axes[0].get_title()
    fig = plot_trust_scatter(study, heldout_direction="minimize")
    worst = min(done, key=lambda t: t.user_attrs["wwtune.heldout"])
    assert by_gid(fig, "heldout_best").get_offsets()[0][1] == pytest.approx(
        worst.user_attrs["wwtune.heldout"]
    )


def test_advice_plot_draws_the_curve_and_the_headroom():
    advice = {"data_fraction": [1.0, 0.25, 0.5], "score": [0.4, 0.9, 0.6], "tuning_headroom": 0.25}
    fig = plot_advice(advice)
    line = [ln for ln in fig.axes[0].lines if ln.get_gid() == "score_vs_data"][0]
    x, y = line.get_data()
    assert list(x) == [0.25, 0.5, 1.0] and list(y) == [0.9, 0.6, 0.4]
    assert span_y(by_gid(fig, "tuning_headroom")) == pytest.approx((0.15, 0.4))
    assert by_gid(plot_advice({"data_fraction": [1.0], "score": [0.3]}), "tuning_headroom") is None


@pytest.mark.parametrize(
    ("advice", "match"),
    [
        ({"score": [1.0]}, r"\['data_fraction'\]"),
        ({"data_fraction": [0.5, 1.0], "score": [1.0]}, "same length"),
        ({"data_fraction": [0.0, 1.0], "score": [1.0, 2.0]}, r"\(0, 1\]"),
        ({"data_fraction": [1.0], "score": [1.0], "tuning_headroom": -1}, "cannot be negative but got -1"),
        ({"data_fraction": [1.0], "score": [1.0], "score_err": [-0.1]}, "non-negative"),
    ],
)
def test_advice_bad_input(advice, match):
    with pytest.raises(ValueError, match=match):
        plot_advice(advice)


# ---------------------------------------------------------------------------------------------- saving
def test_save_png_and_svg_and_no_pyplot_state(tmp_path, study):
    before = _pylab_helpers.Gcf.get_num_fig_managers()
    figs = [
        plot_score_history(study),
        plot_alpha_heatmap(study),
        plot_trust_scatter(study),
        plot_layer_alphas(layers_attr([2.0, 3.0]), (2, 2)),
        plot_esd(heavy_tailed_evals(2.5), {"alpha": 2.5, "xmin": 1.0, "D": 0.1}),
    ]
    assert _pylab_helpers.Gcf.get_num_fig_managers() == before  # nothing registered with pyplot
    paths = save_figure(figs[0], tmp_path / "sub" / "history.png")
    assert [p.name for p in paths] == ["history.png", "history.svg"]
    with Image.open(paths[0]) as im:
        im.verify()
    assert ET.parse(paths[1]).getroot().tag.endswith("svg")
    assert save_figure(figs[1], tmp_path / "heat", formats="svg") == [tmp_path / "heat.svg"]
    with pytest.raises(ValueError, match="formats must be"):
        save_figure(figs[0], tmp_path / "x", formats=["jpg"])


def test_save_model_plots_writes_one_file_per_plot(tmp_path):
    evals = [heavy_tailed_evals(a, seed=i) for i, a in enumerate([2.2, 3.1])]
    df = pd.DataFrame(
        {
            "name": ["blocks.0/fc", "fc2"],
            "alpha": [2.2, 3.1],
            "xmin": [1.0, 1.0],
            "D": [0.05, 0.06],
            "evals": evals,
            "sigma_mp": [1.0, math.nan],
            "Q": [1.5, 2.0],
        }
    )
    paths = save_model_plots(df, tmp_path, band=(2, 3))
    assert sorted(p.name for p in paths) == sorted(
        [
            "layer_alphas.png",
            "esd_blocks.0_fc.png",
            "esd_linear_blocks.0_fc.png",
            "esd_fc2.png",
            "esd_linear_fc2.png",
        ]
    )
    for p in paths:
        Image.open(io.BytesIO(p.read_bytes())).verify()


# ---------------------------------------------------------------------------------------------- real engine
@pytest.fixture(scope="module")
def cnn_df():
    import torch

    import wwtune

    torch.set_num_threads(1)
    return wwtune.analyze(FIXTURES / "cnn_digits.pt", keep_evals=True)


def test_plots_from_a_real_analysis(cnn_df, tmp_path):
    df = cnn_df
    assert len(df) == 4
    paths = save_model_plots(df, tmp_path, band=(2, 2))
    assert len(paths) == 1 + 2 * len(df)
    for _, row in df.iterrows():
        fig = plot_esd(row["evals"], row)
        assert loglog_slope(by_gid(fig, "powerlaw_fit")) == pytest.approx(-row["alpha"], rel=1e-9)
        assert by_gid(fig, "xmin").get_xdata()[0] == row["xmin"]
    fig = plot_layer_alphas(df, (2, 2))
    drawn = sorted(y for c in fig.axes[0].collections for _, y in c.get_offsets())
    assert drawn == pytest.approx(sorted(df["alpha"]))


def test_mp_edge_agrees_with_the_engines_bulk_max():
    import wwtune

    df = wwtune.analyze(FIXTURES / "cnn_digits.pt", keep_evals=True, mp_fit=True)
    for _, row in df.iterrows():
        fig = plot_esd_linear(row["evals"], row)
        assert by_gid(fig, "mp_edge").get_xdata()[0] == pytest.approx(row["bulk_max"], rel=1e-9)
