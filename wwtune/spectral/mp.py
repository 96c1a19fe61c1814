"""Marchenko-Pastur fit (``mp_fit``) and correlation traps (``randomize``), spec §5.

MP fit, as WeightWatcher 0.7.7 defines it: rescale the eigenvalues to mean 1; estimate their density
with a linear (triangular) kernel of bandwidth 0.1 on 1,000 points of [0, λ_max + 0.5]; ignore points
where that density is below 0.01; find σ minimising the squared difference to the MP density of aspect
ratio Q (for Q = 1: the quarter-circle law of the singular values) over the grid
σ ∈ [0.05 s, 2 s) step 0.01 s, s = sqrt(λ_max / (1 + 1/√Q)²), then refine with Nelder-Mead. σ values
whose bulk edges are inconsistent with the density's mode get a large penalty. Spikes are eigenvalues
above λ+ = σ²(1 + 1/√Q)² plus the Tracy-Widom margin sqrt(Q^(-1/2) λ+^(2/3) M^(-2/3)).

Randomize: each kernel-position slice of W has its entries permuted (numpy Generator seeded with
``seed``); the shuffled ESD (pooled over 5 shuffles when the layer has fewer than 100 eigenvalues)
gets its own MP fit, whose spikes are the correlation traps. ``rand_distance`` is the Jensen-Shannon
distance between the sorted, sum-normalised eigenvalues of W and of one more shuffle of W.
"""

from __future__ import annotations

import math
import warnings
from typing import NamedTuple

import numpy as np
import torch
from scipy import optimize
from scipy.special import rel_entr

from wwtune.spectral.esd import CONV_EVAL_SCALE, gram_eigvals, grams
from wwtune.spectral.layers import WeightSpec

__all__ = ["MPFit", "fit_mp", "mp_columns", "mp_density", "mp_edges", "randomize_columns", "shuffled_evals"]

_BANDWIDTH = 0.1
_GRID_POINTS = 1000
_DENSITY_FLOOR = 0.01
_PENALTY = 1000.0
_SMALL_LAYER = 100
_REPLICAS_SMALL = 5


class MPFit(NamedTuple):
    """Result of :func:`fit_mp`; bulk edges in the input's own scale, spikes counted after rescaling."""

    num_spikes: int
    sigma_mp: float
    mp_softrank: float
    bulk_max: float
    bulk_min: float
    W_scale: float


