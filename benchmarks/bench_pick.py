"""Pick-rule benchmark (issue 21): the default value and pick rule chosen on seeds 0–8, read on 9–11 once.

Re-scores the recorded random-search runs (no training) with the product's own code: candidates are the
feasible trials of :func:`bench_selectors.candidates` (the shipped loss-drop rule), every pick is
:class:`wwtune.pick.PickRule` (or :class:`wwtune.score.Score` for a per-trial value), every regret
:func:`wwtune.trust.trust_report` (through :func:`bench_selectors.judge`).

    PYTHONPATH=. python benchmarks/bench_pick.py            # design on seeds 0–8 -> pick_rule.md
    PYTHONPATH=. python benchmarks/bench_pick.py --fresh3   # the frozen rule on seeds 9–11, ONCE

Design (``pick_rule.md``): rule family ``loss_group`` with knobs ``guard`` × ``group``; for every task the
knobs are chosen on the OTHER seven tasks (leave one task out) and that task's numbers are shown, then the
frozen default is the choice on all eight. Knob choice: (1) most task targets met, (2) fewest task × seed
runs worse than the random pick, (3) the smallest sum over tasks of mean regret / mean random regret.
Targets (fixed before seeds 9–11 are read): on a clean task the mean regret is within noise of the
training-loss pick's — at most ``MARGIN`` × the random pick's mean regret above it; on an over-fitting
scenario strictly lower; and on no task × seed worse than the random pick's expected regret.
Not part of CI.
"""

from __future__ import annotations

import argparse
import math
import shlex
import sys
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_selectors import OVERFITTING, RESULTS, candidates, judge, load  # noqa: E402

from wwtune.pick import Candidate, PickRule  # noqa: E402
from wwtune.score import Score  # noqa: E402

#: "within noise" of the training-loss pick on a clean task: this fraction of the random pick's regret
MARGIN = 0.10
GROUPS = (0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0)
#: per guard: None (smallest guard in the group) or a threshold (lowest loss with guard <= limit)
LIMITS: dict[str, tuple[float | None, ...]] = {
    "below": (None, 0.0, 0.34, 0.5),
    "band": (None, 0.25, 0.5, 1.0),
}
#: the frozen default (written here, and in conf/pick/default.yaml, before seeds 9–11 were read)
FROZEN: dict[str, Any] = {"kind": "loss_group", "group": 0.1, "guard": "below"}

Selector = Callable[[list[dict[str, Any]], tuple[float, float]], int]


def rule_selector(**kw: Any) -> Selector:
    def pick(cands: list[dict[str, Any]], band: tuple[float, float]) -> int:
        rule = PickRule(band=band, **kw)
        got = rule.choose([Candidate(c["number"], c["loss"], c["layers"]) for c in cands])
        assert got.number is not None
        return got.number

    return pick


def value_selector(**kw: Any) -> Selector:
    def pick(cands: list[dict[str, Any]], band: tuple[float, float]) -> int:
        score = Score(band=band, **kw)
        vals = [(score(c["layers"], train_loss=c["loss"]).value, c["number"]) for c in cands]
        return min((v, n) for v, n in vals if v is not None)[1]

    return pick


def name(guard: str, group: float, limit: float | None = None) -> str:
    return f"loss_group {guard} {group:g}" + ("" if limit is None else f" ≤{limit:g}")


def selectors() -> dict[str, Selector]:
    out: dict[str, Selector] = {
        "training loss": rule_selector(kind="train_loss"),
        "fit_band w=5 (old default)": value_selector(kind="fit_band", weight=5.0),
        "α score (band)": value_selector(kind="band_distance"),
    }
    for guard, limits in LIMITS.items():
        for group in GROUPS:
            for limit in limits:
                if group == 1.0 and limit is None:
                    continue  # the guard alone, no loss: not training-loss-first
                out[name(guard, group, limit)] = rule_selector(
                    kind="loss_group", guard=guard, group=group, limit=limit
                )
    return out


