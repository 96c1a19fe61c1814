"""Real TPE studies per task: which score drives the search to the best held-out model?

For each run (a bundled task or scenario of ``benchmarks/record_runs.py``) × seed × score, ONE wwtune
study with the TPE sampler (seeded) and the task's config, driven by that score (a ``conf/score`` name;
``alpha`` means the task's α-band score of ``record_runs.RUNS``: ``band``, ``transformer`` for the
character LMs). Kept per study: every trial's params, state, value, α score, held-out metric, losses and
task result, and the held-out metric of the trial the study returns (wwtune's ``best_trial``). The table
gives, per run, the mean over seeds of the returned trial's held-out metric for each score, and each
score's gap to the study driven by ``heldout`` (the oracle a validation set gives).

Issue 11's point 4 compares the default score with ``score=heldout`` and a training-loss-only score:

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python benchmarks/bench_tpe.py \\
        --runs digits_mlp digits_cnn teacher_student digits_noisy teacher_student_noisy char_lm_small \\
        --seeds 0 1 2 --n 30 --scores <default score> heldout train_loss

A study whose record exists is not re-run (stop and restart freely); records are written atomically.
Cost: one study costs about ``--n`` × the run's trial time (``record_runs.py --time-one RUN``). Not CI.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_trust  # noqa: E402
import record_runs  # noqa: E402

_logger = logging.getLogger("bench_tpe")


def run_study_record(run: str, seed: int, n: int, score: str, workdir: Path) -> dict[str, Any]:
    """One TPE study of ``run`` × ``seed`` driven by ``score``; its JSON-serialisable record."""
    from wwtune.study import best_trial, run_study

    spec = record_runs.RUNS[run]
    conf_score = spec["score"] if score == "alpha" else score
    cfg = bench_trust.study_config(
        run,
        seed,
        n,
        spec.get("budget"),
        workdir,
        record_runs.overrides_for(run, seed),
        sampler="tpe",
        name=f"{run}_s{seed}_tpe_{score}",
        score=conf_score,
        objective=spec["objective"],
        search_space=spec["search_space"],
    )
    start = time.perf_counter()
    study = run_study(cfg)
    best = best_trial(study)
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
                "losses": ua.get("wwtune.losses"),
                "result": ua.get("wwtune.result"),
                "fail_reason": ua.get("wwtune.fail_reason"),
            }
        )
    return {
        "task": run,
        "seed": seed,
        "driven_by": score,
        "score": cfg["score"],
        "n": n,
        "objective": spec["objective"],
        "search_space": spec["search_space"],
        "budget": cfg["objective"]["budget"],
        "overrides": record_runs.overrides_for(run, seed),
        "sampler": "tpe",
        "heldout": cfg["objective"]["heldout"],
        "wall_s": time.perf_counter() - start,
        "calibration": seed in record_runs.CALIBRATION_SEEDS,
        "returned_number": None if best is None else best.number,
        "returned_heldout": None if best is None else best.user_attrs.get("wwtune.heldout"),
        "trials": trials,
    }


def table(records: Sequence[Mapping[str, Any]], scores: Sequence[str], command: str) -> str:
    """Markdown: per run, mean held-out of the returned trial per driving score, and gap to heldout."""
    out = [
        "# TPE studies: held-out metric of the trial each study returns, by driving score",
        "",
        "```",
        command,
        "```",
        "",
        "Mean over seeds (number of seeds in brackets) of the returned trial's held-out metric; "
        "gap = that minus the held-out-driven study's, oriented so positive is worse. "
        "Calibration and fresh seeds apart.",
        "",
    ]
    for kind, cal in (("calibration seeds", True), ("fresh seeds", False)):
        rows = [r for r in records if bool(r.get("calibration")) == cal]
        if not rows:
            continue
        out += [
            f"## {kind}",
            "",
            "| run | " + " | ".join(f"{s}: returned | gap" for s in scores) + " |",
            "|---|" + "---:|---:|" * len(scores),
        ]
        for run in dict.fromkeys(r["task"] for r in rows):
            cells = []
            by = {(r["driven_by"], r["seed"]): r for r in rows if r["task"] == run}
            for s in scores:
                vals = [
                    r["returned_heldout"] for (d, _), r in by.items() if d == s and _ok(r["returned_heldout"])
                ]
                gaps = []
                for (d, seed), r in by.items():
                    h = by.get(("heldout", seed))
                    if d == s and h and _ok(r["returned_heldout"]) and _ok(h["returned_heldout"]):
                        sign = 1.0 if r["heldout"]["direction"] == "maximize" else -1.0
                        gaps.append(sign * (h["returned_heldout"] - r["returned_heldout"]))
                mean = f"{statistics.mean(vals):.3f} ({len(vals)})" if vals else "n/a"
                cells.append(f"{mean} | {statistics.mean(gaps):+.3f}" if gaps else f"{mean} | n/a")
            out.append(f"| {run} | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


def _ok(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--runs", nargs="+", choices=sorted(record_runs.RUNS), required=True)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--n", type=int, default=30, help="trials per study (default 30)")
    parser.add_argument(
        "--scores",
        nargs="+",
        default=["alpha", "heldout"],
        help="conf/score names driving the studies; 'alpha' = the run's α-band score",
    )
    parser.add_argument("--runs-dir", type=Path, default=HERE / "results" / "tpe_runs")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "tpe.md")
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error(f"--n must be a positive integer but got {args.n}")
    known = {p.stem for p in (HERE.parent / "conf" / "score").glob("*.yaml")} | {"alpha"}
    bad = [s for s in args.scores if s not in known]
    if bad:
        parser.error(f"--scores {bad} not in conf/score; known: {sorted(known)}")

    record_runs.quiet_single_thread()
    args.runs_dir.mkdir(parents=True, exist_ok=True)
    command = "OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python benchmarks/bench_tpe.py " + shlex.join(
        sys.argv[1:] if argv is None else list(argv)
    )
    records = []
    for seed in args.seeds:
        for run in args.runs:
            for score in args.scores:
                path = args.runs_dir / f"{run}_s{seed}_{score}.json"
                if not path.exists():
                    with tempfile.TemporaryDirectory() as tmp:
                        rec = run_study_record(run, seed, args.n, score, Path(tmp))
                    tmp_path = path.with_suffix(".json.tmp")
                    tmp_path.write_text(json.dumps(rec, separators=(",", ":")))
                    os.replace(tmp_path, path)
                    _logger.info(
                        "%s seed %d driven by %s: %.0f s, returned held-out %s",
                        run,
                        seed,
                        score,
                        rec["wall_s"],
                        rec["returned_heldout"],
                    )
                records.append(json.loads(path.read_text()))
    text = table(records, args.scores, command)
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
