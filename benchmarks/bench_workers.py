"""Trials per minute with 1, 2 and 4 workers, journal vs PostgreSQL, and the storage overhead per trial.

Run from the repository root (writes benchmarks/results/workers.md):

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/bench_workers.py

Part 1 runs the real command, ``python -m wwtune`` with the bundled ``digits_mlp`` task (a few epochs, one
analysis per trial, random sampler), as 1, 2 and 4 worker processes sharing one study, against the journal
file and a throw-away PostgreSQL server (tests/pg_cluster.py). Throughput is measured from the trials'
own timestamps (first start to last completion), so interpreter start-up is excluded; the wall time of the
whole run is listed beside it. Speed-up is the ratio to the 1-worker run of the same storage in the same
invocation. Median over ``--repeats``.

Part 2 isolates the storage: a plain Optuna loop whose objective only does what a wwtune trial does to its
storage (sample 6 parameters, report ``budget`` intermediate values, write the per-layer table and the
other ``wwtune.*`` attributes), timed per trial against Optuna's in-memory storage in the same run.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import optuna

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from pg_cluster import PgCluster  # noqa: E402

from wwtune.postgres import postgres_storage  # noqa: E402
from wwtune.workers import counted_trials  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "workers.md"
THREAD_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def run_workers(storage: str, n_workers: int, n_trials: int, budget: int, pg: PgCluster | None) -> dict:
    """Start ``n_workers`` copies of the same command on a fresh study; return its measurements."""
    project = Path(tempfile.mkdtemp(prefix="wwtune-bench-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WWTUNE_", "SLURM_"))}
    env.update(THREAD_ENV)
    args = [
        sys.executable,
        "-m",
        "wwtune",
        "objective=digits_mlp",
        "search_space=digits_mlp",
        "sampler=random",
        "pruner=none",
        "study.name=bench",
        f"study.n_trials={n_trials}",
        "study.progress_bar=false",
        f"objective.budget={budget}",
        f"objective.report_every={budget}",
        "study.studies_dir=studies",
    ]
    if storage == "postgres":
        assert pg is not None
        env["WWTUNE_STORAGE_URL"] = url = pg.create_database()
        args.append("storage=postgres")
    start = time.perf_counter()
    procs = [
        subprocess.Popen(
            args,
            cwd=project,
            env={**env, "WWTUNE_WORKER_ID": str(w)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(n_workers)
    ]
    errors = [p.communicate()[1] for p in procs]
    wall = time.perf_counter() - start
    if any(p.returncode for p in procs):
        raise RuntimeError(f"a worker failed: {[e[-2000:] for e in errors]}")
    if storage == "postgres":
        study = optuna.load_study(
            study_name="bench", storage=postgres_storage(url, heartbeat_interval=None, grace_period=None)
        )
    else:
        backend = optuna.storages.journal.JournalFileBackend(
            str(project / "studies" / "bench" / "journal.log")
        )
        study = optuna.load_study(study_name="bench", storage=optuna.storages.journal.JournalStorage(backend))
    trials = [t for t in study.get_trials() if t.datetime_complete is not None]
    shutil.rmtree(project, ignore_errors=True)
    return {"wall": wall, **trial_metrics(trials)}


def trial_metrics(trials: list[optuna.trial.FrozenTrial]) -> dict:
    """Throughput from the trials' timestamps and the per-trial time spent outside task and analysis."""
    first = min(t.datetime_start for t in trials)
    last = max(t.datetime_complete for t in trials)
    span = (last - first).total_seconds()
    inside, gaps = [], []
    by_worker: dict[int, list[optuna.trial.FrozenTrial]] = defaultdict(list)
    for t in trials:
        busy = t.user_attrs.get("wwtune.time_train_s", 0.0) + t.user_attrs.get("wwtune.time_analysis_s", 0.0)
        inside.append((t.datetime_complete - t.datetime_start).total_seconds() - busy)
        by_worker[t.user_attrs["wwtune.worker"]["pid"]].append(t)
    rates = []  # each worker's own rate over its own active window (excludes the others' start-up)
    for own in by_worker.values():
        own.sort(key=lambda t: t.datetime_start)
        gaps += [
            (b.datetime_start - a.datetime_complete).total_seconds()
            for a, b in zip(own, own[1:], strict=False)
        ]
        window = (own[-1].datetime_complete - own[0].datetime_start).total_seconds()
        rates.append(60.0 * len(own) / window)
    counted = counted_trials(trials)
    return {
        "trials": counted,
        "span": span,
        "tpm": 60.0 * counted / span,
        "tpm_active": sum(rates),
        "train_s": statistics.median(t.user_attrs.get("wwtune.time_train_s", 0.0) for t in trials),
        # wwtune + Optuna work around one trial: inside it (sampling, reports, attributes) and between two
        # trials of the same worker (callbacks, stale-trial check, creating the next trial)
        "overhead_ms": 1e3 * (statistics.median(inside) + (statistics.median(gaps) if gaps else 0.0)),
    }


