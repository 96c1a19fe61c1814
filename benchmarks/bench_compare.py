#!/usr/bin/env python
"""Memory and speed of ``wwtune analyze`` / ``wwtune compare`` on a Llama-shaped 1.1 B checkpoint.

Steps (each a subcommand; ``all`` runs them in order):

* ``generate``: random bf16 weights in the shapes of TinyLlama-1.1B (22 blocks, hidden 2048, FFN 5632,
  32 heads with 4 key/value heads, vocabulary 32000, untied head: 1.10 B parameters, 2.2 GB) written as
  five safetensors shards plus ``model.safetensors.index.json`` into ``<cache>/base``. Two more folders:
  ``<cache>/edited`` (a byte copy of base except two matrices: one attention projection 4-bit round-trip
  quantised, one FFN matrix 90 % magnitude-pruned) and ``<cache>/tuned`` (every matrix moved by a small
  random step, 1 % of its RMS: nothing identical, the worst case for compare).
* ``measure``: every measurement in its own fresh Python process (peak RSS = that process's
  ``ru_maxrss``; the RSS right after the imports is given too), in this order: wwtune analyze of base,
  wwtune compare base vs edited, wwtune compare base vs tuned (``--tuned-layers`` bounds it), and
  WeightWatcher 0.7.7 ``analyze()`` of the same base weights (``--ww-layers``: WeightWatcher needs the
  whole model as an ``nn.Module`` in memory and takes much longer per layer; a stated subset when the full
  run does not fit the time budget).

Nothing here is a dependency of wwtune: run it in the benchmark-only venv of benchmarks/README.md. The
checkpoint (≈ 6.6 GB for the three folders) lives in ``benchmarks/.cache`` (git-ignored) unless ``--cache``
says otherwise. Thread counts are fixed to ``--threads`` (default 1) for every tool.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHAPE = {"hidden": 2048, "ffn": 5632, "blocks": 22, "heads": 32, "kv_heads": 4, "vocab": 32000}
SHARDS = 5
EDITED = {
    "model.layers.3.self_attn.q_proj.weight": "4-bit round-trip quantised (per tensor)",
    "model.layers.10.mlp.down_proj.weight": "90 % magnitude-pruned",
}


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("step", choices=("generate", "measure", "all", "_worker"))
    p.add_argument("--cache", default=str(HERE / ".cache" / "llama1b"), help="folder for the checkpoints")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--dtype",
        default="float64",
        choices=("float32", "float64"),
        help="wwtune's compute dtype (WeightWatcher always uses float64 SVD)",
    )
    p.add_argument(
        "--tuned-layers",
        default="*",
        help="fnmatch pattern(s), comma-separated, for the all-different compare (default: all)",
    )
    p.add_argument(
        "--ww-layers",
        default="model.embed_tokens,lm_head," + ",".join(f"model.layers.{i}.*" for i in range(6)),
        help="fnmatch pattern(s) of the matrices WeightWatcher analyses ('*': all)",
    )
    p.add_argument("--out", default=str(HERE / "results" / "compare.md"))
    p.add_argument("--tool", help=argparse.SUPPRESS)
    p.add_argument("--args", help=argparse.SUPPRESS)
    return p.parse_args(argv)


ARGS = _parse(None if __name__ == "__main__" else ["measure"])
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = str(ARGS.threads)


def _rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


# ---------------------------------------------------------------------------------------------- generate
def llama_shapes() -> list[tuple[str, tuple[int, ...]]]:
    h, f, v = SHAPE["hidden"], SHAPE["ffn"], SHAPE["vocab"]
    kv = h // SHAPE["heads"] * SHAPE["kv_heads"]
    out = [("model.embed_tokens.weight", (v, h))]
    for i in range(SHAPE["blocks"]):
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
            (b + "post_attention_layernorm.weight", (h,)),
        ]
    out += [("model.norm.weight", (h,)), ("lm_head.weight", (v, h))]
    return out


def quantise(w, bits: int = 4):  # noqa: ANN001, ANN201
    import torch

    levels = 2 ** (bits - 1) - 1
    scale = w.abs().max() / levels
    return (torch.clamp(torch.round(w / scale), -levels, levels) * scale).to(w.dtype)


def prune(w, fraction: float = 0.9):  # noqa: ANN001, ANN201
    import torch

    flat = w.abs().float().flatten()
    k = int(fraction * flat.numel())
    threshold = flat.kthvalue(k).values
    return torch.where(w.abs().float() > threshold, w, torch.zeros_like(w))


def _write_folder(folder: Path, tensors: dict) -> None:
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    names = list(tensors)
    total = sum(t.numel() * t.element_size() for t in tensors.values())
    per, shard, held, weight_map, shards = total / SHARDS, {}, 0, {}, []
    for name in names:
        shard[name] = tensors[name]
        held += tensors[name].numel() * tensors[name].element_size()
        if held >= per * (len(shards) + 1) or name == names[-1]:
            shards.append(shard)
            shard = {}
    for i, part in enumerate(shards):
        fname = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        save_file(part, str(folder / fname), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(part, fname))
    (folder / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=1)
    )


def generate() -> None:
    import torch

    cache = Path(ARGS.cache)
    torch.manual_seed(0)
    t0 = time.perf_counter()
    base = {}
    for name, shape in llama_shapes():
        if len(shape) == 1:
            base[name] = torch.ones(shape, dtype=torch.bfloat16)
        else:
            base[name] = (torch.randn(shape) * 0.02).to(torch.bfloat16)
    n = sum(t.numel() for t in base.values())
    print(f"generated {n / 1e9:.3f} B parameters in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    _write_folder(cache / "base", base)
    edited = dict(base)
    q, pr = list(EDITED)
    edited[q] = quantise(base[q])
    edited[pr] = prune(base[pr])
    _write_folder(cache / "edited", edited)
    del edited
    tuned = {
        k: (t + torch.randn(t.shape) * 0.01 * t.float().pow(2).mean().sqrt()).to(t.dtype)
        if t.dim() == 2
        else t
        for k, t in base.items()
    }
    _write_folder(cache / "tuned", tuned)
    (cache / "params.json").write_text(json.dumps({"parameters": n, "shape": SHAPE}))
    print(f"wrote {cache} in {time.perf_counter() - t0:.0f} s", file=sys.stderr)


# ---------------------------------------------------------------------------------------------- workers
def _worker() -> None:
    """One measurement in this process; prints one JSON line."""
    spec = json.loads(ARGS.args)
    import torch

    torch.set_num_threads(ARGS.threads)
    if ARGS.tool == "ww":
        import logging

        import weightwatcher as ww
        from safetensors import safe_open
        from torch import nn

        logging.getLogger("weightwatcher").setLevel(logging.ERROR)
        import fnmatch

        rss0 = _rss_mb()
        t0 = time.perf_counter()
        # WeightWatcher analyses an nn.Module held in memory: the selected matrices as Linear layers.
        folder = Path(spec["base"])
        index = json.loads((folder / "model.safetensors.index.json").read_text())["weight_map"]
        pats = spec["layers"].split(",")
        model = nn.Module()
        names = []
        for key, shard in index.items():
            name = key[: -len(".weight")]
            if not key.endswith(".weight") or not any(fnmatch.fnmatchcase(name, p) for p in pats):
                continue
            with safe_open(str(folder / shard), framework="pt") as f:
                w = f.get_tensor(key)
            if w.dim() != 2:
                continue
            lin = nn.Linear(w.shape[1], w.shape[0], bias=False)
            lin.weight = nn.Parameter(w.float(), requires_grad=False)
            model.add_module(name.replace(".", "_"), lin)
            names.append(name)
        t_load = time.perf_counter() - t0
        t1, c1 = time.perf_counter(), time.process_time()
        df = ww.WeightWatcher(model=model).analyze()
        t = time.perf_counter() - t1
        out = {
            "tool": "weightwatcher 0.7.7 analyze()",
            "layers": len(df),
            "selected": len(names),
            "load_s": t_load,
            "seconds": t,
            "cpu_s": time.process_time() - c1,
            "rss_after_import_mb": rss0,
            "peak_rss_mb": _rss_mb(),
            "alpha_median": float(df["alpha"].median()),
        }
    else:
        import wwtune

        rss0 = _rss_mb()
        layers = spec.get("layers")
        layers = None if layers in (None, "*") else layers.split(",")
        t0, c0 = time.perf_counter(), time.process_time()
        if ARGS.tool == "analyze":
            df = wwtune.analyze(spec["base"], layers=layers, dtype=ARGS.dtype)
            extra = {"alpha_median": float(df["alpha"].median())}
        else:
            df = wwtune.compare(spec["base"], spec["new"], layers=layers, dtype=ARGS.dtype)
            from wwtune.compare import DEFAULT_FAIL_ON, check_rules

            fired = check_rules(df, DEFAULT_FAIL_ON)
            extra = {
                "identical": int((df["identical"] == True).sum()),  # noqa: E712 - None when unknown
                "verdicts": df["verdict"].value_counts().head(4).to_dict(),
                "flagged": [f"{n} ({r})" for n, r in zip(df["name"], fired, strict=True) if r],
            }
        t = time.perf_counter() - t0
        out = {
            "tool": f"wwtune {ARGS.tool}",
            "layers": len(df),
            "seconds": t,
            "cpu_s": time.process_time() - c0,
            "rss_after_import_mb": rss0,
            "peak_rss_mb": _rss_mb(),
            **extra,
        }
    print(json.dumps(out))


def _run_worker(tool: str, **spec: str) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "_worker",
        "--tool",
        tool,
        "--threads",
        str(ARGS.threads),
        "--dtype",
        ARGS.dtype,
        "--args",
        json.dumps(spec),
    ]
    print(f"$ {tool} {spec}", file=sys.stderr, flush=True)
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode:
        raise SystemExit(f"{tool} failed:\n{res.stderr[-3000:]}")
    out = json.loads(res.stdout.strip().splitlines()[-1])
    print(f"  {out}", file=sys.stderr, flush=True)
    return out


def measure() -> None:
    import platform

    cache = Path(ARGS.cache)
    params = json.loads((cache / "params.json").read_text())
    t_all = time.perf_counter()
    base, edited, tuned = (str(cache / d) for d in ("base", "edited", "tuned"))
    partial = Path(ARGS.out).with_suffix(".json")
    rows: list[tuple[str, dict]] = []
    plan = [
        ("wwtune analyze base (all matrices)", "analyze", {"base": base}),
        (
            f"wwtune analyze base, WeightWatcher's subset ({ARGS.ww_layers})",
            "analyze",
            {"base": base, "layers": ARGS.ww_layers},
        ),
        (
            f"WeightWatcher 0.7.7 analyze() of base, subset ({ARGS.ww_layers})",
            "ww",
            {"base": base, "layers": ARGS.ww_layers},
        ),
        ("wwtune compare base edited (all matrices)", "compare", {"base": base, "new": edited}),
        (
            f"wwtune compare base tuned (layers {ARGS.tuned_layers})",
            "compare",
            {"base": base, "new": tuned, "layers": ARGS.tuned_layers},
        ),
    ]
    for label, tool, spec in plan:
        rows.append((label, _run_worker(tool, **spec)))
        partial.write_text(json.dumps([{"run": a, **b} for a, b in rows], indent=1))
    import torch

    cmd = shlex.join(["python", "benchmarks/bench_compare.py", *sys.argv[1:]])
    lines = [
        "# wwtune compare / analyze on a Llama-shaped 1.1 B checkpoint vs WeightWatcher 0.7.7",
        "",
        "Produced by (from the repository root, in the benchmark venv of benchmarks/README.md):",
        "",
        f"    {cmd}",
        "",
        f"- checkpoint: {params['parameters'] / 1e9:.3f} B parameters, random bf16, TinyLlama-1.1B "
        f"shapes {params['shape']}, {SHARDS} safetensors shards (generated by `generate`)",
        f"- `edited`: base with {', '.join(f'{k} {v}' for k, v in EDITED.items())}; every other tensor "
        "byte-identical. `tuned`: every matrix + N(0, (1 % of its RMS)²), nothing identical",
        f"- machine: {platform.machine()}, {os.cpu_count()} logical cores shared with other engineers' "
        f"jobs (wall times vary with their load; CPU times much less); {ARGS.threads} thread(s) for "
        f"every tool (OMP/OPENBLAS/MKL_NUM_THREADS and torch); wwtune dtype {ARGS.dtype}; "
        f"python {platform.python_version()}, torch {torch.__version__}",
        "- one fresh process per row; peak RSS = the process's ru_maxrss; the RSS right after the "
        "imports (torch and the libraries alone) beside it; one run per row (no repeats: the whole "
        "set takes about half an hour on these cores)",
        f"- total wall time of the measurements: {time.perf_counter() - t_all:.0f} s",
        "",
        "| run | matrices | total wall (s) | CPU (s) | wall per matrix (s) | peak RSS (MB) "
        "| RSS after imports (MB) | notes |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for label, r in rows:
        n = r["layers"]
        note = ""
        if "identical" in r:
            note = (
                f"{r['identical']} identical (not re-analysed); default --fail-on fires on: "
                f"{', '.join(r['flagged']) or 'none'}"
            )
        if r["tool"].startswith("weightwatcher"):
            note = f"building the nn.Module it needs: {r['load_s']:.0f} s, not in the total"
        lines.append(
            f"| {label} | {n} | {r['seconds']:.1f} | {r['cpu_s']:.1f} | {r['seconds'] / n:.2f} | "
            f"{r['peak_rss_mb']:.0f} | {r['rss_after_import_mb']:.0f} | {note} |"
        )
    sub, ww = rows[1][1], rows[2][1]
    lines += [
        "",
        f"Same matrices ({ww['layers']}): WeightWatcher {ww['seconds']:.1f} s wall / "
        f"{ww['cpu_s']:.1f} s CPU, wwtune analyze {sub['seconds']:.1f} s wall / "
        f"{sub['cpu_s']:.1f} s CPU: "
        f"{ww['seconds'] / sub['seconds']:.1f}× (wall), {ww['cpu_s'] / sub['cpu_s']:.1f}× (CPU).",
        "",
    ]
    Path(ARGS.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    if ARGS.step == "_worker":
        _worker()
    else:
        if ARGS.step in ("generate", "all"):
            generate()
        if ARGS.step in ("measure", "all"):
            measure()
