"""The exponentially truncated power-law fit (wwtune.spectral.tpl) on samples with known parameters."""

import math

import numpy as np
import pytest

from wwtune.spectral.tpl import fit_truncated_power_law


def sample_tpl(alpha: float, mu: float, n: int, xmin: float, seed: int) -> np.ndarray:
    """n draws of p(x) ∝ x^(−α) e^(−μ x / xmin) on x ≥ xmin (a Pareto draw thinned by the exponential)."""
    rng = np.random.default_rng(seed)
    out = np.empty(0)
    while out.size < n:
        u = (1.0 - rng.random(4 * n)) ** (-1.0 / (alpha - 1.0))
        out = np.concatenate([out, u[rng.random(u.size) < np.exp(-mu * (u - 1.0))]])
    return xmin * out[:n]


@pytest.mark.parametrize("alpha, mu, xmin", [(2.5, 0.5, 2.0), (3.5, 1.0, 0.01), (2.0, 0.2, 50.0)])
def test_recovers_alpha_and_the_truncation_rate(alpha, mu, xmin):
    fit = fit_truncated_power_law(sample_tpl(alpha, mu, 4000, xmin, seed=1), xmin)
    assert fit.status == "success" and fit.n == 4000
    assert fit.alpha == pytest.approx(alpha, abs=0.2)
    assert fit.lambda_ * xmin == pytest.approx(mu, rel=0.25)  # Λ in 1 / eigenvalue units


def test_a_plain_power_law_has_almost_no_truncation():
    fit = fit_truncated_power_law(sample_tpl(3.0, 1e-9, 4000, 1.0, seed=2), 1.0)
    assert fit.alpha == pytest.approx(3.0, abs=0.1)
    assert fit.lambda_ < 0.02


def test_a_pure_exponential_tail_has_alpha_near_zero():
    rng = np.random.default_rng(3)
    x = 2.0 + rng.exponential(1 / 0.8, 4000)  # rate 0.8 per unit eigenvalue above xmin = 2
    fit = fit_truncated_power_law(x, 2.0)
    assert fit.alpha < 0.2
    assert fit.lambda_ == pytest.approx(0.8, rel=0.08)


def test_only_the_tail_is_fitted_and_too_few_values_fail():
    x = np.concatenate([np.full(1000, 0.1), sample_tpl(2.5, 0.5, 3000, 2.0, seed=4)])  # a bulk below xmin
    assert fit_truncated_power_law(x, 2.0).alpha == pytest.approx(2.5, abs=0.2)
    few = fit_truncated_power_law(np.array([1.0, 2.0, 3.0, np.nan]), 1.0)
    assert few.status == "too few tail eigenvalues (3)" and math.isnan(few.alpha)


@pytest.mark.parametrize("xmin", [0.0, -1.0, math.inf, math.nan])
def test_a_bad_xmin_is_refused_naming_it(xmin):
    with pytest.raises(ValueError, match="xmin must be a positive finite eigenvalue but got"):
        fit_truncated_power_law(np.ones(10), xmin)
