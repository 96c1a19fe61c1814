"""Speed of wwtune.spectral, as ratios against baselines measured in the same run.

Run (the thread settings must be in the environment before numpy/torch load):
    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 .venv/bin/python benchmarks/bench_spectral.py
Optional baselines, only where importable (a benchmark-only environment; never a wwtune dependency):
the `powerlaw` package (fit on 15,000 eigenvalues) and `weightwatcher` 0.7.7 (whole model).

Cases:
* bert-mini: 30522×384 embedding, 512×384 positions, 6 blocks of 384×384 Q/K/V/O and 384×1536 /
  1536×384 feed-forward, a 384×384 pooler (39 matrices), random float32 weights;
* mlp-4096: Linear 4096×4096 layers (``--mlp-layers``, default 1: one float64 eigendecomposition of
  4096² takes tens of seconds on a small CPU);
* per-layer-size: one N×N layer for N = 512, 1024, 2048, 4096;
* fit-15000: the power-law fit alone on 15,000 eigenvalues.
The baseline "bare" is what cannot be avoided: for each matrix the float64 Gram WᵀW of the smaller side
and torch.linalg.eigvalsh of it, one matrix at a time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from wwtune import analyze  # noqa: E402
from wwtune.spectral.powerlaw import fit_power_law  # noqa: E402


def timed(fn: Callable[[], object], repeat: int) -> float:
    """Median CPU seconds of this process (robust to other processes sharing the cores)."""
    return compare({"x": fn}, repeat)["x"]


CLOCK = time.process_time  # --clock wall switches to time.perf_counter (multi-threaded runs)


def compare(fns: dict[str, Callable[[], object]], repeat: int) -> dict[str, float]:
    """Median seconds of each function, the functions interleaved round-robin in every repeat."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeat):
        for k, fn in fns.items():
            t = CLOCK()
            fn()
            times[k].append(CLOCK() - t)
    return {k: statistics.median(v) for k, v in times.items()}


def bert_mini(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)

    def w(out: int, inp: int) -> torch.Tensor:
        return torch.randn(out, inp, generator=g) / inp**0.5

    sd = {"embeddings.word_embeddings.weight": w(30522, 384),
          "embeddings.position_embeddings.weight": w(512, 384)}
    for i in range(6):
        p = f"encoder.layer.{i}."
        for part in ("attention.self.query", "attention.self.key", "attention.self.value",
                     "attention.output.dense"):
            sd[p + part + ".weight"] = w(384, 384)
        sd[p + "intermediate.dense.weight"] = w(1536, 384)
        sd[p + "output.dense.weight"] = w(384, 1536)
    sd["pooler.dense.weight"] = w(384, 384)
    return sd


def bare(sd: dict[str, torch.Tensor]) -> None:
    for t in sd.values():
        a = t.to(torch.float64)
        g = a.T @ a if a.shape[0] >= a.shape[1] else a @ a.T
        torch.linalg.eigvalsh(g)


