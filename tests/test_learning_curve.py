"""Property tests of wwtune.learning_curve on synthetic curves with known answers."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wwtune.learning_curve import Gain, compare_gains, data_gain, fit_power_law, paired_gain

FRACTIONS = np.repeat([0.125, 0.25, 0.5, 0.75], 3)


@settings(max_examples=40, deadline=None)
@given(a=st.floats(0.0, 1.0), b=st.floats(0.05, 1.0), c=st.floats(0.2, 2.0))
def test_exact_power_law_is_recovered(a, b, c):
    loss = a + b * FRACTIONS**-c
    fit = fit_power_law(FRACTIONS, loss, n_ref=1.0)
    assert fit.c == pytest.approx(c, rel=1e-3, abs=1e-3)
    assert fit.a == pytest.approx(a, abs=1e-3 * (1 + b))
    assert fit.b == pytest.approx(b, rel=1e-3)
    true_gain = b * (1 - 2**-c)
    assert fit.gain(1.0, 2.0) == pytest.approx(true_gain, rel=1e-3, abs=1e-6)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), c=st.floats(0.3, 1.5))
def test_noisy_curve_interval_covers_the_true_gain_and_excludes_zero(seed, c):
    rng = np.random.default_rng(seed)
    n = np.repeat([0.125, 0.25, 0.5, 0.75], 6)
    b = 0.2
    loss = 0.1 + b * n**-c + rng.normal(0, 0.004, n.size)
    g = data_gain(n, loss, 1.0, 2.0, n_boot=100, seed=seed)
    truth = b * (1 - 2**-c)
    assert g.low > 0
    assert g.low - 0.02 <= truth <= g.high + 0.02
    assert g.low <= g.estimate <= g.high or abs(g.estimate - np.clip(g.estimate, g.low, g.high)) < 0.01


def test_interval_coverage_of_the_bootstrap_is_roughly_nominal():
    rng = np.random.default_rng(1)
    n = np.repeat([0.125, 0.25, 0.5, 0.75], 8)
    truth = 0.3 * (1 - 2**-0.7)
    hits = 0
    reps = 30
    for k in range(reps):
        loss = 0.05 + 0.3 * n**-0.7 + rng.normal(0, 0.02, n.size)
        g = data_gain(n, loss, 1.0, 2.0, n_boot=80, seed=k, level=0.9)
        hits += g.low <= truth <= g.high
    assert 0.6 <= hits / reps <= 1.0


def test_flat_or_rising_curve_predicts_no_data_gain():
    flat = fit_power_law(FRACTIONS, np.full(FRACTIONS.size, 0.3))
    assert flat.b == pytest.approx(0.0, abs=1e-12) and flat.a == pytest.approx(0.3)
    assert flat.gain(1, 2) == pytest.approx(0.0, abs=1e-12)
    rising = fit_power_law(FRACTIONS, 0.1 + 0.05 * FRACTIONS)  # more data hurts: no gain, not a negative b
    assert rising.b == 0.0 and rising.gain(1, 2) == 0.0
    g = data_gain(FRACTIONS, np.full(FRACTIONS.size, 0.3), 1.0, 2.0, n_boot=20)
    assert max(abs(g.estimate), abs(g.low), abs(g.high)) < 1e-12


def test_fit_rejects_bad_input():
    with pytest.raises(ValueError, match="at least 3 distinct"):
        fit_power_law([0.5, 0.5, 1.0], [1.0, 1.0, 0.5])
    with pytest.raises(ValueError, match="finite"):
        fit_power_law([0.1, 0.2, 0.4], [1.0, float("nan"), 0.5])
    with pytest.raises(ValueError, match="positive"):
        fit_power_law([0.0, 0.2, 0.4], [1.0, 0.7, 0.5])
    with pytest.raises(ValueError, match="equal length"):
        fit_power_law([0.1, 0.2, 0.4], [1.0, 0.5])
    with pytest.raises(ValueError, match="c_range"):
        fit_power_law([0.1, 0.2, 0.4], [1.0, 0.7, 0.5], c_range=(1.0, 0.5))
    with pytest.raises(ValueError, match="n_from < n_to"):
        data_gain([0.1, 0.2, 0.4], [1.0, 0.7, 0.5], 2.0, 1.0)
    with pytest.raises(ValueError, match="level"):
        data_gain([0.1, 0.2, 0.4], [1.0, 0.7, 0.5], 1.0, 2.0, level=1.5)


def test_paired_gain_known_mean_clipping_and_errors():
    g = paired_gain([0.5, 0.6, 0.55, 0.52], [0.4, 0.5, 0.44, 0.43], n_boot=200)
    assert g.estimate == pytest.approx(np.mean([0.1, 0.1, 0.11, 0.09]))
    assert 0.09 <= g.low <= g.estimate <= g.high <= 0.11
    worse = paired_gain([0.4, 0.41], [0.5, 0.52], n_boot=50)
    assert worse.estimate == worse.low == worse.high == 0.0
    raw = paired_gain([0.4, 0.41], [0.5, 0.52], n_boot=50, clip_at_zero=False)
    assert raw.estimate == pytest.approx(-0.105)
    with pytest.raises(ValueError, match="equal length"):
        paired_gain([0.1], [0.1, 0.2])
    with pytest.raises(ValueError, match="n_boot"):
        paired_gain([0.1], [0.1], n_boot=2)


@settings(max_examples=40, deadline=None)
@given(d=st.floats(0.0, 1.0), t=st.floats(0.0, 1.0), w=st.floats(0.001, 0.2))
def test_verdict_follows_the_known_gains_and_flips_when_they_flip(d, t, w):
    data, tune = Gain(d, d - w, d + w), Gain(t, t - w, t + w)
    out = compare_gains(data, tune)
    flipped = compare_gains(Gain(t, t - w, t + w), Gain(d, d - w, d + w))
    if d - w > t + w:
        assert out["verdict"] == "more data" and flipped["verdict"] == "more tuning"
    elif t - w > d + w:
        assert out["verdict"] == "more tuning" and flipped["verdict"] == "more data"
    else:
        assert out["verdict"] == flipped["verdict"] == "inconclusive"
        assert out["margin"] <= 0


def test_end_to_end_verdict_from_synthetic_curves():
    """Curves from a known power law and paired tuning runs with a known gap: the verdict flips with them."""
    rng = np.random.default_rng(3)
    n = np.repeat([0.125, 0.25, 0.5, 0.75], 4)
    steep = 0.1 + 0.1 * n**-0.6 + rng.normal(0, 0.003, n.size)  # 2× gain ≈ 0.034
    flat = 0.1 + 0.002 * n**-0.6 + rng.normal(0, 0.003, n.size)  # 2× gain ≈ 0.0007
    cur = 0.2 + rng.normal(0, 0.003, 4)
    small_gap, big_gap = cur - 0.002 + rng.normal(0, 0.001, 4), cur - 0.08 + rng.normal(0, 0.001, 4)
    steep_gain = data_gain(n, steep, 1.0, 2.0, n_boot=200)
    flat_gain = data_gain(n, flat, 1.0, 2.0, n_boot=200)
    assert compare_gains(steep_gain, paired_gain(cur, small_gap))["verdict"] == "more data"
    assert compare_gains(flat_gain, paired_gain(cur, big_gap))["verdict"] == "more tuning"
