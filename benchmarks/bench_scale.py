#!/usr/bin/env python
"""Parallel analysis of big checkpoints: 1 process vs ``workers=2`` vs a local 2-worker Dask cluster.

Steps (each a subcommand; ``all`` runs them in order):

* ``generate``: random bf16 safetensors shards in Llama shapes, written by this script into ``--cache``:
  ``llama1b`` (TinyLlama-1.1B shapes, as ``bench_compare.py``: 22 blocks, hidden 2048, FFN 5632, 4 KV
  heads, vocabulary 32000, untied head; 1.10 B parameters) and ``llama7b_slice`` (Llama-7B shapes: hidden
  4096, FFN 11008, 32 heads; the first ``--blocks-7b`` blocks only, the whole model taking too long here).
* ``measure``: one fresh Python process per row: ``wwtune.analyze`` of each folder serially (1 process,
  1 thread), with ``workers=2`` and on a local Dask cluster of 2 worker processes of 1 thread on
  127.0.0.1 (started before the clock, its start-up time given apart); wall time, CPU time (the process
  and every worker it waited for: ``RUSAGE_SELF + RUSAGE_CHILDREN``), peak RSS of the parent and of the
  largest worker; in the serial row the CPU time spent in the bare linear algebra (loading each tensor,
  its float64 Gram, ``eigvalsh``: ``compute_esds``) for the analysis / bare ratio. ``--layers-1b`` /
  ``--layers-7b`` measure a stated subset. Every parallel result is checked equal to the serial one
  (``pd.testing.assert_frame_equal``, exact).

Writes ``--out`` (default ``benchmarks/results/scale.md``) with the exact command at its top.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHAPES = {
    "llama1b": {"hidden": 2048, "ffn": 5632, "blocks": 22, "heads": 32, "kv_heads": 4, "vocab": 32000},
    "llama7b_slice": {
        "hidden": 4096,
        "ffn": 11008,
        "blocks": 32,
        "heads": 32,
        "kv_heads": 32,
        "vocab": 32000,
    },
}
PER_SHARD = 1 << 30  # bytes of one safetensors shard

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("step", choices=("generate", "measure", "all", "_worker"))
    p.add_argument("--cache", default=str(HERE / ".cache" / "scale"))
    p.add_argument("--blocks-7b", type=int, default=1, help="blocks of the 7B-shaped slice")
    p.add_argument("--models", default="llama1b,llama7b_slice")
    p.add_argument(
        "--layers-1b",
        default="*",
        help="fnmatch pattern(s), comma-separated, of the 1.1 B matrices measured (default: all)",
    )
    p.add_argument("--layers-7b", default="*", help="the same for the 7B-shaped slice")
    p.add_argument("--modes", default="serial,workers2,cluster", help="rows per checkpoint, in order")
    p.add_argument("--out", default=str(HERE / "results" / "scale.md"))
    p.add_argument("--spec", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def shapes(model: str, blocks: int) -> list[tuple[str, tuple[int, ...]]]:
    s = SHAPES[model]
    h, f, v = s["hidden"], s["ffn"], s["vocab"]
    kv = h // s["heads"] * s["kv_heads"]
    whole = model == "llama1b"
    out = [("model.embed_tokens.weight", (v, h))] if whole else []
    for i in range(s["blocks"] if whole else blocks):
        b = f"model.layers.{i}."
        out += [
            (b + "self_attn.q_proj.weight", (h, h)),
            (b + "self_attn.k_proj.weight", (kv, h)),
            (b + "self_attn.v_proj.weight", (kv, h)),
            (b + "self_attn.o_proj.weight", (h, h)),
            (b + "mlp.gate_proj.weight", (f, h)),
            (b + "mlp.up_proj.weight", (f, h)),
            (b + "mlp.down_proj.weight", (h, f)),
            (b + "input_layernorm.weight", (h,)),
        ]
    return out + ([("model.norm.weight", (h,)), ("lm_head.weight", (v, h))] if whole else [])


def generate(args: argparse.Namespace) -> None:
    import torch
    from safetensors.torch import save_file

    for model in args.models.split(","):
        folder = Path(args.cache) / model
        folder.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(0)
        shard: dict = {}
        held, n, weight_map, files = 0, 0, {}, []
        todo = shapes(model, args.blocks_7b)
        for k, (name, shape) in enumerate(todo):
            t = torch.ones(shape) if len(shape) == 1 else torch.randn(shape) * 0.02
            shard[name] = t.to(torch.bfloat16)
            held += shard[name].numel() * 2
            n += shard[name].numel()
            if held >= PER_SHARD or k == len(todo) - 1:
                fname = f"model-{len(files) + 1:05d}.safetensors"
                save_file(shard, str(folder / fname), metadata={"format": "pt"})
                weight_map.update(dict.fromkeys(shard, fname))
                files.append(fname)
                shard, held = {}, 0
        (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
        (folder / "params.json").write_text(json.dumps({"parameters": n, "shards": len(files)}))
        print(f"{model}: {n / 1e9:.3f} B parameters, {len(files)} shards", file=sys.stderr)


def _usage() -> dict:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "cpu": me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime,
        "rss_parent_mb": me.ru_maxrss / 1024,
        "rss_worker_mb": kids.ru_maxrss / 1024,
    }


def _worker(spec: dict) -> None:
    """One measurement in this fresh process; prints one JSON line."""
    import pandas as pd
    import torch

    torch.set_num_threads(1)
    import wwtune

    folder, mode = spec["folder"], spec["mode"]
    out: dict = {"mode": mode}
    cluster = None
    if mode == "cluster":
        from distributed import LocalCluster

        s0 = time.perf_counter()
        cluster = LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
        )
        out["cluster_start_s"] = time.perf_counter() - s0
    serial_module = sys.modules["wwtune.spectral.analyze"]  # the module (its package exports a function)

    linalg = [0.0]
    eig = serial_module.compute_esds

    def timed_esds(*a, **k):  # noqa: ANN002, ANN003, ANN202 - the serial run's loads, Grams and eigvalsh
        c = time.process_time()
        try:
            return eig(*a, **k)
        finally:
            linalg[0] += time.process_time() - c

    serial_module.compute_esds = timed_esds
    c_before = _usage()["cpu"]
    t0 = time.perf_counter()
    kw = {"workers": 2} if mode == "workers2" else {"cluster": cluster.scheduler_address} if cluster else {}
    layers = spec["layers"].split(",") if spec["layers"] != "*" else None
    df = wwtune.analyze(folder, layers=layers, **kw)
    out["seconds"] = time.perf_counter() - t0
    if cluster is not None:
        cluster.close()
    out.update(layers=len(df), **_usage())
    out["cpu"] -= c_before
    if mode == "serial":
        out["linalg_cpu"] = linalg[0]
    if spec.get("reference"):
        ref = pd.read_pickle(spec["reference"])
        pd.testing.assert_frame_equal(df, ref, check_exact=True)
        out["equal_to_serial"] = True
    else:
        df.to_pickle(spec["save"])
    print(json.dumps(out))


def _run(spec: dict) -> dict:
    cmd = [sys.executable, __file__, "_worker", "--spec", json.dumps(spec)]
    print(f"$ {spec}", file=sys.stderr, flush=True)
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode:
        raise SystemExit(f"failed:\n{res.stderr[-3000:]}")
    out = json.loads(res.stdout.strip().splitlines()[-1])
    print(f"  {out}", file=sys.stderr, flush=True)
    return out


def measure(args: argparse.Namespace) -> None:
    import torch

    rows = []
    t_all = time.perf_counter()
    for model in args.models.split(","):
        folder = str(Path(args.cache) / model)
        ref = str(Path(args.cache) / f"{model}.serial.pkl")
        params = json.loads((Path(folder) / "params.json").read_text())
        layers = args.layers_1b if model == "llama1b" else args.layers_7b
        for mode in args.modes.split(","):
            spec = {"folder": folder, "mode": mode, "layers": layers}
            spec.update({"save": ref} if mode == "serial" else {"reference": ref})
            rows.append((model, params, _run(spec)))
            Path(args.out).with_suffix(".json").write_text(json.dumps(rows, indent=1))
    total = time.perf_counter() - t_all
    cmd = shlex.join(["python", "benchmarks/bench_scale.py", *sys.argv[1:]])
    lines = [
        "# Parallel analysis: 1 process, `workers=2`, a local 2-worker Dask cluster",
        "",
        "Produced by (repository root, the project's `.venv` with the `cluster` extra):",
        "",
        f"    OMP_NUM_THREADS=1 nice -n 10 {cmd}",
        "",
        f"- machine: {platform.machine()}, {os.cpu_count()} logical cores **shared with other engineers' "
        "jobs and heavily loaded while this ran** (load average 8-12 on 2 cores): wall times are inflated "
        "and uneven, CPU times much less so; python "
        f"{platform.python_version()}, torch {torch.__version__}; float64, 1 BLAS thread per process",
        f"- total wall time of the measurements: {total:.0f} s; one run per row (no repeats)",
        "- CPU = the measuring process plus every worker it waited for; peak RSS of the parent process and "
        "of the largest worker process (a Dask cluster's workers are its child processes here)",
        "",
        "| checkpoint | run | matrices | wall (s) | CPU (s) | wall / matrix (s) | peak RSS parent (MB) "
        "| peak RSS largest worker (MB) | notes |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for model, params, r in rows:
        pattern = args.layers_1b if model == "llama1b" else args.layers_7b
        size = f"{params['parameters'] / 1e9:.3f} B params, {params['shards']} shards"
        what = f"{model} ({size}; layers {pattern})"
        notes = []
        if "cluster_start_s" in r:
            notes.append(f"cluster start-up {r['cluster_start_s']:.1f} s, not in the wall time")
        if r.get("equal_to_serial"):
            notes.append("DataFrame equal to serial (exact)")
        if "linalg_cpu" in r:
            notes.append(
                f"analysis / bare linear algebra (load, Gram, eigvalsh) CPU: {r['cpu'] / r['linalg_cpu']:.3f}"
            )
        label = {
            "serial": "1 process",
            "workers2": "workers=2",
            "cluster": "Dask, 2 workers",
        }
        lines.append(
            f"| {what} | {label[r['mode']]} | {r['layers']} | {r['seconds']:.1f} | {r['cpu']:.1f} | "
            f"{r['seconds'] / r['layers']:.2f} | {r['rss_parent_mb']:.0f} | "
            f"{r['rss_worker_mb']:.0f} | {'; '.join(notes)} |"
        )
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)


def main() -> None:
    args = _parse(None)
    if args.step == "_worker":
        _worker(json.loads(args.spec))
        return
    if args.step in ("generate", "all"):
        generate(args)
    if args.step in ("measure", "all"):
        measure(args)


if __name__ == "__main__":
    main()
