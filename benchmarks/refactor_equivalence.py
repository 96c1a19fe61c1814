"""Does a change keep the quickstart's trials? Run the seeded quickstart, dump what it stored, compare.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/refactor_equivalence.py run /tmp/eq_new new.json
    .venv/bin/python benchmarks/refactor_equivalence.py compare base.json new.json

``run`` executes ``python -m wwtune study=quickstart study.studies_dir=<dir>`` (the README's first
command, seeded: study.seed=0, one torch thread) and writes ``<out>.json``: ``best_params.yaml`` and, per
trial, its number, state, value, params and every stored ``wwtune.*`` attr except the wall-clock ones
(``time_train_s``, ``time_analysis_s``) and the worker's host/pid, and the printed summary (without its
timing line). ``compare`` exits 1 on any difference
and prints the first few.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import optuna
import yaml

#: attrs that differ from run to run by design (timings, the process that ran the trial)
VOLATILE = ("wwtune.time_train_s", "wwtune.time_analysis_s", "wwtune.worker")


def dump(studies_dir: Path) -> dict[str, Any]:
    folder = studies_dir / "quickstart"
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str((folder / "journal.log").absolute()))
    )
    study = optuna.load_study(study_name="quickstart", storage=storage)
    trials = []
    for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        trials.append(
            {
                "number": t.number,
                "state": t.state.name,
                "value": t.value,
                "params": t.params,
                "intermediate": {str(k): v for k, v in sorted(t.intermediate_values.items())},
                "attrs": {k: v for k, v in sorted(t.user_attrs.items()) if k not in VOLATILE},
            }
        )
    best = yaml.safe_load((folder / "best_params.yaml").read_text())
    best.pop("score_rule", None)  # wording of the rule, not its result: compared separately below
    return {
        "best_params": best,
        "score_rule": yaml.safe_load((folder / "best_params.yaml").read_text()).get("score_rule"),
        "trials": trials,
    }


def summary_lines(stdout: str, studies_dir: Path) -> list[str]:
    """The printed summary without its wall-clock line and the log lines (timestamped), the studies
    folder written as <studies_dir>."""
    return [
        line.replace(str(studies_dir), "<studies_dir>")
        for line in stdout.splitlines()
        if line.strip() and not line.startswith(("Time: ", "["))
    ]


def run(studies_dir: Path, out: Path) -> None:
    cmd = [
        sys.executable,
        "-m",
        "wwtune",
        "study=quickstart",
        f"study.studies_dir={studies_dir}",
        "study.progress_bar=false",
    ]
    done = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True)
    print(done.stdout)
    record = dump(studies_dir)
    record["summary"] = summary_lines(done.stdout, studies_dir)
    out.write_text(json.dumps(record, indent=1, sort_keys=True))
    print(f"wrote {out}")


def diff(a: Any, b: Any, where: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = [f"{where}: key {k!r} only in one" for k in sorted(set(a) ^ set(b))]
        for k in sorted(set(a) & set(b)):
            out += diff(a[k], b[k], f"{where}.{k}")
        return out
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{where}: {len(a)} vs {len(b)} items"]
        return [
            line for i, (x, y) in enumerate(zip(a, b, strict=True)) for line in diff(x, y, f"{where}[{i}]")
        ]
    return [] if a == b else [f"{where}: {a!r} != {b!r}"]


def compare(base: Path, new: Path) -> int:
    a, b = json.loads(base.read_text()), json.loads(new.read_text())
    problems = diff(a, b)
    n = len(a["trials"])
    states = {s: sum(t["state"] == s for t in a["trials"]) for s in ("COMPLETE", "PRUNED", "FAIL")}
    print(
        f"{n} trials in the baseline ({states}); best trial #{a['best_params']['trial']} score "
        f"{a['best_params']['score']!r}"
    )
    if problems:
        print(f"{len(problems)} difference(s); first ones:")
        print("\n".join(problems[:20]))
        return 1
    print(
        "identical: same trials (states, values, params, intermediate values, stored attrs) and the "
        "same best_params.yaml"
    )
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "run":
        run(Path(sys.argv[2]), Path(sys.argv[3]))
    elif len(sys.argv) == 4 and sys.argv[1] == "compare":
        sys.exit(compare(Path(sys.argv[2]), Path(sys.argv[3])))
    else:
        sys.exit(__doc__)
