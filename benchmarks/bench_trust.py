"""Can the α score be trusted, and what does AlphaPruner save? Each bundled task, several seeds.

Design (affordable on 2 shared cores): per task × seed, ONE wwtune study samples ``--n`` configurations
from the task's search space with the random sampler (seeded) and trains every one to the end of its
budget, analysing the weights at every report step exactly as ``python -m wwtune`` does (same config
composition, same score, same sanity rules). Its pruner is a :class:`wwtune.replay.RecordingPruner`: it
never prunes, it keeps what a pruner was shown at each step, and asks a live default AlphaPruner along
the way (decisions recorded, not acted on). Then, over the SAME trained configurations:

* (a) α selection: the study's best trial by α score (what wwtune would return),
* (b) held-out selection: the trial with the best held-out metric (the oracle a validation set gives),
* (c) random choice: the expectation over the completed trials (mean held-out),

and the correlations / regrets come from :func:`wwtune.trust.trust_report` on the study's trials.
AlphaPruner is replayed (:func:`wwtune.replay.replay_pruner`) on each run's recorded per-step diagnostics;
compute saved = training steps after the prune step / all training steps; a false kill is a pruned run
whose final held-out metric (it was trained to the end) is in the top quartile of that task × seed.

Every run's records are written to ``--runs-dir`` as JSON, so the tables can be recomputed, and pruner
settings replayed, without training again (``--from-runs``).

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python benchmarks/bench_trust.py \\
        --tasks digits_mlp digits_cnn char_lm teacher_student --seeds 0 1 2 --n 30

Not part of CI.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import torch
from optuna.trial import TrialState, create_trial

from wwtune.cli import compose
from wwtune.pruners import AlphaPruner
from wwtune.replay import replay_pruner
from wwtune.study import best_trial, run_study
from wwtune.trust import trust_report

HERE = Path(__file__).resolve().parent
TASKS = ("digits_mlp", "digits_cnn", "char_lm", "teacher_student")
SCORE_CONF = {"char_lm": "transformer"}  # α band [3, 4] for the transformer; band [2, 2] otherwise
PRUNER_KNOBS = ("warmup_fraction", "under_trained_alpha", "under_trained_fraction", "norm_growth")
# AlphaPruner's defaults when the committed runs were recorded (commit 9359862); a run record stores the
# live pruner's settings itself ("live_knobs") since this script's first version, older ones use these.
LIVE_KNOBS_BEFORE = {
    "warmup_fraction": 0.5,
    "under_trained_alpha": 6.0,
    "under_trained_fraction": 0.4,
    "norm_growth": 100.0,
}

_logger = logging.getLogger("bench_trust")


# --------------------------------------------------------------------------------------------------
# running: one study per task × seed, every configuration trained to the end


def study_config(
    task: str,
    seed: int,
    n: int,
    budget: int | None,
    workdir: Path,
    extra: Sequence[str],
    *,
    sampler: str,
    name: str,
    score: str | None = None,
    objective: str | None = None,
    search_space: str | None = None,
) -> dict[str, Any]:
    """The composed config of one benchmark study (as ``python -m wwtune`` composes it) with overrides.

    ``objective`` / ``search_space`` name the config files when they differ from ``task`` (a scenario).
    """
    overrides = [
        f"objective={objective or task}",
        f"search_space={search_space or task}",
        f"score={score or SCORE_CONF.get(task, 'band')}",
        f"sampler={sampler}",
        f"study.name={name}",
        f"study.n_trials={n}",
        f"study.seed={seed}",
        f"study.studies_dir={workdir}",
        "study.progress_bar=false",
        *([f"objective.budget={budget}"] if budget is not None else []),
        *extra,
    ]
    cfg = compose(overrides)
    # objective.fixed and search_space.params may both name a hyperparameter (digits_cnn and char_lm
    # do for batch_size); the searched one wins, as run_study now does itself.
    searched = set((cfg.get("search_space") or {}).get("params") or {})
    cfg["objective"]["fixed"] = {
        k: v for k, v in (cfg["objective"].get("fixed") or {}).items() if k not in searched
    }
    return cfg


def run_one(
    task: str,
    seed: int,
    n: int,
    budget: int | None,
    workdir: Path,
    extra: Sequence[str] = (),
    *,
    score: str | None = None,
    objective: str | None = None,
    search_space: str | None = None,
) -> dict[str, Any]:
    """Run one study and return its JSON-serialisable record (config, trials, per-step pruner records).

    Per trial also ``result``: what the task returned besides ``heldout`` (e.g. ``loss_init``, the training
    loss before training, and ``loss_trivial``, the best constant predictor's, for the bundled tasks).
    """
    cfg = study_config(
        task,
        seed,
        n,
        budget,
        workdir,
        extra,
        sampler="random",
        name=f"{task}_s{seed}",
        score=score,
        objective=objective,
        search_space=search_space,
    )
    cfg["pruner"] = {
        "_target_": "wwtune.replay.RecordingPruner",
        "live": {"_target_": "wwtune.pruners.AlphaPruner"},
    }
    start = time.perf_counter()
    study = run_study(cfg)
    wall = time.perf_counter() - start
    recorder = study.pruner
    live_knobs = {k: getattr(recorder._live, f"_{k}") for k in PRUNER_KNOBS}
    trials = []
    for t in study.get_trials(deepcopy=False):
        ua = t.user_attrs
        trials.append(
            {
                "number": t.number,
                "state": t.state.name,
                "value": t.value,
                "params": t.params,
                "score": ua.get("wwtune.score"),
                "heldout": ua.get("wwtune.heldout"),
                "fail_reason": ua.get("wwtune.fail_reason"),
                "losses": ua.get("wwtune.losses"),
                "result": ua.get("wwtune.result"),
                "time_train_s": ua.get("wwtune.time_train_s"),
                "time_analysis_s": ua.get("wwtune.time_analysis_s"),
                "budget": ua.get("wwtune.budget"),
                "records": recorder.records.get(t.number, []),
                "live_prune": recorder.live_decisions.get(t.number),
            }
        )
    return {
        "task": task,
        "seed": seed,
        "n": n,
        "budget": cfg["objective"]["budget"],
        "overrides": list(extra),
        "sampler": "random",
        "objective": objective or task,
        "search_space": search_space or task,
        "score": cfg["score"],
        "heldout": cfg["objective"]["heldout"],
        "wall_s": wall,
        "live_knobs": live_knobs,
        "trials": trials,
    }


def run_tpe(
    task: str, seed: int, n: int, budget: int | None, workdir: Path, score: str, extra: Sequence[str] = ()
) -> dict[str, Any]:
    """A TPE study driven by ``score`` ("alpha": the task's α band score, "heldout": the held-out metric).

    Returns the held-out metric of the trial the study returns (its best by its own objective), and of the
    best trial seen, after every trial.
    """
    name = f"{task}_s{seed}_tpe_{score}"
    kind = None if score == "alpha" else "heldout"
    cfg = study_config(task, seed, n, budget, workdir, extra, sampler="tpe", name=name, score=kind)
    start = time.perf_counter()
    study = run_study(cfg)
    best = best_trial(study)
    return {
        "task": task,
        "seed": seed,
        "driven_by": score,
        "n": n,
        "budget": cfg["objective"]["budget"],
        "wall_s": time.perf_counter() - start,
        "heldout": cfg["objective"]["heldout"],
        "returned_heldout": None if best is None else best.user_attrs.get("wwtune.heldout"),
        "trials": [
            {
                "number": t.number,
                "state": t.state.name,
                "value": t.value,
                "params": t.params,
                "score": t.user_attrs.get("wwtune.score"),
                "heldout": t.user_attrs.get("wwtune.heldout"),
            }
            for t in study.get_trials(deepcopy=False)
        ],
    }


def tpe_table(runs: list[dict[str, Any]]) -> str:
    out = [
        "## TPE driven by the α score vs by the held-out metric",
        "",
        "Held-out metric of the trial each study returns (best by its own objective; wwtune's "
        "best_trial), and of the best trial it trained (what the held-out-driven study returns).",
        "",
        "| task | seed | budget | trials | α-driven: returned | α-driven: best trained "
        "| held-out-driven: returned | gap (α − held-out) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    pairs: dict[tuple[str, int], dict[str, dict[str, Any]]] = {}
    for r in runs:
        pairs.setdefault((r["task"], r["seed"]), {})[r["driven_by"]] = r
    for (task, seed), pair in sorted(pairs.items()):
        a, h = pair.get("alpha"), pair.get("heldout")
        if a is None or h is None:
            continue
        sign = 1.0 if a["heldout"]["direction"] == "maximize" else -1.0
        trained = [t["heldout"] for t in a["trials"] if _finite(t["heldout"])]
        best_trained = max(trained, key=lambda x: sign * x) if trained else None
        gap = (
            sign * (a["returned_heldout"] - h["returned_heldout"])
            if _finite(a["returned_heldout"]) and _finite(h["returned_heldout"])
            else None
        )
        out.append(
            f"| {task} | {seed} | {a['budget']} | {a['n']} | {_f(a['returned_heldout'])} "
            f"| {_f(best_trained)} "
            f"| {_f(h['returned_heldout'])} | {_f(gap, '+.3f')} |"
        )
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------------------------------
# analysis of a run record (no training)


def _frozen(trials: Sequence[Mapping[str, Any]]) -> list[optuna.trial.FrozenTrial]:
    out = []
    for t in trials:
        state = TrialState[t["state"]]
        value = t["value"] if state == TrialState.COMPLETE else None
        attrs = {k: t[k] for k in ("score", "heldout") if t.get(k) is not None}
        frozen = create_trial(
            state=state, value=value, user_attrs={f"wwtune.{k}": v for k, v in attrs.items()}
        )
        frozen.number = t["number"]
        out.append(frozen)
    return out


def trained_steps(trial: Mapping[str, Any]) -> int:
    """Training steps the run actually did (a diverged run stops early even without a pruner)."""
    losses = trial.get("losses") or []
    return int(losses[-1][0]) if losses else 0


def pruner_stats(run: Mapping[str, Any], knobs: Mapping[str, float]) -> dict[str, Any]:
    """Replay AlphaPruner(**knobs) on the run's records: pruned, compute saved, false kills."""
    trials = run["trials"]
    records = {t["number"]: t["records"] for t in trials}
    budgets = {t["number"]: t["budget"] for t in trials}
    decisions = replay_pruner(AlphaPruner(**knobs), records, budgets)
    # check of the replay: with the live pruner's settings it must make the live pruner's decisions
    live = replay_pruner(AlphaPruner(**run.get("live_knobs", LIVE_KNOBS_BEFORE)), records, budgets)
    sign = 1.0 if run["heldout"]["direction"] == "maximize" else -1.0
    good = [sign * t["heldout"] for t in trials if _finite(t["heldout"])]
    top_q = float(np.quantile(good, 0.75)) if good else math.nan
    total = sum(trained_steps(t) for t in trials)
    saved, pruned, false_kills, rules = 0, [], [], {}
    for t in trials:
        d = decisions.get(t["number"])
        if d is None or d["step"] is None or d["step"] >= trained_steps(t):
            continue
        pruned.append(t["number"])
        saved += trained_steps(t) - d["step"]
        rule = (d.get("reason") or {}).get("rule", "?")
        rules[rule] = rules.get(rule, 0) + 1
        if _finite(t["heldout"]) and sign * t["heldout"] >= top_q:
            false_kills.append(t["number"])
    agree = sum(
        1
        for t in trials
        if (live.get(t["number"]) or {}).get("step") == (t.get("live_prune") or {}).get("step")
    )
    return {
        "pruned": len(pruned),
        "saved": saved / total if total else math.nan,
        "false_kills": len(false_kills),
        "top_quartile": sign * top_q,
        "rules": rules,
        "live_agree": agree,
        "n_trials": len(trials),
    }


def analyse(run: Mapping[str, Any], knobs: Mapping[str, float]) -> dict[str, Any]:
    direction = run["heldout"]["direction"]
    rep = trust_report(_frozen(run["trials"]), direction)
    complete = [t for t in run["trials"] if t["state"] == "COMPLETE" and _finite(t["heldout"])]
    sign = 1.0 if direction == "maximize" else -1.0
    alpha_pick = rep["alpha_best"]["heldout"] if rep["alpha_best"] else math.nan
    # percentile of the α pick among the completed trials: fraction a random pick does strictly worse than
    beaten = [t for t in complete if sign * t["heldout"] < sign * alpha_pick]
    times = [t.get("time_train_s") or 0.0 for t in run["trials"]]
    atimes = [t.get("time_analysis_s") or 0.0 for t in run["trials"]]
    return {
        "task": run["task"],
        "seed": run["seed"],
        "sampler": run.get("sampler", "random"),
        "budget": run["budget"],
        "n": len(run["trials"]),
        "complete": rep["n"],
        "failed": sum(t["state"] == "FAIL" for t in run["trials"]),
        "spearman": rep["spearman"],
        "spearman_p": rep["spearman_p"],
        "kendall": rep["kendall"],
        "kendall_p": rep["kendall_p"],
        "verdict": rep["verdict"],
        "heldout_alpha_pick": alpha_pick,
        "heldout_best": rep["heldout_best"]["heldout"] if rep["heldout_best"] else math.nan,
        "heldout_random": float(np.mean([t["heldout"] for t in complete])) if complete else math.nan,
        "regret_alpha": rep["regret"],
        "regret_random": rep["random_regret"],
        "alpha_beats_random_pick": len(beaten) / len(complete) if complete else math.nan,
        "train_s": sum(times),
        "analysis_s": sum(atimes),
        **{f"pruner_{k}": v for k, v in pruner_stats(run, knobs).items()},
    }


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


# --------------------------------------------------------------------------------------------------
# tables


def _f(x: Any, fmt: str = ".3f") -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, fmt)


def markdown(rows: list[dict[str, Any]], command: str, knobs: Mapping[str, float], notes: str) -> str:
    out = [
        "# Trust in the α score and AlphaPruner savings, per bundled task",
        "",
        "```",
        command,
        "```",
        "",
        (__doc__ or "").split("\n\n    OMP_NUM_THREADS")[0].split("\n", 2)[2].strip(),
        "",
        notes,
        "",
        f"AlphaPruner replayed with: {dict(knobs) or 'its defaults'} (other arguments default).",
        "",
        "Correlations are oriented (+1 = better α score goes with better held-out; wwtune.trust). "
        "Held-out metric: accuracy (higher is better) for digits_*, bits per char (lower) for char_lm, "
        "error (lower) for teacher_student. Regret = held-out gap to the best trial (≥ 0, lower is "
        "better); random = expected regret of a uniform pick among the completed trials. "
        "'α pick beats' = fraction of completed trials whose held-out is strictly worse than the α pick's.",
        "",
        "## Per task × seed",
        "",
        "| task | seed | budget | trials (complete/failed) | Spearman (p) | Kendall (p) | verdict "
        "| held-out: α pick | best | random mean | regret α | regret random | α pick beats "
        "| pruned | compute saved | false kills | replay = live |",
        "|---|---:|---:|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        out.append(
            f"| {r['task']} | {r['seed']} | {r['budget']} | {r['n']} ({r['complete']}/{r['failed']}) "
            f"| {_f(r['spearman'], '+.2f')} ({_f(r['spearman_p'], '.2g')}) "
            f"| {_f(r['kendall'], '+.2f')} ({_f(r['kendall_p'], '.2g')}) | {r['verdict']} "
            f"| {_f(r['heldout_alpha_pick'])} | {_f(r['heldout_best'])} | {_f(r['heldout_random'])} "
            f"| {_f(r['regret_alpha'])} | {_f(r['regret_random'])} "
            f"| {_f(r['alpha_beats_random_pick'], '.0%')} "
            f"| {r['pruner_pruned']} | {_f(r['pruner_saved'], '.0%')} "
            f"| {r['pruner_false_kills']}/{r['pruner_pruned']} "
            f"| {r['pruner_live_agree']}/{r['pruner_n_trials']} |"
        )
    out += ["", "## Per task (over seeds) and targets", ""]
    out.append(
        "| task | seeds | mean Spearman | mean regret α | mean regret random | α better than random "
        "(seeds) | within 2 points (digits; seeds) | compute saved (mean over seeds) "
        "| false-kill rate (all pruned) |"
    )
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for task in dict.fromkeys(r["task"] for r in rows):
        rs = [r for r in rows if r["task"] == task]
        steps = sum(r["pruner_saved"] * 1.0 for r in rs)  # per-seed fractions; weights equal below
        pruned = sum(r["pruner_pruned"] for r in rs)
        kills = sum(r["pruner_false_kills"] for r in rs)
        better = sum(1 for r in rs if _finite(r["regret_alpha"]) and r["regret_alpha"] < r["regret_random"])
        within = (
            f"{sum(1 for r in rs if _finite(r['regret_alpha']) and r['regret_alpha'] <= 0.02)}/{len(rs)}"
            if task.startswith("digits")
            else "—"
        )
        sp = [r["spearman"] for r in rs if r["spearman"] is not None]
        out.append(
            f"| {task} | {len(rs)} | {_f(statistics.mean(sp) if sp else None, '+.2f')} "
            f"| {_f(statistics.mean(r['regret_alpha'] for r in rs))} "
            f"| {_f(statistics.mean(r['regret_random'] for r in rs))} | {better}/{len(rs)} | {within} "
            f"| {_f(steps / len(rs), '.0%')} "
            f"| {kills}/{pruned} = {_f(kills / pruned if pruned else None, '.0%')} |"
        )
    total_pruned = sum(r["pruner_pruned"] for r in rows)
    total_kills = sum(r["pruner_false_kills"] for r in rows)
    out += ["", "## Targets (computed from the rows above)", "", *targets(rows)]
    out += [
        "",
        f"All runs: compute saved {_f(statistics.mean(r['pruner_saved'] for r in rows), '.0%')} "
        f"(mean of per-run fractions), false kills {total_kills}/{total_pruned} pruned "
        f"({_f(total_kills / total_pruned if total_pruned else None, '.0%')}).",
        "",
        "Prune rules that fired: "
        + ", ".join(
            f"{k} {sum(r['pruner_rules'].get(k, 0) for r in rows)}"
            for k in sorted({k for r in rows for k in r["pruner_rules"]})
        ),
        "",
        "Trial time summed (2 shared cores): "
        + ", ".join(_time(rows, task) for task in dict.fromkeys(r["task"] for r in rows))
        + ".",
    ]
    return "\n".join(out) + "\n"


def grid(runs: list[dict[str, Any]], command: str) -> str:
    """Pooled pruner outcomes over a grid of AlphaPruner settings (for tuning on separate seeds)."""
    out = [
        "# AlphaPruner settings replayed on the tuning runs",
        "",
        "```",
        command,
        "```",
        "",
        "Runs: "
        + ", ".join(f"{r['task']} seed {r['seed']} ({len(r['trials'])} trials)" for r in runs)
        + ". Replayed, no training; norm_growth 100 and the other rules at their defaults. Saved = mean of "
        "the per-run fractions of training steps; false kills pooled over all pruned runs.",
        "",
        "| warmup_fraction | under_trained_alpha | under_trained_fraction | saved | false kills | per run "
        "(saved, false kills/pruned) |",
        "|---:|---:|---:|---:|---:|---|",
    ]
    for wf in (0.3, 0.4, 0.5):
        for ua in (4.0, 5.0, 6.0, 7.0, 8.0):
            for uf in (0.4, 0.5):
                knobs = {"warmup_fraction": wf, "under_trained_alpha": ua, "under_trained_fraction": uf}
                stats = [pruner_stats(r, knobs) for r in runs]
                pruned = sum(st["pruned"] for st in stats)
                kills = sum(st["false_kills"] for st in stats)
                per = "; ".join(
                    f"{r['task']} {st['saved']:.0%}, {st['false_kills']}/{st['pruned']}"
                    for r, st in zip(runs, stats, strict=True)
                )
                out.append(
                    f"| {wf} | {ua:g} | {uf} | {statistics.mean(st['saved'] for st in stats):.0%} "
                    f"| {kills}/{pruned} = {_f(kills / pruned if pruned else None, '.0%')} | {per} |"
                )
    return "\n".join(out) + "\n"


def targets(rows: list[dict[str, Any]]) -> list[str]:
    """The issue's three targets, met or missed, with the numbers."""
    lines = []
    digits = [r for r in rows if r["task"].startswith("digits")]
    if digits:
        worst = max(digits, key=lambda r: r["regret_alpha"])
        ok = all(r["regret_alpha"] <= 0.02 for r in digits)
        lines.append(
            f"- α-selected config within 2 accuracy points of the held-out-selected one on the digits tasks: "
            f"**{'met' if ok else 'missed'}** — "
            f"{sum(r['regret_alpha'] <= 0.02 for r in digits)}/{len(digits)} task × seed runs; largest gap "
            f"{100 * worst['regret_alpha']:.1f} points ({worst['task']} seed {worst['seed']})."
        )
    per_task = []
    all_ok = True
    for task in dict.fromkeys(r["task"] for r in rows):
        rs = [r for r in rows if r["task"] == task]
        better = sum(r["regret_alpha"] < r["regret_random"] for r in rs)
        all_ok &= better == len(rs)
        per_task.append(f"{task} {better}/{len(rs)} seeds")
    lines.append(
        f"- α selection better than random on every task (lower regret than the random pick's expectation, "
        f"every seed): **{'met' if all_ok else 'missed'}** — {', '.join(per_task)}."
    )
    saved = statistics.mean(r["pruner_saved"] for r in rows)
    pruned = sum(r["pruner_pruned"] for r in rows)
    kills = sum(r["pruner_false_kills"] for r in rows)
    rate = kills / pruned if pruned else 0.0
    lines.append(
        f"- AlphaPruner saves ≥ 25% of training compute with a false-kill rate < 10% (all runs pooled): "
        f"**{'met' if saved >= 0.25 and rate < 0.10 else 'missed'}** — saved {saved:.0%}, false kills "
        f"{kills}/{pruned} = {rate:.0%}; per task: "
        + "; ".join(
            f"{task} {statistics.mean(r['pruner_saved'] for r in rows if r['task'] == task):.0%} saved, "
            f"{sum(r['pruner_false_kills'] for r in rows if r['task'] == task)}/"
            f"{sum(r['pruner_pruned'] for r in rows if r['task'] == task)} false kills"
            for task in dict.fromkeys(r["task"] for r in rows)
        )
        + "."
    )
    return lines


def _time(rows: list[dict[str, Any]], task: str) -> str:
    train = sum(r["train_s"] for r in rows if r["task"] == task)
    analysis = sum(r["analysis_s"] for r in rows if r["task"] == task)
    return f"{task} {(train + analysis) / 60:.1f} min (analysis {analysis / max(train + analysis, 1e-9):.0%})"


def write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    keys = [k for k in rows[0] if k != "pruner_rules"] + ["pruner_rules"]
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys)
        w.writeheader()
        for r in rows:
            w.writerow({**r, "pruner_rules": json.dumps(r["pruner_rules"], sort_keys=True)})


