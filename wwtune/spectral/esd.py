"""Eigenvalues of weight matrices: ``eigvalsh`` of the smaller Gram matrix, batched, on CPU or GPU.

λ = eigenvalues of WᵀW (not divided by N). The Gram matrices of all layers with the same smaller side M
are stacked and decomposed in one batched call, whatever their larger side (a BERT model's 384×384,
384×1536 and 30522×384 matrices all share M = 384). Large matrices are converted to the compute dtype
in row chunks, so a float64 copy of a huge embedding is never held, only its M×M Gram.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy.linalg import blas as _blas
from threadpoolctl import ThreadpoolController

from wwtune.spectral.layers import WeightSpec

__all__ = ["CONV_EVAL_SCALE", "LayerESD", "compute_esds", "gram_eigvals", "grams", "resolve_device"]

#: WeightWatcher scales each conv slice by 1/√2, i.e. halves the eigenvalues (exact in floating point).
CONV_EVAL_SCALE = 0.5
# Convert at most this many weight elements to the compute dtype at once.
_CHUNK_ELEMENTS = 1 << 22
# Flush a batch of stacked Gram matrices once it holds this many elements.
_BATCH_ELEMENTS = 1 << 23
# On CPU a symmetric rank-k update computes only one triangle of AᵀA: half the flops of a matmul. It runs
# in SciPy's BLAS, whose threads fight torch's when both are multi-threaded (measured: 1.95× the bare
# eigendecompositions at 2 threads vs 0.99× at 1), so it is used only while torch runs single-threaded.
_SYRK = {torch.float64: _blas.dsyrk, torch.float32: _blas.ssyrk}
_blas_threads: list = []  # the ThreadpoolController, made on first use


def _one_blas_thread():  # noqa: ANN202 - a context manager
    """SciPy's BLAS held to one thread, as torch is when the syrk path runs.

    SciPy's OpenBLAS keeps its own pool (all cores unless OPENBLAS_NUM_THREADS says otherwise); on shared,
    busy cores a 256x256 syrk then took 8-16 ms instead of 0.3 ms (benchmarks/results/quickstart.md).
    """
    if not _blas_threads:
        _blas_threads.append(ThreadpoolController())
    return _blas_threads[0].limit(limits=1, user_api="blas")


@dataclass
class LayerESD:
    """The pooled eigenvalues of one layer (float64, ascending), or why there are none."""

    evals: np.ndarray | None
    reason: str = ""
    #: WeightWatcher's sv_min: the largest of the kernel positions' smallest singular values (dense: the
    #: smallest singular value)
    sv_min: float = float("nan")


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` → cuda when available, else cpu; anything torch accepts otherwise."""
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N' but got {device!r}.") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was requested but CUDA is not available; use 'auto' or 'cpu'.")
    return dev


