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

from wwtune.spectral.layers import WeightSpec

__all__ = ["CONV_EVAL_SCALE", "LayerESD", "compute_esds", "gram_eigvals", "resolve_device"]

#: WeightWatcher scales each conv slice by 1/√2, i.e. halves the eigenvalues (exact in floating point).
CONV_EVAL_SCALE = 0.5
# Convert at most this many weight elements to the compute dtype at once.
_CHUNK_ELEMENTS = 1 << 22
# Flush a batch of stacked Gram matrices once it holds this many elements.
_BATCH_ELEMENTS = 1 << 23


@dataclass
class LayerESD:
    """The pooled eigenvalues of one layer (float64, ascending), or why there are none."""

    evals: np.ndarray | None
    reason: str = ""


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


def _grams(w: torch.Tensor, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """(rf, M, M) Gram matrices of the kernel-position slices of w (out, in, *kernel)."""
    out_, in_ = w.shape[0], w.shape[1]
    rf = int(w[0, 0].numel())
    slices = w.reshape(out_, in_, rf).permute(2, 0, 1)  # (rf, out, in), a view
    if out_ < in_:
        slices = slices.transpose(1, 2)  # long side first: Gram = AᵀA is M×M
    rows = slices.shape[1]
    m = slices.shape[2]
    per_row = rf * m
    step = max(1, _CHUNK_ELEMENTS // per_row)
    if rows <= step:
        a = slices.to(device=device, dtype=dtype)
        return a.mT @ a
    g = torch.zeros((rf, m, m), dtype=dtype, device=device)
    for r in range(0, rows, step):
        a = slices[:, r : r + step].to(device=device, dtype=dtype)
        g += a.mT @ a
    return g


def gram_eigvals(grams: torch.Tensor) -> np.ndarray:
    """Batched eigenvalues of symmetric PSD matrices (B, M, M) → float64 numpy (B, M), ascending, ≥ 0."""
    ev = torch.linalg.eigvalsh(grams)
    return ev.clamp_min_(0).to("cpu", torch.float64).numpy()


def compute_esds(specs: Sequence[WeightSpec], *, device: torch.device, dtype: torch.dtype) -> list[LayerESD]:
    """Eigenvalues of every spec's weight, pooled over kernel positions (conv eigenvalues halved).

    Weights with NaN/Inf entries get ``evals=None`` and a reason; the others are unaffected.
    """
    results: list[LayerESD | None] = [None] * len(specs)
    by_m: dict[int, list[int]] = {}
    for idx, s in enumerate(specs):
        by_m.setdefault(s.M, []).append(idx)
    for members in by_m.values():
        pending: list[tuple[int, torch.Tensor]] = []
        held = 0

        def flush() -> None:
            nonlocal pending, held
            if not pending:
                return
            ev = gram_eigvals(torch.cat([g for _, g in pending]))
            pos = 0
            for idx, g in pending:
                n_slices = g.shape[0]
                vals = ev[pos : pos + n_slices].ravel()
                pos += n_slices
                if specs[idx].layer_type.startswith("conv"):
                    vals = vals * CONV_EVAL_SCALE
                results[idx] = LayerESD(np.sort(vals) if n_slices > 1 else vals)
            pending, held = [], 0

        for idx in members:
            w = specs[idx].load()
            g = _grams(w, dtype, device)
            # NaN/Inf weights always reach the small Gram, so the full-size check runs only then.
            if not bool(torch.isfinite(g).all()):
                bad = int((~torch.isfinite(w)).sum())
                reason = f"weights contain {bad} NaN/Inf values" if bad else \
                    f"Gram matrix overflows in {str(dtype).replace('torch.', '')}; use dtype='float64'"
                results[idx] = LayerESD(None, reason)
                continue
            del w
            pending.append((idx, g))
            held += g.numel()
            if held >= _BATCH_ELEMENTS:
                flush()
        flush()
    return [r if r is not None else LayerESD(None, "not computed") for r in results]
