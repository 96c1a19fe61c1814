"""Analysis overhead of a quickstart trial: wwtune's spectral analysis vs the training it watches.

For a few quickstart parameter sets (the first trials the seeded TPE sampler proposes), each repeat runs,
interleaved so machine-load drift hits both alike:

* **bare**: the task with a ``NullReporter`` (training only, no study, no analysis);
* **wwtune**: the same parameters as a real trial (enqueued into a journal-storage study, analysed every
  ``objective.report_every`` epochs, per-layer table and intermediate scores written to storage).

Reported per ``report_every``: the median over parameter sets of the median over repeats of
``wwtune wall / bare wall`` (the baseline is measured in the same run) and of the trial's own timer
split ``time_analysis_s / (time_train_s + time_analysis_s)``.

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 \
        python benchmarks/bench_overhead.py --out benchmarks/results/overhead.md
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from datetime import datetime, timezone  # noqa: E402

import optuna  # noqa: E402
import torch  # noqa: E402
from optuna.storages.journal import JournalFileBackend, JournalStorage  # noqa: E402

from wwtune.cli import compose  # noqa: E402
from wwtune.config import load_task  # noqa: E402
from wwtune.factories import make_score  # noqa: E402
from wwtune.objective import NullReporter, Params  # noqa: E402
from wwtune.search_space import SearchSpace  # noqa: E402
from wwtune.trial import TrialRunner  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=int, default=4, help="parameter sets (default 4)")
    parser.add_argument("--repeat", type=int, default=3, help="repeats per parameter set (default 3)")
    parser.add_argument("--report-every", type=int, nargs="+", default=[10, 5, 1])
    parser.add_argument("--out", default=None, help="markdown file for the results table")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    base = compose(["study=quickstart"])
    space = SearchSpace.from_config(base["search_space"])
    sampler = optuna.samplers.TPESampler(seed=base["study"]["seed"])
    proposer = optuna.create_study(sampler=sampler)
    param_sets = []
    for _ in range(args.params):
        trial = proposer.ask()
        space.suggest(trial)
        param_sets.append(dict(trial.params))
        proposer.tell(trial, 0.0)
    task_fn = load_task(base["objective"]["task"])
    fixed = dict(base["objective"].get("fixed") or {})
    budget = int(base["objective"]["budget"])

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for every in args.report_every:
            cfg = compose(["study=quickstart", f"objective.report_every={every}", f"study.studies_dir={tmp}"])
            score = make_score(cfg["score"], cfg["objective"])
            ratios, shares = [], []
            for k, flat in enumerate(param_sets):
                values, layers = space.split(flat)
                r_k, s_k = [], []
                for rep in range(args.repeat):
                    params = Params(values={**fixed, **values}, layers=layers, budget=budget, seed=k)
                    start = time.perf_counter()
                    task_fn(params, NullReporter())
                    bare = time.perf_counter() - start

                    name = f"e{every}_p{k}_r{rep}"
                    storage = JournalStorage(JournalFileBackend(os.path.join(tmp, name + ".log")))
                    study = optuna.create_study(storage=storage, study_name=name)
                    study.enqueue_trial(flat)
                    runner = TrialRunner(cfg, task_fn, space, score)
                    runner.seed = k  # trial number 0 trains with seed k, as the bare run
                    start = time.perf_counter()
                    study.optimize(runner, n_trials=1)
                    full = time.perf_counter() - start
                    t = study.trials[0]
                    train_s, analysis_s = (
                        t.user_attrs["wwtune.time_train_s"],
                        t.user_attrs["wwtune.time_analysis_s"],
                    )
                    r_k.append(full / bare)
                    s_k.append(analysis_s / (train_s + analysis_s))
                ratios.append(statistics.median(r_k))
                shares.append(statistics.median(s_k))
            rows.append(
                (
                    every,
                    len(param_sets),
                    args.repeat,
                    statistics.median(ratios),
                    statistics.median(shares),
                    max(shares),
                )
            )

    command = "OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python benchmarks/bench_overhead.py " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    load = os.getloadavg() if hasattr(os, "getloadavg") else ("?",)
    lines = [
        "# Analysis overhead of a quickstart trial",
        "",
        f"Command: `{command.strip()}`",
        f"Date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC}; {platform.platform()}; "
        f"{os.cpu_count()} CPUs; load average at the end {tuple(round(x, 1) for x in load)}; "
        f"torch {torch.__version__}, 1 thread.",
        f"Task: {base['objective']['task']}, budget {budget} epochs; parameter sets: the first "
        f"{len(param_sets)} seeded TPE proposals of the quickstart search space.",
        "",
        "| report_every | param sets | repeats | wwtune trial / bare training (median) "
        "| analysis share of trial (median) | analysis share (worst set) |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for every, n, rep, ratio, share, worst in rows:
        lines.append(f"| {every} | {n} | {rep} | {ratio:.3f} | {share:.1%} | {worst:.1%} |")
    lines += [
        "",
        "`analysis share` = the trial's own timers: time in the reporter's analysis (weight check, "
        "`wwtune.analyze`, score, storage writes of the layer table and intermediate score) over "
        "training + analysis. `wwtune trial / bare` includes everything else a trial adds (sampling, "
        "storage of params and attributes). The quickstart study uses report_every = 10.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