# --- the machine's own parallel speed-up at the time of the run ----------------------------------------

_SPIN = "import time\nt = time.perf_counter()\nx = 0\nfor i in range({n}):\n    x += i * i\n"


def cpu_reference(n_procs: int, loops: int = 20_000_000) -> float:
    """Loop iterations per second of ``n_procs`` copies of a fixed pure-Python loop run at once: what the
    shared cores give to N single-threaded processes right now, with no storage and no start-up cost."""
    start = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-c", _SPIN.format(n=loops)]) for _ in range(n_procs)]
    for p in procs:
        p.wait()
    return n_procs * loops / (time.perf_counter() - start)


# --- part 2: the storage alone ----------------------------------------------------------------------


def _layers_record(n_layers: int, step: int) -> dict:
    names = [f"fc{i}" for i in range(1, n_layers + 1)]
    return {
        "step": step,
        "name": names,
        "alpha": [2.1] * n_layers,
        "num_evals": [256] * n_layers,
        "eligible": [True] * n_layers,
        "warning": [""] * n_layers,
        "status": ["success"] * n_layers,
        "lambda_max": [12.5] * n_layers,
        "log_norm": [1.3] * n_layers,
        "rank_loss": [0] * n_layers,
        "num_traps": [None] * n_layers,
    }