def per_task(rows: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    by: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by[(r["task"], r["selector"])].append(r)
    out = {}
    for (task, sel), rs in by.items():
        m = float(np.mean([r["regret"] for r in rs]))
        b = float(np.mean([r["train_loss_regret"] for r in rs]))
        rnd = float(np.mean([r["random_regret"] for r in rs]))
        worse = [r["seed"] for r in rs if r["regret"] > r["random_regret"] + 1e-12]
        ok = m < b - 1e-12 if task in OVERFITTING else m <= b + MARGIN * rnd + 1e-12
        out[(task, sel)] = {"mean": m, "train": b, "random": rnd, "met": ok, "worse_random": worse}
    return out


def objective(stats: dict[tuple[str, str], dict[str, Any]], sel: str, tasks: Sequence[str]) -> tuple:
    met = sum(stats[(t, sel)]["met"] for t in tasks)
    worse = sum(len(stats[(t, sel)]["worse_random"]) for t in tasks)
    rel = sum(stats[(t, sel)]["mean"] / max(stats[(t, sel)]["random"], 1e-12) for t in tasks)
    return (-met, worse, rel)


def value_weight(runs: list[dict[str, Any]]) -> tuple[float, list[float]]:
    """The weight that puts the band distance on the scale of log10(training loss): per run, the
    inter-quartile range of log10 L over that of B among the feasible candidates; the median over runs."""
    ratios = []
    for run in runs:
        band = tuple(run["score"].get("band") or Score().band)
        score = Score(band=band)
        cands = candidates(run)
        logs = np.log10([max(c["loss"], 1e-6) for c in cands])
        bs = np.array([v for v in (score(c["layers"]).value for c in cands) if v is not None])
        iqr_l = np.subtract(*np.percentile(logs, [75, 25]))
        iqr_b = np.subtract(*np.percentile(bs, [75, 25])) if len(bs) > 3 else 0.0
        if iqr_b > 0:
            ratios.append(float(iqr_l / iqr_b))
    return float(np.median(ratios)), ratios


def design_runs() -> list[dict[str, Any]]:
    runs = [r for r in load(RESULTS / "trust_runs", None) if int(r["seed"]) <= 2]
    runs += load(RESULTS / "trust_runs_fresh", None) + load(RESULTS / "trust_runs_fresh2", None)
    return runs


def design(command: str) -> str:
    runs = design_runs()
    sels = selectors()
    rows = [row for run in runs for row in judge(run, selectors=sels)]
    stats = per_task(rows)
    tasks = sorted({r["task"] for r in rows}, key=lambda t: (t in OVERFITTING, t))
    # the family: guard x group (the smallest guard in the group); the threshold variants (limit) were
    # tried too and met fewer targets out of task (shown below), so they are not the family
    family = [s for s in sels if s.startswith("loss_group") and "≤" not in s]
    extended = [s for s in sels if s.startswith("loss_group")]
    ext_met = sum(
        stats[(t, min(extended, key=lambda s: objective(stats, s, [o for o in tasks if o != t])))]["met"]
        for t in tasks
    )
    seeds = {t: sorted({r["seed"] for r in rows if r["task"] == t}) for t in tasks}
    lines = [
        "# Pick rule and per-trial value: chosen on seeds 0–8, frozen before seeds 9–11 are read",
        "",
        "```bash",
        command,
        "```",
        "",
        "Recorded random-search runs, no training. Candidates: feasible under the shipped loss-drop rule "
        "(bench_selectors.candidates). Regret: held-out gap to the best candidate (0 = best). Runs: "
        + "; ".join(f"{t} seeds {seeds[t]}" for t in tasks)
        + ".",
        "",
        f"Targets, fixed before reading seeds 9–11: clean task — mean regret ≤ training-loss pick's + "
        f'{MARGIN:g} × the random pick\'s mean regret ("within noise"); over-fitting scenario '
        f"({', '.join(OVERFITTING)}) — strictly lower than the training-loss pick; every task × seed — not "
        "worse than the random pick's expected regret.",
        "",
        "## Out-of-task: knobs chosen leaving the task out",
        "",
        "| held-out task | knobs chosen on the other 7 | its mean regret | training loss | random | "
        "target met | seeds worse than random |",
        "|---|---|---:|---:|---:|---|---|",
    ]
    loto_met = 0
    for t in tasks:
        others = [o for o in tasks if o != t]
        best = min(family, key=lambda s: objective(stats, s, others))
        st = stats[(t, best)]
        loto_met += st["met"]
        lines.append(
            f"| {t} | {best} | {st['mean']:.4f} | {st['train']:.4f} | {st['random']:.4f} | "
            f"{'yes' if st['met'] else 'no'} | {st['worse_random'] or 'none'} |"
        )
    chosen = min(family, key=lambda s: objective(stats, s, tasks))
    lines += [
        "",
        f"Out-of-task targets met: {loto_met} of {len(tasks)} (family: guard × group). The same leave-one-"
        f"task-out choice over the extended family (with the threshold variants `≤limit`) met {ext_met} of "
        f"{len(tasks)}: the extra knobs over-fit the other tasks, so the family stays guard × group.",
        "",
        f"## Chosen on all eight tasks (frozen default): `{chosen}`",
        "",
        "| selector | " + " | ".join(tasks) + " | targets met | task × seed worse than random |",
        "|---" * (len(tasks) + 3) + "|",
    ]
    for s in sels:
        cells = [f"{stats[(t, s)]['mean']:.4f}{'' if stats[(t, s)]['met'] else '✗'}" for t in tasks]
        met = sum(stats[(t, s)]["met"] for t in tasks)
        worse = sum(len(stats[(t, s)]["worse_random"]) for t in tasks)
        tag = " **(chosen)**" if s == chosen else ""
        lines.append(f"| {s}{tag} | " + " | ".join(cells) + f" | {met}/{len(tasks)} | {worse} |")
    rnd = [f"{stats[(t, 'training loss')]['random']:.4f}" for t in tasks]
    lines.append("| random (expected) | " + " | ".join(rnd) + " | – | – |")
    lines += ["", "✗: target missed (the training-loss row is the reference of the targets).", ""]
    w, ratios = value_weight(runs)
    lines += [
        "## Per-trial value (what the sampler optimises)",
        "",
        "`fit_band` = log10(L) + weight × B. Comparable scales: per run, the inter-quartile range of "
        "log10 L over that of B among the feasible candidates; median over the "
        f"{len(ratios)} runs: {w:.3f} (quartiles {np.percentile(ratios, 25):.3f} – "
        f"{np.percentile(ratios, 75):.3f}). The old weight 5 made B count "
        f"{5 / w:.0f}× the loss spread.",
        "",
    ]
    return "\n".join(lines) + "\n"


def fresh3(command: str) -> str:
    runs = load(RESULTS / "trust_runs_fresh3", None)
    sels = {
        "training loss": rule_selector(kind="train_loss"),
        "frozen default: " + name(FROZEN["guard"], FROZEN["group"], FROZEN.get("limit")): rule_selector(
            **FROZEN
        ),
        "fit_band w=5 (old default)": value_selector(kind="fit_band", weight=5.0),
    }
    rows = [row for run in runs for row in judge(run, selectors=sels)]
    stats = per_task(rows)
    tasks = sorted({r["task"] for r in rows}, key=lambda t: (t in OVERFITTING, t))
    frozen = next(s for s in sels if s.startswith("frozen"))
    lines = [
        "# The frozen pick rule on seeds 9–11 (read once)",
        "",
        "```bash",
        command,
        "```",
        "",
        "| task | seeds | frozen default | training loss | old default fit_band w=5 | random | target | "
        "met | seeds worse than random |",
        "|---|---|---:|---:|---:|---:|---|---|---|",
    ]
    for t in tasks:
        st = stats[(t, frozen)]
        seeds = sorted({r["seed"] for r in rows if r["task"] == t})
        need = "< training loss" if t in OVERFITTING else f"≤ training loss + {MARGIN:g} × random"
        lines.append(
            f"| {t} | {seeds} | {st['mean']:.4f} | {st['train']:.4f} | "
            f"{stats[(t, 'fit_band w=5 (old default)')]['mean']:.4f} | {st['random']:.4f} | {need} | "
            f"{'yes' if st['met'] else 'NO'} | {st['worse_random'] or 'none'} |"
        )
    clean = [t for t in tasks if t not in OVERFITTING]
    over = [t for t in tasks if t in OVERFITTING]
    worse = sum(len(stats[(t, frozen)]["worse_random"]) for t in tasks)
    lines += [
        "",
        f"- clean tasks within noise of the training-loss pick: "
        f"{sum(stats[(t, frozen)]['met'] for t in clean)} of {len(clean)} (target: all)",
        f"- over-fitting scenarios strictly lower: {sum(stats[(t, frozen)]['met'] for t in over)} of "
        f"{len(over)} (target: at least 2)",
        f"- task × seed runs worse than the random pick: {worse} (target: 0)",
        "",
        "## Per run",
        "",
        "| task | seed | n | " + " | ".join(sels) + " | random |",
        "|---" * (len(sels) + 4) + "|",
    ]
    for t in tasks:
        for seed in sorted({r["seed"] for r in rows if r["task"] == t}):
            rs = {r["selector"]: r for r in rows if r["task"] == t and r["seed"] == seed}
            any_r = next(iter(rs.values()))
            lines.append(
                f"| {t} | {seed} | {any_r['n']} | "
                + " | ".join(f"{rs[s]['regret']:.4f}" for s in sels)
                + f" | {any_r['random_regret']:.4f} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fresh3", action="store_true", help="the frozen rule on seeds 9–11 (once)")
    args = ap.parse_args(argv)
    command = "PYTHONPATH=. python " + " ".join(
        shlex.quote(a) for a in ["benchmarks/bench_pick.py", *(argv if argv is not None else sys.argv[1:])]
    )
    text = fresh3(command) if args.fresh3 else design(command)
    out = RESULTS / ("pick_rule_fresh3.md" if args.fresh3 else "pick_rule.md")
    out.write_text(text)
    print(text)
    return 0 if not math.isnan(0.0) else 1


if __name__ == "__main__":
    sys.exit(main())