# --------------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--n", type=int, default=30, help="configurations per task × seed (default 30)")
    parser.add_argument(
        "--budget",
        action="append",
        default=[],
        metavar="TASK=N",
        help="shrink a task's budget (default: the objective config's), e.g. --budget char_lm=6",
    )
    parser.add_argument(
        "--override",
        action="append",
        default=[],
        metavar="TASK:KEY=VALUE",
        help="a Hydra override for one task's studies, e.g. char_lm:objective.fixed.steps_per_epoch=25",
    )
    parser.add_argument("--runs-dir", type=Path, default=HERE / "results" / "trust_runs")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "trust")
    parser.add_argument("--from-runs", action="store_true", help="only recompute tables from --runs-dir")
    parser.add_argument(
        "--tpe",
        action="store_true",
        help="run TPE studies driven by α and by held-out (records tpe_*.json in --runs-dir)",
    )
    parser.add_argument(
        "--grid",
        action="store_true",
        help="replay a grid of AlphaPruner settings on the runs in --runs-dir, write --out",
    )
    parser.add_argument("--notes", type=Path, default=None, help="a Markdown file put above the tables")
    for knob in PRUNER_KNOBS:
        parser.add_argument(
            f"--{knob.replace('_', '-')}",
            type=float,
            default=None,
            help="AlphaPruner argument for the replay (default: its default)",
        )
    args = parser.parse_args(argv)
    budgets = {}
    for item in args.budget:
        task, _, value = item.partition("=")
        if task not in TASKS or not value.isdigit():
            parser.error(f"--budget must be TASK=N with TASK in {list(TASKS)} but got {item!r}")
        budgets[task] = int(value)
    extra: dict[str, list[str]] = {}
    for item in args.override:
        task, _, override = item.partition(":")
        if task not in TASKS or "=" not in override:
            parser.error(f"--override must be TASK:KEY=VALUE with TASK in {list(TASKS)} but got {item!r}")
        extra.setdefault(task, []).append(override)
    knobs = {k: getattr(args, k) for k in PRUNER_KNOBS if getattr(args, k) is not None}

    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("wwtune").setLevel(logging.ERROR)
    args.runs_dir.mkdir(parents=True, exist_ok=True)
    command = "OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python benchmarks/bench_trust.py " + shlex.join(
        sys.argv[1:] if argv is None else list(argv)
    )
    if args.tpe:
        runs = []
        for task in args.tasks:
            for seed in args.seeds:
                for score in ("alpha", "heldout"):
                    path = args.runs_dir / f"tpe_{task}_s{seed}_{score}.json"
                    if not path.exists():
                        with tempfile.TemporaryDirectory() as tmp:
                            run = run_tpe(
                                task, seed, args.n, budgets.get(task), Path(tmp), score, extra.get(task, ())
                            )
                        path.write_text(json.dumps(run, separators=(",", ":")))
                        _logger.info("TPE %s seed %d on %s: %.0f s", task, seed, score, run["wall_s"])
                    runs.append(json.loads(path.read_text()))
        text = f"```\n{command}\n```\n\n" + tpe_table(runs)
        args.out.with_suffix(".md").write_text(text)
        print(text)
        return 0
    if args.grid:
        paths = [args.runs_dir / f"{t}_s{seed}.json" for t in args.tasks for seed in args.seeds]
        runs = [json.loads(p.read_text()) for p in paths if p.exists()]
        if not runs:
            parser.error(f"no run records for {args.tasks} × seeds {args.seeds} in {args.runs_dir}")
        args.out.with_suffix(".md").write_text(grid(runs, command))
        print(args.out.with_suffix(".md").read_text())
        return 0
    rows = []
    for task in args.tasks:
        for seed in args.seeds:
            path = args.runs_dir / f"{task}_s{seed}.json"
            if args.from_runs or path.exists():
                if not path.exists():
                    _logger.warning("no run record %s; skipped", path)
                    continue
                run = json.loads(path.read_text())
            else:
                with tempfile.TemporaryDirectory() as tmp:
                    run = run_one(task, seed, args.n, budgets.get(task), Path(tmp), extra=extra.get(task, ()))
                path.write_text(json.dumps(run, separators=(",", ":")))
                _logger.info("%s seed %d: %d trials in %.0f s", task, seed, args.n, run["wall_s"])
            rows.append(analyse(run, knobs))
            _logger.info(
                "%s",
                {
                    k: rows[-1][k]
                    for k in ("task", "seed", "spearman", "regret_alpha", "regret_random", "pruner_saved")
                },
            )
    if not rows:
        _logger.error("nothing to tabulate")
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    notes = args.notes.read_text() if args.notes else ""
    args.out.with_suffix(".md").write_text(markdown(rows, command, knobs, notes))
    write_csv(rows, args.out.with_suffix(".csv"))
    print(args.out.with_suffix(".md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