def storage_only(storage: optuna.storages.BaseStorage | None, n_trials: int, budget: int) -> float:
    """Milliseconds per trial of a study whose objective only talks to its storage, as wwtune's does."""

    def objective(trial: optuna.Trial) -> float:
        for name in ("lr", "weight_decay", "momentum", "dropout", "fc1/lr_mult", "fc2/lr_mult"):
            trial.suggest_float(name, 0.1, 1.0)
        trial.set_user_attr("wwtune.budget", budget)
        trial.set_user_attr("wwtune.worker", {"host": "h", "pid": 1, "worker_id": 0})
        for step in range(1, budget + 1):
            trial.set_user_attr("wwtune.layers", _layers_record(3, step))
            trial.report(0.5, step)
        trial.set_user_attr("wwtune.losses", [[s, 1.0 / s] for s in range(1, budget + 1)])
        for key in ("wwtune.time_train_s", "wwtune.time_analysis_s", "wwtune.score", "wwtune.heldout"):
            trial.set_user_attr(key, 0.5)
        return 0.5

    study = optuna.create_study(storage=storage, sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(objective, n_trials=2)  # warm-up: tables, connections
    start = time.perf_counter()
    study.optimize(objective, n_trials=n_trials)
    return 1e3 * (time.perf_counter() - start) / n_trials


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=24, help="study-wide trials per run (default 24)")
    parser.add_argument("--budget", type=int, default=10, help="digits_mlp epochs per trial (default 10)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--storage-trials", type=int, default=100, help="trials per part-2 measurement")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    os.environ.update(THREAD_ENV)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    load_before = os.getloadavg()

    rows: dict[tuple[str, int], list[dict]] = defaultdict(list)
    reference: dict[int, list[float]] = defaultdict(list)
    storage_rows: dict[str, list[float]] = defaultdict(list)
    with PgCluster.start() as pg:
        for rep in range(args.repeats):
            for n in args.workers:
                reference[n].append(cpu_reference(n))
            for storage in ("journal", "postgres"):
                for n in args.workers:
                    result = run_workers(storage, n, args.trials, args.budget, pg)
                    rows[(storage, n)].append(result)
                    print(
                        f"[{rep + 1}/{args.repeats}] {storage:8s} {n} workers: "
                        f"{result['tpm']:6.1f} trials/min "
                        f"(wall {result['wall']:.1f}s, overhead {result['overhead_ms']:.0f} ms/trial)",
                        flush=True,
                    )
            with tempfile.TemporaryDirectory() as tmp:
                journal = optuna.storages.journal.JournalStorage(
                    optuna.storages.journal.JournalFileBackend(str(Path(tmp) / "j.log"))
                )
                for name, storage in (
                    ("in-memory (baseline)", None),
                    ("journal file", journal),
                    (
                        "PostgreSQL (127.0.0.1)",
                        postgres_storage(pg.create_database(), heartbeat_interval=None, grace_period=None),
                    ),
                ):
                    storage_rows[name].append(storage_only(storage, args.storage_trials, args.budget))
    load_after = os.getloadavg()

    ref = {n: statistics.median(values) for n, values in reference.items()}
    med = {key: {m: statistics.median(r[m] for r in runs) for m in runs[0]} for key, runs in rows.items()}
    lines = [
        "# Many workers, one study: throughput and storage overhead",
        "",
        "Command (repository root):",
        "",
        "    "
        + " ".join(
            [
                "OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1",
                ".venv/bin/python",
                "benchmarks/bench_workers.py",
                *(argv if argv is not None else sys.argv[1:]),
            ]
        ),
        "",
        f"Machine: {platform.platform()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}, "
        f"Optuna {optuna.__version__}; load average before {load_before[0]:.2f}, after {load_after[0]:.2f} "
        "(the cores are shared with other jobs).",
        f"Task: bundled digits_mlp, {args.budget} epochs, one analysis per trial, random sampler; "
        f"{args.trials} study-wide trials per run; median of {args.repeats} repeats.",
        "",
        "## Part 0: what the shared cores gave N processes during this run",
        "",
        "N copies of a fixed single-threaded pure-Python loop started together (no wwtune, no storage); "
        "speed-up = their combined rate / one copy's rate, measured in every repeat beside part 1.",
        "",
        "| processes | speed-up |",
        "|---:|---:|",
        *(f"| {n} | {ref[n] / ref[min(args.workers)]:.2f}× |" for n in args.workers),
        "",
        "## Part 1: the real command, N worker processes",
        "",
        "| storage | workers | trials/min | speed-up | trials/min, own windows | speed-up | "
        "wall s (incl. start-up) | trials | train s/trial | overhead ms/trial |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for (storage, n), m in sorted(med.items()):
        base = med[(storage, min(args.workers))]["tpm"]
        base_active = med[(storage, min(args.workers))]["tpm_active"]
        lines.append(
            f"| {storage} | {n} | {m['tpm']:.1f} | {m['tpm'] / base:.2f}× | {m['tpm_active']:.1f} | "
            f"{m['tpm_active'] / base_active:.2f}× | {m['wall']:.1f} | {m['trials']:.0f} | "
            f"{m['train_s']:.3f} | {m['overhead_ms']:.0f} |"
        )
    lines += [
        "",
        "trials/min: counted trials / (last completion − first start) × 60, so one worker's start-up may "
        "overlap another's trials. trials/min, own windows: the sum over workers of each worker's trials / "
        "(its last completion − its first start) × 60. Speed-ups are against 1 worker of the same storage "
        "in this run. overhead ms/trial: median time "
        "of a trial outside the task's training and the spectral analysis (sampling, reports, attribute "
        "writes) plus the median gap between two trials of the same worker (callbacks, stale-trial check, "
        "creating the next trial).",
        "",
        "## Part 2: the storage alone (ms per trial, same writes as a wwtune trial)",
        "",
        "| storage | ms/trial | × in-memory |",
        "|---|---:|---:|",
    ]
    base = statistics.median(storage_rows["in-memory (baseline)"])
    for name, values in storage_rows.items():
        ms = statistics.median(values)
        lines.append(f"| {name} | {ms:.1f} | {ms / base:.1f}× |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
