"""Record random-search runs for the selector benchmark: bundled tasks, over-fitting scenarios, AdamW.

Each (run, seed) is ONE wwtune study with the random sampler (seeded), every configuration trained to the
end of its budget under a recording pruner (never prunes), exactly as ``benchmarks/bench_trust.py``
records the runs behind ``trust.md`` (its ``run_one``; same JSON format, so one reader serves both).
Per trial: params, state, α score, held-out metric, per-report training losses (``losses``), what the
task returned (``result``: ``loss_init``, the training loss before the first step, and ``loss_trivial``,
the best constant predictor's loss, on the bundled tasks), and per report step the layer table
(``records[i].layers``: alpha, num_evals, eligible, warning, lambda_max, log_norm …).

Calibration seeds (0–2, for choosing a score's weights/thresholds) go to ``--runs-dir``
(default ``benchmarks/results/trust_runs/``), fresh seeds (3–5: look at them only once the rule is
frozen) to ``--fresh-dir`` (default ``benchmarks/results/trust_runs_fresh/``). A record that exists is
never re-run, so the script can be stopped and restarted; each record is written atomically when its
study ends, and ``--list`` (a file) gets one line per record written.

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python benchmarks/record_runs.py \\
        --runs digits_noisy teacher_student_noisy char_lm_small digits_mlp_adamw --seeds 0 1 2 3 4 5 --n 30

``--time-one RUN`` trains one configuration of RUN (its search space's first random draw) and prints
the time, to bound a batch before starting it. Not part of CI.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_trust  # noqa: E402  (the benchmark's own recorder and reader)

#: Runs this script records: objective config, search-space config, score config, extra overrides, and
#: whether the study seed also fixes the training data (``objective.fixed.data_seed``).
RUNS: dict[str, dict[str, Any]] = {
    # the bundled tasks as the calibration runs in trust_runs/ were recorded (trust.md): digits_mlp with
    # the lr lower bound of that time (1e-3; the search space has since raised it to 3e-3)
    "digits_mlp": {
        "objective": "digits_mlp",
        "search_space": "digits_mlp",
        "score": "band",
        "overrides": ["search_space.params.lr.low=0.001"],
    },
    "digits_cnn": {"objective": "digits_cnn", "search_space": "digits_cnn", "score": "band"},
    "teacher_student": {"objective": "teacher_student", "search_space": "teacher_student", "score": "band"},
    "char_lm": {
        "objective": "char_lm",
        "search_space": "char_lm",
        "score": "transformer",
        "budget": 5,
        "overrides": ["objective.fixed.steps_per_epoch=15"],
    },
    # over-fitting scenarios (the training loss lies): noisy labels, little data, long training
    "digits_noisy": {
        "objective": "digits_noisy",
        "search_space": "digits_mlp",
        "score": "band",
        "data_seed": True,
    },
    "teacher_student_noisy": {
        "objective": "teacher_student_noisy",
        "search_space": "teacher_student",
        "score": "band",
        "data_seed": True,
    },
    "char_lm_small": {"objective": "char_lm_small", "search_space": "char_lm_small", "score": "transformer"},
    # AdamW variants
    "digits_mlp_adamw": {"objective": "digits_mlp", "search_space": "digits_mlp_adamw", "score": "band"},
    "digits_noisy_adamw": {
        "objective": "digits_noisy",
        "search_space": "digits_mlp_adamw",
        "score": "band",
        "data_seed": True,
    },
}
CALIBRATION_SEEDS = (0, 1, 2)

_logger = logging.getLogger("record_runs")


def quiet_single_thread() -> None:
    """What every recording process sets first: one torch thread, Optuna and wwtune logs quiet."""
    import optuna
    import torch

    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("wwtune").setLevel(logging.ERROR)


def overrides_for(run: str, seed: int) -> list[str]:
    spec = RUNS[run]
    data = [f"objective.fixed.data_seed={seed}"] if spec.get("data_seed") else []
    return [*spec.get("overrides", ()), *data]


def run_recorded(run: str, seed: int, n: int, workdir: Path) -> dict[str, Any]:
    """The study of ``run`` × ``seed`` with ``n`` configurations, in ``workdir`` (``bench_trust.run_one``)."""
    spec = RUNS[run]
    return bench_trust.run_one(
        run,
        seed,
        n,
        spec.get("budget"),
        workdir,
        overrides_for(run, seed),
        score=spec["score"],
        objective=spec["objective"],
        search_space=spec["search_space"],
    )


def record(run: str, seed: int, n: int, path: Path) -> dict[str, Any]:
    """Run the study of ``run`` × ``seed`` with ``n`` configurations and write its record to ``path``."""
    with tempfile.TemporaryDirectory() as tmp:
        rec = run_recorded(run, seed, n, Path(tmp))
    rec["calibration"] = seed in CALIBRATION_SEEDS
    tmp_path = path.with_suffix(".json.tmp")
    tmp_path.write_text(json.dumps(rec, separators=(",", ":")))
    os.replace(tmp_path, path)
    return rec


def time_one(run: str) -> float:
    spec = RUNS[run]
    with tempfile.TemporaryDirectory() as tmp:
        rec = bench_trust.run_one(
            run,
            0,
            1,
            spec.get("budget"),
            Path(tmp),
            overrides_for(run, 0),
            score=spec["score"],
            objective=spec["objective"],
            search_space=spec["search_space"],
        )
    t = rec["trials"][0]
    print(
        f"{run}: one trial {rec['wall_s']:.1f} s (train {t['time_train_s']:.1f} s, analysis "
        f"{t['time_analysis_s']:.1f} s); state {t['state']}; held-out {t['heldout']}; "
        f"losses {[round(x[1], 3) for x in t['losses']]}; result {t['result']}"
    )
    return float(rec["wall_s"])


def backfill(path: Path) -> int:
    """Add ``result.loss_init`` / ``result.loss_trivial`` to the trials of a record made before the tasks
    returned them (the calibration runs behind trust.md), without training: each trial's task is run
    with its training loop replaced by the loss-before-training measurement (the model is built from the
    trial's seed, study seed + trial number, as the study built it). Marked ``"backfilled": true``.
    Returns the number of trials filled."""
    from importlib import import_module
    from unittest import mock

    from wwtune.objective import NullReporter, Params
    from wwtune.objectives import _common, char_lm, teacher_student

    rec = json.loads(path.read_text())
    spec = RUNS[rec["task"]]
    with tempfile.TemporaryDirectory() as tmp:
        cfg = bench_trust.study_config(
            rec["task"],
            rec["seed"],
            1,
            rec["budget"],
            Path(tmp),
            rec.get("overrides", []),
            sampler="random",
            name="backfill",
            score=spec["score"],
            objective=spec["objective"],
            search_space=spec["search_space"],
        )
    obj = cfg["objective"]
    task_path, _, fn_name = obj["task"].partition(":")
    task = getattr(import_module(task_path), fn_name)

    def no_training(model, x, y, params, hp, reporter, loss_fn=None):
        return _common.initial_loss(model, x, y)

    filled = 0
    for t in rec["trials"]:
        if (t.get("result") or {}).get("loss_init") is not None:
            continue
        values = {**(obj.get("fixed") or {}), **{k: v for k, v in t["params"].items() if "/" not in k}}
        params = Params(
            values=values,
            budget=1,
            seed=int(rec["seed"]) + int(t["number"]),
            data_fraction=obj["data_fraction"],
        )
        if task is char_lm.train:  # loss_init is measured before the first step: one step suffices
            params.values["steps_per_epoch"] = 1
            out = task(params, NullReporter())
        else:
            with (
                mock.patch.object(_common, "fit_epochs", no_training),
                mock.patch.object(teacher_student, "fit_epochs", no_training),
            ):
                out = task(params, NullReporter())
        t["result"] = {
            **(t.get("result") or {}),
            "n_train": out["n_train"],
            "loss_init": out["loss_init"],
            "loss_trivial": out["loss_trivial"],
            "backfilled": True,
        }
        filled += 1
    tmp_path = path.with_suffix(".json.tmp")
    tmp_path.write_text(json.dumps(rec, separators=(",", ":")))
    os.replace(tmp_path, path)
    return filled


def summary(runs_dir: Path, fresh_dir: Path, command: str, notes: str = "") -> str:
    """Markdown: every record in the two folders (trials, failures, time); on calibration seeds only, the
    evidence of whether the training loss lies (its rank correlation with the held-out metric, the regret
    of the lowest-final-training-loss pick vs a random pick's). Fresh seeds: counts and times only."""
    import numpy as np
    from scipy.stats import spearmanr

    out = [
        "# Recorded random-search runs (selector benchmark, issue 11)",
        "",
        "```",
        command,
        "```",
        "",
        (__doc__ or "").split("\n\n")[1],
        "",
        notes,
        "",
        "| run | seed | kind | trials (complete/failed) | wall | Spearman(final train loss, held-out) "
        "| held-out: best | lowest-train-loss pick | random mean | regret: train-loss pick "
        "| regret: random |",
        "|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    paths = sorted(runs_dir.glob("*_s[0-9].json")) + sorted(fresh_dir.glob("*_s[0-9].json"))
    for path in paths:
        if path.name.startswith("tpe_"):
            continue
        rec = json.loads(path.read_text())
        trials = rec["trials"]
        fresh = rec["seed"] not in CALIBRATION_SEEDS
        done = [t for t in trials if t["state"] == "COMPLETE" and bench_trust._finite(t["heldout"])]
        failed = sum(t["state"] == "FAIL" for t in trials)
        head = (
            f"| {rec['task']} | {rec['seed']} | {'FRESH' if fresh else 'calibration'} "
            f"| {len(trials)} ({len(done)}/{failed}) | {rec['wall_s']:.0f} s "
        )
        if fresh or len(done) < 3:
            out.append(head + "| — | — | — | — | — | — |")
            continue
        sign = 1.0 if rec["heldout"]["direction"] == "maximize" else -1.0
        final = [t["losses"][-1][1] for t in done]
        held = [t["heldout"] for t in done]
        rho = spearmanr(final, [-sign * h for h in held])[0]  # +1: lower training loss, better held-out
        best = max(held, key=lambda h: sign * h)
        pick = held[int(np.argmin(final))]
        mean = float(np.mean(held))
        out.append(
            head + f"| {rho:+.2f} | {best:.3f} | {pick:.3f} | {mean:.3f} "
            f"| {max(0.0, sign * (best - pick)):.3f} | {max(0.0, sign * (best - mean)):.3f} |"
        )
    out += [
        "",
        "Spearman is oriented: +1 = a lower final training loss goes with a better held-out metric "
        "(the training loss is honest), ≤ 0 = it is not. Regret = held-out gap to the best trial of "
        "the same study (≥ 0). Wall = the study's wall-clock time on 2 CPU cores shared with other work, "
        "one thread per process (OMP_NUM_THREADS=1).",
        "",
    ]
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--runs", nargs="+", choices=sorted(RUNS), default=[])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4, 5])
    parser.add_argument("--n", type=int, default=30, help="configurations per run × seed (default 30)")
    parser.add_argument("--runs-dir", type=Path, default=HERE / "results" / "trust_runs")
    parser.add_argument("--fresh-dir", type=Path, default=HERE / "results" / "trust_runs_fresh")
    parser.add_argument("--list", type=Path, default=None, help="append one line per record written")
    parser.add_argument("--time-one", choices=sorted(RUNS), default=None)
    parser.add_argument(
        "--summary",
        type=Path,
        default=None,
        metavar="MD",
        help="write the table of every record in --runs-dir and --fresh-dir to MD",
    )
    parser.add_argument("--notes", type=Path, default=None, help="Markdown put above the --summary table")
    parser.add_argument(
        "--backfill",
        nargs="+",
        type=Path,
        default=[],
        metavar="RECORD",
        help="add loss_init/loss_trivial to older records (no training)",
    )
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error(f"--n must be a positive integer but got {args.n}")
    args.runs_dir, args.fresh_dir = args.runs_dir.resolve(), args.fresh_dir.resolve()  # a relative folder

    quiet_single_thread()
    if args.time_one:
        time_one(args.time_one)
        return 0
    if args.summary:
        command = "OMP_NUM_THREADS=1 python benchmarks/record_runs.py " + shlex.join(
            sys.argv[1:] if argv is None else list(argv)
        )
        notes = args.notes.read_text() if args.notes else ""
        args.summary.write_text(summary(args.runs_dir, args.fresh_dir, command, notes))
        print(args.summary.read_text())
        return 0
    if args.backfill:
        for path in args.backfill:
            _logger.info("%s: %d trials backfilled", path, backfill(path))
        return 0
    if not args.runs:
        parser.error("name --runs (or --time-one)")
    for seed in args.seeds:  # seeds outermost: calibration seeds of every run land first
        for run in args.runs:
            folder = args.runs_dir if seed in CALIBRATION_SEEDS else args.fresh_dir
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{run}_s{seed}.json"
            if path.exists():
                _logger.info("%s exists; kept", path)
                continue
            start = time.perf_counter()
            rec = record(run, seed, args.n, path)
            failed = sum(t["state"] == "FAIL" for t in rec["trials"])
            _logger.info(
                "%s seed %d: %d trials (%d failed) in %.0f s -> %s",
                run,
                seed,
                args.n,
                failed,
                time.perf_counter() - start,
                path,
            )
            if args.list:
                with args.list.open("a") as fh:
                    kind = "calibration" if rec["calibration"] else "FRESH"
                    fh.write(
                        f"{path.relative_to(HERE.parent)}  ({kind}, {args.n} trials, {rec['wall_s']:.0f} s)\n"
                    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