def ww_time(sd: dict[str, torch.Tensor], repeat: int) -> float | None:
    try:
        import weightwatcher as ww
    except ImportError:
        return None
    from torch import nn

    model = nn.Module()
    for k, t in sd.items():
        parts = k.split(".")[:-1]
        mod = model
        for p in parts[:-1]:
            if not hasattr(mod, p):
                mod.add_module(p, nn.Module())
            mod = getattr(mod, p)
        lin = nn.Linear(t.shape[1], t.shape[0], bias=False)
        lin.weight.data = t.clone()
        mod.add_module(parts[-1], lin)
    watcher = ww.WeightWatcher(model=model)
    return timed(lambda: watcher.analyze(), repeat)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--mlp-layers", type=int, default=1)
    ap.add_argument("--sizes", default="512,1024,2048,4096")
    ap.add_argument("--out", default=str(Path(__file__).with_name("results_spectral.md")))
    ap.add_argument("--clock", choices=["cpu", "wall"], default="cpu",
                    help="cpu: this process's CPU time (robust on shared machines); wall: elapsed time")
    ap.add_argument("--skip-mlp-sizes", action="store_true", help="only bert-mini and the 15k fit")
    args = ap.parse_args()
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    rows: list[tuple[str, str, str, str]] = []

    sd = bert_mini()
    analyze(sd, device="cpu")  # warm-up (imports, allocator)
    r = compare({"bare": lambda: bare(sd), "f64": lambda: analyze(sd, device="cpu"),
                 "f32": lambda: analyze(sd, device="cpu", dtype="float32")}, args.repeat)
    t_bare, t64, t32 = r["bare"], r["f64"], r["f32"]
    rows.append(("bert-mini, 39 matrices", "bare Gram+eigvalsh (float64)", f"{t_bare:.3f}", "1.00"))
    rows.append(("bert-mini, 39 matrices", "analyze float64", f"{t64:.3f}", f"{t64 / t_bare:.2f}"))
    rows.append(("bert-mini, 39 matrices", "analyze float32", f"{t32:.3f}", f"{t32 / t_bare:.2f}"))
    tww = ww_time(sd, 1)
    if tww is not None:
        rows.append(("bert-mini, 39 matrices", "WeightWatcher 0.7.7 analyze()", f"{tww:.3f}",
                     f"{tww / t_bare:.2f}"))

    g = torch.Generator().manual_seed(1)
    if args.mlp_layers > 0 and not args.skip_mlp_sizes:
        mlp = {f"fc{i}.weight": torch.randn(4096, 4096, generator=g) / 64 for i in range(args.mlp_layers)}
        r = compare({"bare": lambda: bare(mlp), "f64": lambda: analyze(mlp, device="cpu"),
                     "f32": lambda: analyze(mlp, device="cpu", dtype="float32")}, 1)
        tb, ta, ta32 = r["bare"], r["f64"], r["f32"]
        name = f"mlp-4096, {args.mlp_layers} × 4096²"
        rows.append((name, "bare Gram+eigvalsh (float64)", f"{tb:.3f}", "1.00"))
        rows.append((name, "analyze float64", f"{ta:.3f}", f"{ta / tb:.2f}"))
        rows.append((name, "analyze float32", f"{ta32:.3f}", f"{ta32 / tb:.2f}"))
        tww = ww_time(mlp, 1)
        if tww is not None:
            rows.append((name, "WeightWatcher 0.7.7 analyze()", f"{tww:.3f}", f"{tww / tb:.2f}"))

    for n in [] if args.skip_mlp_sizes else [int(s) for s in args.sizes.split(",")]:
        one = {"w.weight": torch.randn(n, n, generator=g) / n**0.5}
        rep = args.repeat if n <= 1024 else 1
        r = compare({"bare": lambda one=one: bare(one),
                     "an": lambda one=one: analyze(one, device="cpu")}, rep)
        tb, ta = r["bare"], r["an"]
        ev = analyze(one, device="cpu", keep_evals=True)["evals"].iloc[0]
        tf = timed(lambda ev=ev: fit_power_law(ev), rep)
        rows.append((f"one layer {n}×{n}", "bare / analyze / fit alone",
                     f"{tb:.3f} / {ta:.3f} / {tf:.4f}", f"{ta / tb:.2f}"))

    rng = np.random.default_rng(0)
    x = (1 - rng.random(15000)) ** (-1 / 1.5)
    tf = timed(lambda: fit_power_law(x), args.repeat)
    rows.append(("fit, 15,000 eigenvalues (Pareto α=2.5)", "wwtune fit_power_law", f"{tf:.3f}", "1.00"))
    try:
        import powerlaw

        t0 = CLOCK()
        pf = powerlaw.Fit(x, xmax=float(x.max()), verbose=False)
        tp = CLOCK() - t0
        mine = fit_power_law(x)
        same = "same α, xmin" if (abs(pf.alpha - mine.alpha) < 1e-9 and pf.xmin == mine.xmin) else \
            f"powerlaw α={pf.alpha:.6f} xmin={pf.xmin:.6g} vs wwtune α={mine.alpha:.6f} xmin={mine.xmin:.6g}"
        rows.append(("fit, 15,000 eigenvalues (Pareto α=2.5)", f"powerlaw.Fit ({same})", f"{tp:.3f}",
                     f"{tp / tf:.1f}"))
    except ImportError:
        pass

    threads = os.environ.get("OMP_NUM_THREADS", "unset")
    lines = [f"Command: `OMP_NUM_THREADS={threads} OPENBLAS_NUM_THREADS={threads} MKL_NUM_THREADS={threads} "
             f"{' '.join([Path(sys.executable).name, *sys.argv])}`", "",
             f"torch {torch.__version__}, numpy {np.__version__}, {os.cpu_count()} CPUs visible, "
             f"{'process CPU' if args.clock == 'cpu' else 'wall-clock'} seconds, "
             f"medians of {args.repeat} interleaved runs (1 for ≥ 2048² and for "
             "baselines from other packages); ratio = time / the case's first row", "",
             "| case | what | seconds | ratio |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    text = "\n".join(lines) + "\n"
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