def _grams_into(w: torch.Tensor, out: torch.Tensor) -> None:
    """Write the (rf, M, M) Gram matrices of the kernel-position slices of w (out, in, *kernel) into out.

    Weights are converted to out's dtype/device in row chunks of at most _CHUNK_ELEMENTS elements.
    """
    out_, in_ = w.shape[0], w.shape[1]
    rf = out.shape[0]
    dtype, device = out.dtype, out.device
    if rf == 1:
        a = w.reshape(out_, in_)
        a = a if out_ >= in_ else a.T  # long side first: Gram = AᵀA is M×M
        rows, m = a.shape
        step = max(1, _CHUNK_ELEMENTS // m)
        if device.type == "cpu" and dtype in _SYRK and torch.get_num_threads() == 1:
            _syrk_gram_into(a, out[0], step)
            return
        if rows <= step:
            a = a.to(device=device, dtype=dtype)
            torch.matmul(a.T, a, out=out[0])
            return
        out.zero_()
        for r in range(0, rows, step):
            c = a[r : r + step].to(device=device, dtype=dtype)
            out[0].addmm_(c.T, c)
        return
    slices = w.reshape(out_, in_, rf).permute(2, 0, 1)  # (rf, out, in), a view
    if out_ < in_:
        slices = slices.transpose(1, 2)
    rows, m = slices.shape[1], slices.shape[2]
    step = max(1, _CHUNK_ELEMENTS // (rf * m))
    out.zero_()
    for r in range(0, rows, step):
        c = slices[:, r : r + step].to(device=device, dtype=dtype).contiguous()
        out.baddbmm_(c.mT, c)


def _syrk_gram_into(a: torch.Tensor, out: torch.Tensor, step: int) -> None:
    """LOWER triangle of aᵀa (a: rows × M) into out (M × M), by BLAS syrk over row chunks.

    The upper triangle is left zero: every consumer goes through :func:`gram_eigvals`, which reads the
    lower triangle only.
    """
    syrk = _SYRK[out.dtype]
    m = a.shape[1]
    acc = np.zeros((m, m), dtype=np.float64 if out.dtype == torch.float64 else np.float32, order="F")
    with _one_blas_thread():
        for r in range(0, a.shape[0], step):
            c = a[r : r + step].detach().to(dtype=out.dtype).contiguous().numpy()
            # c is C-ordered (chunk × M), so c.T is a Fortran-ordered M × chunk view: syrk(cᵀ) = cᵀc, no copy
            acc = syrk(1.0, c.T, beta=1.0, c=acc, trans=0, lower=1, overwrite_c=1)
    out.copy_(torch.from_numpy(acc))


def grams(w: torch.Tensor, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """(rf, M, M) Gram matrices of the kernel-position slices of w (out, in, *kernel)."""
    m = min(w.shape[0], w.shape[1])
    out = torch.empty((int(w[0, 0].numel()), m, m), dtype=dtype, device=device)
    _grams_into(w, out)
    return out


def gram_eigvals(grams: torch.Tensor) -> np.ndarray:
    """Batched eigenvalues of symmetric PSD matrices (B, M, M) → float64 numpy (B, M), ascending, ≥ 0."""
    ev = torch.linalg.eigvalsh(grams, UPLO="L")  # lower triangle only (see _syrk_gram_into)
    return ev.clamp_min_(0).to("cpu", torch.float64).numpy()


def _batches(specs: Sequence[WeightSpec]) -> list[list[int]]:
    """Indices grouped by Gram size M, split so that one batch holds at most _BATCH_ELEMENTS elements."""
    by_m: dict[int, list[int]] = {}
    for idx, s in enumerate(specs):
        by_m.setdefault(s.M, []).append(idx)
    out: list[list[int]] = []
    for m, members in by_m.items():
        batch: list[int] = []
        held = 0
        for idx in members:
            size = specs[idx].rf * m * m
            if batch and held + size > _BATCH_ELEMENTS:
                out.append(batch)
                batch, held = [], 0
            batch.append(idx)
            held += size
        out.append(batch)
    return out


def compute_esds(specs: Sequence[WeightSpec], *, device: torch.device, dtype: torch.dtype) -> list[LayerESD]:
    """Eigenvalues of every spec's weight, pooled over kernel positions (conv eigenvalues halved).

    The Gram matrices of a batch are written into one preallocated (B, M, M) tensor and decomposed by
    one eigvalsh call. Weights with NaN/Inf entries get ``evals=None`` and a reason; others are unaffected.
    """
    results: list[LayerESD] = [LayerESD(None, "not computed")] * len(specs)
    for batch in _batches(specs):
        m = specs[batch[0]].M
        buf = torch.empty((sum(specs[i].rf for i in batch), m, m), dtype=dtype, device=device)
        spans: list[tuple[int, int, int]] = []
        pos = 0
        for idx in batch:
            rf = specs[idx].rf
            out = buf[pos : pos + rf]
            w = specs[idx].load()
            _grams_into(w, out)
            # A NaN/Inf weight in column j makes the diagonal entry G_jj = Σ_i W_ij² non-finite, and
            # |G_jk| ≤ sqrt(G_jj G_kk): checking the M diagonal entries is enough.
            if not bool(torch.isfinite(torch.diagonal(out, dim1=-2, dim2=-1)).all()):
                bad = int((~torch.isfinite(w)).sum())
                reason = (
                    f"weights contain {bad} NaN/Inf values"
                    if bad
                    else f"Gram matrix overflows in {str(dtype).replace('torch.', '')}; use dtype='float64'"
                )
                results[idx] = LayerESD(None, reason)
                out.zero_()  # keeps the batched eigensolver finite
            else:
                spans.append((idx, pos, rf))
            del w
            pos += rf
        ev = gram_eigvals(buf)
        for idx, start, rf in spans:
            block = ev[start : start + rf]
            vals = block.ravel()
            low = float(block.min(axis=1).max())
            if specs[idx].layer_type.startswith("conv"):
                vals = vals * CONV_EVAL_SCALE
                low *= CONV_EVAL_SCALE
            results[idx] = LayerESD(np.sort(vals) if rf > 1 else vals, sv_min=float(np.sqrt(low)))
    return results
