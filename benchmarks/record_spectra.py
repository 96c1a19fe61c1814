"""Re-record random-search runs keeping every trial's final eigenvalues (for fits the JSON records lack).

The recorded runs of ``record_runs.py`` keep per-layer α but no eigenvalues, so a different fit of the same
spectra (issue 11: the truncated power law / exponential fit for transformer layers with α > 4) cannot be
tried on them. This script runs the same study again (``bench_trust.run_one``: the seeded random sampler
proposes the same configurations, each trial is seeded by study seed + trial number) in a kept folder and
stores, per (run, seed), one compressed ``.npz`` under ``benchmarks/results/spectra_runs/``:

* ``trials``: JSON, per trial its number, state, held-out metric, final training loss, α score;
* ``t<N>_evals_<i>``: trial N's layer i eigenvalues (float32), with ``t<N>_rows`` (JSON: the layer's name,
  α, xmin, num_evals … as the study's analysis stored them).

It also checks that the re-run reproduces the recorded run (held-out metric per trial, from the record
in ``trust_runs/`` or ``trust_runs_fresh/``) and prints the largest difference.

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 PYTHONPATH=. python benchmarks/record_spectra.py \\
        --runs char_lm char_lm_small --seeds 0 1 2 3 4 5

Not part of CI. Trains (30 configurations per run × seed by default).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from record_runs import CALIBRATION_SEEDS, RUNS, quiet_single_thread, run_recorded  # noqa: E402 - one recorder

from wwtune.record import read_trial_spectra  # noqa: E402

OUT = HERE / "results" / "spectra_runs"


def recorded(run: str, seed: int) -> dict[str, Any] | None:
    folder = "trust_runs" if seed in CALIBRATION_SEEDS else "trust_runs_fresh"
    path = HERE / "results" / folder / f"{run}_s{seed}.json"
    return json.loads(path.read_text()) if path.exists() else None


def record(run: str, seed: int, n: int) -> Path:
    path = OUT / f"{run}_s{seed}.npz"
    with tempfile.TemporaryDirectory() as tmp:
        rec = run_recorded(run, seed, n, Path(tmp))
        arrays: dict[str, Any] = {}
        trials = []
        for t in rec["trials"]:
            losses = t.get("losses") or []
            trials.append(
                {
                    "number": t["number"],
                    "state": t["state"],
                    "heldout": t["heldout"],
                    "final_loss": losses[-1][1] if losses else None,
                    "score": t["score"],
                    "params": t["params"],
                }
            )
            table = read_trial_spectra(Path(tmp) / f"{run}_s{seed}" / "spectra" / f"trial{t['number']}.npz")
            if table is None:
                continue
            rows = table.drop(columns=["evals"]).to_dict("records")
            arrays[f"t{t['number']}_rows"] = np.array(json.dumps(rows, default=float))
            for i, ev in enumerate(table["evals"]):
                arrays[f"t{t['number']}_evals_{i}"] = np.asarray(ev, dtype=np.float32)
    OUT.mkdir(parents=True, exist_ok=True)
    tmp_path = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(tmp_path, trials=np.array(json.dumps(trials)), **arrays)
    os.replace(tmp_path, path)
    old = recorded(run, seed)
    if old is not None:
        before = {t["number"]: t["heldout"] for t in old["trials"]}
        diffs = [
            abs(t["heldout"] - before[t["number"]])
            for t in trials
            if t["heldout"] is not None and before.get(t["number"]) is not None
        ]
        print(
            f"{path.name}: {len(trials)} trials; held-out vs the recorded run: max |diff| "
            f"{max(diffs, default=float('nan')):.2e} over {len(diffs)} trials",
            flush=True,
        )
    else:
        print(f"{path.name}: {len(trials)} trials (no recorded run to compare)", flush=True)
    return path


def read(path: Path) -> tuple[list[dict[str, Any]], dict[int, list[dict[str, Any]]]]:
    """The trials of a spectra record and, per trial number, its layers (each row with ``evals``)."""
    with np.load(path) as data:
        trials = json.loads(str(data["trials"]))
        layers: dict[int, list[dict[str, Any]]] = {}
        for t in trials:
            key = f"t{t['number']}_rows"
            if key not in data:
                continue
            rows = json.loads(str(data[key]))
            for i, row in enumerate(rows):
                row["evals"] = data[f"t{t['number']}_evals_{i}"].astype(np.float64)
            layers[t["number"]] = rows
    return trials, layers


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", nargs="+", default=["char_lm", "char_lm_small"], choices=sorted(RUNS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4, 5])
    ap.add_argument("--n", type=int, default=30)
    args = ap.parse_args()
    quiet_single_thread()
    for run in args.runs:
        for seed in args.seeds:
            if (OUT / f"{run}_s{seed}.npz").exists():
                continue
            record(run, seed, args.n)
    return 0


if __name__ == "__main__":
    sys.exit(main())
