"""The power-law fit: exactness against the naive O(n²) definition and statistical properties."""

from __future__ import annotations

import math
from dataclasses import astuple

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wwtune.spectral.powerlaw import fit_hill, fit_power_law


def naive_fit(evals: np.ndarray) -> tuple[float, float, float, int]:
    """Spec §3 written as plainly as possible (loops, no pruning): (alpha, xmin, D, num_pl_spikes)."""
    x = np.sort(np.asarray(evals, dtype=float))
    x = x[x > 1e-5]
    n = x.size
    best = (math.inf, -1, 0.0)
    for i in range(n - 1):
        k = n - i
        s = np.sum(np.log(x[i:] / x[i]))
        if n < 20:
            if k < 8 or s <= 0:
                continue
            a = 1 + (k - 1) / s
            if a <= 1:
                continue
        else:
            a = 1 + k / s if s > 0 else math.inf
        if not (math.isfinite(a) and a > 1):
            d = 1.0
        else:
            j = np.arange(i, n)
            d = float(np.max(np.abs(1 - np.exp((1 - a) * np.log(x[i:] / x[i])) - (j - i) / k)))
        score = d - 0.868 / math.sqrt(k) if n < 20 else d
        if score < best[0]:
            best = (score, i, a)
    if best[1] == -1 and n < 8:  # no tail of 8: WeightWatcher fits the whole spectrum
        s = np.sum(np.log(x / x[0]))
        if s > 1e-12 and 1 + (n - 1) / s > 1:
            best = (0.0, 0, 1 + (n - 1) / s)
    _, i, a = best
    j = np.arange(i, n)
    d = float(np.max(np.abs(1 - (x[i:] / x[i]) ** (1 - a) - (j - i) / (n - i))))
    return a, float(x[i]), d, n - i


def pareto(rng: np.random.Generator, alpha: float, n: int, xmin: float = 1.0) -> np.ndarray:
    """Samples with density ∝ x^-alpha for x ≥ xmin (inverse CDF)."""
    return xmin * (1.0 - rng.random(n)) ** (-1.0 / (alpha - 1.0))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(2, 400),
    kind=st.sampled_from(["pareto", "mp", "lognormal", "ties"]),
)
def test_pruned_fit_equals_naive_definition(seed: int, n: int, kind: str) -> None:
    rng = np.random.default_rng(seed)
    if kind == "pareto":
        x = pareto(rng, 2.5, n)
    elif kind == "mp":
        w = rng.standard_normal((2 * n, n))
        x = np.linalg.eigvalsh(w.T @ w)
    elif kind == "lognormal":
        x = rng.lognormal(0, 2, n)
    else:
        x = rng.integers(1, 6, n).astype(float)  # heavy ties
    fit = fit_power_law(x)
    if fit.status != "success":
        assert fit.alpha == -1
        return
    a, xmin, d, k = naive_fit(x)
    assert fit.alpha == pytest.approx(a, rel=1e-12)
    assert fit.xmin == xmin
    assert fit.D == pytest.approx(d, rel=1e-9, abs=1e-15)
    assert fit.num_pl_spikes == k


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), alpha=st.floats(1.8, 4.5))
def test_pareto_samples_recover_alpha_within_standard_errors(seed: int, alpha: float) -> None:
    x = pareto(np.random.default_rng(seed), alpha, 3000)
    fit = fit_power_law(x)
    assert fit.status == "success"
    # σ is the fit's own standard error; the xmin search adds some spread, hence 4σ.
    assert abs(fit.alpha - alpha) < 4 * fit.sigma, (fit.alpha, alpha, fit.sigma)
    hill = fit_hill(x)
    assert abs(hill.alpha - alpha) < 4 * hill.sigma


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(8, 600), exponent=st.integers(-8, 8))
def test_scaling_eigenvalues_leaves_alpha_unchanged(seed: int, n: int, exponent: int) -> None:
    # Powers of two scale exactly, so α, D and the tail size must be identical, xmin scaled.
    rng = np.random.default_rng(seed)
    x = pareto(rng, 3.0, n) * 0.01 + 1e-3
    c = 2.0**exponent
    a, b = fit_power_law(x), fit_power_law(x * c)
    if a.status != "success":
        assert b.status != "success"
        return
    assert b.alpha == pytest.approx(a.alpha, rel=1e-12)
    assert b.D == pytest.approx(a.D, rel=1e-9, abs=1e-15)
    assert b.num_pl_spikes == a.num_pl_spikes
    assert b.xmin == pytest.approx(a.xmin * c, rel=1e-15)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(20, 500), scale=st.floats(1e-2, 1e3))
def test_arbitrary_scaling_keeps_alpha(seed: int, n: int, scale: float) -> None:
    x = pareto(np.random.default_rng(seed), 2.5, n) + 1.0
    a, b = fit_power_law(x), fit_power_law(x * scale)
    assert b.alpha == pytest.approx(a.alpha, rel=1e-9)
    assert b.xmin == pytest.approx(a.xmin * scale, rel=1e-9)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(2, 500))
def test_permutation_invariance(seed: int, n: int) -> None:
    rng = np.random.default_rng(seed)
    x = pareto(rng, 2.5, n)
    np.testing.assert_equal(astuple(fit_power_law(x)), astuple(fit_power_law(rng.permutation(x))))


def test_small_spectrum_rule_uses_k_minus_one_and_penalty() -> None:
    x = np.array([0.1, 0.2, 0.25, 0.4, 0.5, 0.9, 1.2, 2.0, 3.5, 7.0, 11.0, 30.0])
    fit = fit_power_law(x)
    a, xmin, d, k = naive_fit(x)
    assert (fit.alpha, fit.xmin, fit.num_pl_spikes) == (pytest.approx(a), xmin, k)
    assert k >= 8


@pytest.mark.parametrize(
    "x, why",
    [
        (np.zeros(50), "only 0"),
        (np.r_[np.zeros(49), 3.0], "only 1"),
        (np.full(50, 2.0), "alpha > 1"),
        (np.full(10, 2.0), "degenerate"),
    ],
)
def test_degenerate_spectra_fail_cleanly(x: np.ndarray, why: str) -> None:
    fit = fit_power_law(x)
    assert fit.status == "failed" and fit.alpha == -1
    assert why in fit.reason


def test_non_finite_eigenvalues_are_rejected() -> None:
    with pytest.raises(ValueError, match="NaN or Inf"):
        fit_power_law(np.array([1.0, np.nan, 2.0]))