def _linear_kde(samples: np.ndarray, grid: np.ndarray, bw: float) -> np.ndarray:
    """Density estimate with the kernel (1 - |u|/bw)₊ / bw, exact, O((grid + n) log n) via prefix sums."""
    s = np.sort(samples)
    n = s.size
    cs = np.concatenate(([0.0], np.cumsum(s)))

    def partial(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        i0 = np.searchsorted(s, lo, side="left")
        i1 = np.searchsorted(s, hi, side="right")
        return (i1 - i0).astype(np.float64), cs[i1] - cs[i0]

    # left part: samples in [x - bw, x]: Σ (1 - (x - s)/bw); right part: samples in (x, x + bw]
    cnt_l, sum_l = partial(grid - bw, grid)
    i_mid = np.searchsorted(s, grid, side="right")
    i_hi = np.searchsorted(s, grid + bw, side="right")
    cnt_r = (i_hi - i_mid).astype(np.float64)
    sum_r = cs[i_hi] - cs[i_mid]
    dens = cnt_l - (grid * cnt_l - sum_l) / bw + cnt_r - (sum_r - grid * cnt_r) / bw
    return np.maximum(dens, 0.0) / (n * bw)


def mp_edges(sigma: float, q: float) -> tuple[float, float]:
    """The MP bulk ``(λ−, λ+) = (σ(1 ∓ 1/√q))²`` of eigenvalues rescaled to mean 1 (``q = N/M >= 1``)."""
    root = math.sqrt(1 / q)
    return (sigma * (1 - root)) ** 2, (sigma * (1 + root)) ** 2


def mp_density(x: np.ndarray, sigma: float, q: float) -> np.ndarray:
    """The Marchenko-Pastur density at ``x`` (eigenvalues rescaled to mean 1): variance ``sigma**2``,
    aspect ratio ``q = N/M >= 1``; 0 outside the bulk :func:`mp_edges`."""
    a, b = mp_edges(sigma, q)
    x = np.asarray(x, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        val = np.sqrt((b - x) * (x - a)) / (2 * np.pi * sigma * sigma * x / q)
    return np.nan_to_num(val, nan=0.0, posinf=0.0, neginf=0.0)


def _residual(sigma: float, x: np.ndarray, dens: np.ndarray, Q: float, x_mode: float) -> float:  # noqa: N803
    sigma = float(np.atleast_1d(sigma)[0])
    if Q == 1:
        with np.errstate(invalid="ignore"):
            model = np.nan_to_num(np.sqrt(4 - x**2) / (np.pi * sigma * sigma))
        return float(np.sum((model - dens) ** 2))
    model = mp_density(x, sigma, Q)
    a, b = mp_edges(sigma, Q)
    if b < x_mode or b > x.max() or a > x_mode:
        return _PENALTY**2 * x.size
    return float(np.sum((model - dens) ** 2))


def fit_mp(evals: np.ndarray, Q: float, M: int) -> MPFit:  # noqa: N803
    """Fit the Marchenko-Pastur law to one layer's eigenvalues (see the module docstring).

    Args:
        evals: the layer's eigenvalues (pooled, any order).
        Q: aspect ratio N / M (≥ 1).
        M: smaller side of the weight matrix (for the Tracy-Widom margin).
    """
    ev = np.asarray(evals, dtype=np.float64)
    total = float(ev.sum())
    if ev.size == 0 or not total > 0:
        nan = math.nan
        return MPFit(0, nan, nan, nan, nan, nan)
    w_scale = math.sqrt(ev.size / total)
    scaled = ev * (w_scale * w_scale)
    lam_max = float(scaled.max())
    to_fit = np.sqrt(scaled) if Q == 1 else scaled
    grid = np.linspace(0, float(to_fit.max()) + 0.5, _GRID_POINTS)
    dens = _linear_kde(to_fit, grid, _BANDWIDTH)
    keep = dens > _DENSITY_FLOOR
    x, d = grid[keep], dens[keep]
    x_mode = float(x[int(np.argmax(d))])
    s = math.sqrt(float(to_fit.max()) / (1 + 1 / math.sqrt(Q)) ** 2)
    sigmas = np.arange(0.05 * s, 2.0 * s, 0.01 * s)
    resid = np.array([_residual(sg, x, d, Q, x_mode) for sg in sigmas])
    start = float(sigmas[int(np.argmin(resid))])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        refined = optimize.fmin(_residual, start, args=(x, d, Q, x_mode), disp=False, full_output=True)
    sigma = float(refined[0][0]) if refined[1] <= resid.min() else start
    bulk_max = (sigma * (1 + 1 / math.sqrt(Q))) ** 2
    bulk_min = (sigma * (1 - 1 / math.sqrt(Q))) ** 2
    tw = (1 / math.sqrt(Q)) * bulk_max ** (2 / 3) * M ** (-2 / 3)
    num_spikes = int(np.count_nonzero(scaled > bulk_max + math.sqrt(tw)))
    s2 = w_scale * w_scale
    return MPFit(num_spikes, sigma, bulk_max / lam_max, bulk_max / s2, bulk_min / s2, w_scale)


def shuffled_evals(
    w: torch.Tensor,
    layer_type: str,
    rng: np.random.Generator,
    replicas: int,
    dtype: torch.dtype,
    device: torch.device,
) -> np.ndarray:
    """Eigenvalues of W with each kernel-position slice's entries permuted, pooled over ``replicas``."""
    out_, in_ = w.shape[0], w.shape[1]
    rf = int(w[0, 0].numel())
    slices = w.detach().reshape(out_, in_, rf).permute(2, 0, 1).reshape(rf, out_ * in_)
    parts = []
    for _ in range(replicas):
        perm = torch.from_numpy(np.stack([rng.permutation(out_ * in_) for _ in range(rf)]))
        shuf = torch.gather(slices, 1, perm).reshape(rf, out_, in_).permute(1, 2, 0).reshape(w.shape)
        parts.append(gram_eigvals(grams(shuf, dtype, device)).ravel())
    ev = np.concatenate(parts)
    if layer_type.startswith("conv"):
        ev = ev * CONV_EVAL_SCALE
    return np.sort(ev)


def _js_distance(e: np.ndarray, r: np.ndarray) -> float:
    """Jensen-Shannon distance (natural log) of two sum-normalised vectors; NaN if either sums to 0."""
    if not (e.sum() > 0 and r.sum() > 0) or e.size != r.size:
        return math.nan
    p, q = e / e.sum(), r / r.sum()
    m = 0.5 * (p + q)
    js = 0.5 * (float(rel_entr(p, m).sum()) + float(rel_entr(q, m).sum()))
    return math.sqrt(max(js, 0.0))


def mp_columns(evals: np.ndarray | None, spec: WeightSpec) -> dict[str, float]:
    """The ``mp_fit`` columns of one layer (NaN when its eigenvalues are missing)."""
    if evals is None:
        return dict.fromkeys(MPFit._fields, math.nan)
    return fit_mp(evals, spec.N / spec.M, spec.M)._asdict()


def randomize_columns(
    evals: np.ndarray | None, spec: WeightSpec, *, seed: int, device: torch.device, dtype: torch.dtype
) -> dict[str, float]:
    """The ``randomize`` columns of one layer: correlation traps and the distance to the shuffled ESD."""
    keys = ("num_traps", "rand_distance", "max_rand_eval", "rand_bulk_max", "rand_sigma_mp")
    if evals is None:
        return dict.fromkeys(keys, math.nan)
    rng = np.random.default_rng(seed)
    w = spec.load()
    replicas = _REPLICAS_SMALL if spec.num_evals < _SMALL_LAYER else 1
    rand = shuffled_evals(w, spec.layer_type, rng, replicas, dtype, device)
    fit = fit_mp(rand, spec.N / spec.M, spec.M)
    one = rand if replicas == 1 else shuffled_evals(w, spec.layer_type, rng, 1, dtype, device)
    e, r = np.sort(evals), np.sort(one)
    dist = _js_distance(e, r)
    return {
        "num_traps": fit.num_spikes,
        "rand_distance": dist,
        "max_rand_eval": float(rand.max()),
        "rand_bulk_max": fit.bulk_max,
        "rand_sigma_mp": fit.sigma_mp,
    }
