"""Validate the data-vs-tuning advisor on scenarios with known answers, ground truth from held-out data.

For each scenario and seed the bench

1. runs a 12-trial random-search study of the α score (``wwtune.score.Score()``) training on half of the
   scenario's data (``available = objective.data_fraction / 2``) so that "2× data" exists for the ground
   truth;
2. asks the advisor (``wwtune.advice.advise`` with its defaults: the cross-fitted learning curve on the
   training data the study used) — it never sees a held-out value;
3. measures the ground truth on the task's held-out set, as a loss (error rate; 1 − accuracy for the
   digits): ``gt_data`` = the study's best-by-α configuration at 1× minus at 2× the data (mean of 2
   training seeds), ``gt_tune`` = that configuration's held-out loss in the study minus the lowest
   held-out loss of any study trial (what better tuning among the study's own trials was worth).

Scenarios: ``starved``/``untuned``/``mixed`` (``conf/objective/teacher_student_*.yaml``), ``digits_starved``
(``digits_mlp_starved.yaml``: the MLP on 10% of the digits) and ``cnn_untuned`` (``digits_cnn_untuned.yaml``
with ``conf/search_space/digits_cnn_untuned.yaml``), ``cnn_untuned_steps`` (the same with a fixed step
budget: ``digits_cnn_untuned_steps.yaml``), ``char_lm_tuning`` (the character LM on its whole corpus with a
short step budget: ``char_lm_tuning.yaml``; scored with its α band [3, 4]). Expected verdicts: starved → more
data, untuned → more tuning, mixed → reported.

Run (from the repository root; one process per scenario group, each single-threaded):

    OMP_NUM_THREADS=1 python benchmarks/bench_advice.py --seeds 0 1 2 --json /tmp/adv.json
    python benchmarks/bench_advice.py --from-json /tmp/adv.json --out benchmarks/results/advice.md
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import torch
from omegaconf import OmegaConf

from wwtune.advice import advise
from wwtune.objective import NullReporter, Params, Reporter
from wwtune.score import Score
from wwtune.search_space import SearchSpace
from wwtune.spectral import analyze

CONF = Path(__file__).resolve().parents[1] / "conf"

#: name → (objective config, search space config, expected verdict or None for "reported")
SCENARIOS: dict[str, tuple[str, str, str | None]] = {
    "starved": ("teacher_student_starved", "teacher_student", "more data"),
    "untuned": ("teacher_student_untuned", "teacher_student", "more tuning"),
    "mixed": ("teacher_student_mixed", "teacher_student", None),
    "digits_starved": ("digits_mlp_starved", "digits_mlp", "more data"),
    "cnn_untuned": ("digits_cnn_untuned", "digits_cnn_untuned", "more tuning"),
    "cnn_untuned_steps": ("digits_cnn_untuned_steps", "digits_cnn_untuned", "more tuning"),
    "char_lm_tuning": ("char_lm_tuning", "char_lm", "more tuning"),
}
N_TRIALS = 12


def load(name: str) -> dict[str, Any]:
    obj_name, space_name, expected = SCENARIOS[name]
    obj = OmegaConf.to_container(OmegaConf.load(CONF / "objective" / f"{obj_name}.yaml"))
    space = OmegaConf.to_container(OmegaConf.load(CONF / "search_space" / f"{space_name}.yaml"))
    module, fn = obj["task"].split(":")
    task = getattr(importlib.import_module(module), fn)
    maximize = obj["heldout"]["direction"] == "maximize"
    return {
        "task": task,
        "budget": int(obj["budget"]),
        "fixed": dict(obj.get("fixed") or {}),
        "full": float(obj.get("data_fraction", 1.0)),
        "space": SearchSpace.from_config(space),
        "to_loss": (lambda h: 1.0 - h) if maximize else (lambda h: h),
        "expected": expected,
        "band": obj.get("alpha_band"),  # the task's α band (the transformer's [3, 4]); None: the default
    }


class _Keep(Reporter):
    def __init__(self) -> None:
        self.model = None

    def report(self, step: int, model: torch.nn.Module, loss: float) -> None:
        if not math.isfinite(loss):
            raise optuna.TrialPruned(f"diverged at {step}")
        self.model = model


def run_study(sc: dict[str, Any], seed: int) -> optuna.Study:
    score = Score() if sc["band"] is None else Score(band=tuple(sc["band"]))

    def objective(trial: optuna.Trial) -> float:
        values, layers = sc["space"].suggest(trial)
        rep = _Keep()
        params = Params({**sc["fixed"], **values}, layers, sc["budget"], seed, sc["full"] / 2)
        out = sc["task"](params, rep)
        trial.set_user_attr("heldout_loss", sc["to_loss"](out["heldout"]))
        value = score(analyze(rep.model)).value
        return math.inf if value is None else value

    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.RandomSampler(seed=seed))
    study.optimize(objective, n_trials=N_TRIALS)
    return study


def heldout_loss(sc: dict[str, Any], cand: dict[str, Any], fraction: float, seeds) -> float:
    hp = {**sc["fixed"], **cand["values"]}
    out = [sc["task"](Params(hp, cand["layers"], sc["budget"], s, fraction), NullReporter()) for s in seeds]
    return float(np.mean([sc["to_loss"](o["heldout"]) for o in out]))


def one(name: str, seed: int) -> dict[str, Any]:
    sc = load(name)
    t0 = time.perf_counter()
    study = run_study(sc, seed)
    t_study = time.perf_counter() - t0
    adv = advise(
        sc["task"],
        study,
        fixed=sc["fixed"],
        budget=sc["budget"],
        available_fraction=sc["full"] / 2,
        seed=1000 * (seed + 1),
        params_from_trial=lambda t: sc["space"].split(t.params),
    )
    t_adv = time.perf_counter() - t0 - t_study
    best = adv["candidates"]["best"]
    gt_seeds = (200 + seed, 300 + seed)
    e1 = heldout_loss(sc, best, sc["full"] / 2, gt_seeds)
    e2 = heldout_loss(sc, best, sc["full"], gt_seeds)
    done = [t for t in study.trials if "heldout_loss" in t.user_attrs]
    best_trial = study.trials[best["trial_number"]].user_attrs["heldout_loss"]
    oracle = min(t.user_attrs["heldout_loss"] for t in done)
    d, t = adv.get("data_gain") or {}, adv.get("tuning_gain") or {}
    w = adv.get("spectral_witness") or {}
    return {
        "scenario": name,
        "seed": seed,
        "verdict": adv["verdict"],
        "expected": sc["expected"],
        "data_gain": [d.get("estimate"), d.get("low"), d.get("high")],
        "tune_gain": [t.get("estimate"), t.get("low"), t.get("high")],
        "alpha_slope": [w.get("alpha_slope"), w.get("se_alpha")],
        "spread_slope": [w.get("spread_slope"), w.get("se_spread")],
        "witness": str(w.get("reading", "")).split(" (")[0],
        "err_best_1x": e1,
        "err_best_2x": e2,
        "err_best_study": best_trial,
        "err_oracle_study": oracle,
        "gt_data": e1 - e2,
        "gt_tune": best_trial - oracle,
        "n_runs": adv.get("n_runs"),
        "run_equivalents": adv.get("run_equivalents"),
        "s_study": t_study,
        "s_advice": t_adv,
        "advice": adv,
    }


def _f(v: float | None, fmt: str = "+.3f") -> str:
    return "–" if v is None else format(v, fmt)


def table(rows: list[dict[str, Any]]) -> str:
    cols = [
        "scenario", "seed", "verdict", "expected", "2× data gain [90%]", "tuning gain [90%]",
        "spectral witness", "gt_data", "gt_tune", "gt larger", "err best 1×→2×", "runs (equiv.)",
        "s study / advice",
    ]  # fmt: skip
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        dg, tg = r["data_gain"], r["tune_gain"]
        cells = [
            r["scenario"],
            str(r["seed"]),
            f"**{r['verdict']}**",
            r["expected"] or "(reported)",
            f"{_f(dg[0])} [{_f(dg[1])}, {_f(dg[2])}]",
            f"{_f(tg[0])} [{_f(tg[1])}, {_f(tg[2])}]",
            r["witness"],
            f"{r['gt_data']:+.3f}",
            f"{r['gt_tune']:+.3f}",
            "data" if r["gt_data"] > r["gt_tune"] else "tuning",
            f"{r['err_best_1x']:.3f} → {r['err_best_2x']:.3f}",
            f"{r['n_runs']} ({_f(r['run_equivalents'], '.1f')})",
            f"{r['s_study']:.0f} / {r['s_advice']:.0f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def summary(rows: list[dict[str, Any]], calibration: set[int]) -> str:
    out = []
    for name in SCENARIOS:
        for group, keep in (("calibration seeds", True), ("fresh seeds", False)):
            sel = [r for r in rows if r["scenario"] == name and (r["seed"] in calibration) == keep]
            if not sel:
                continue
            verdicts = [r["verdict"] for r in sel]
            counts = ", ".join(
                f"{v}: {verdicts.count(v)}" for v in ("more data", "more tuning", "inconclusive")
            )
            expected = sel[0]["expected"]
            right = (
                f"{verdicts.count(expected)}/{len(sel)} as expected ({expected})" if expected else "reported"
            )
            seeds = ", ".join(str(r["seed"]) for r in sel)
            decisive = [r for r in sel if r["verdict"] != "inconclusive"]
            agree = sum(
                r["verdict"] == ("more data" if r["gt_data"] > r["gt_tune"] else "more tuning")
                for r in decisive
            )
            gt = ", ".join("data" if r["gt_data"] > r["gt_tune"] else "tuning" for r in sel)
            out.append(
                f"- {name}, {group} ({seeds}): {right}; {counts}; ground truth's larger gain: {gt}; "
                f"decisive verdicts agreeing with it: {agree}/{len(decisive)}"
            )
    return "\n".join(out)


NOTE = """\
Columns: the advisor's verdict; its expected loss drop from 2× data (power law fitted to the best
configuration's loss on the unseen part of the training data at 1/8, 1/4, 1/2, 3/4 of it, 4 splits,
extrapolated 1× → 2×) and from more tuning (leave-one-split-out choice among the study's 8 best-scored
trials vs the current best, paired over the 4 splits, clipped at 0), both with 90% bootstrap intervals;
the spectral witness (mean α and α spread per doubling of the data from the same runs; reported, not used).
Ground truth (held-out set, never seen by the advisor): `gt_data` = held-out loss of the study's best-by-α
configuration at 1× minus at 2× the data (2 training seeds), `gt_tune` = that configuration's held-out
loss in the study minus the study's lowest held-out loss; losses are error rates. `runs (equiv.)` = the
advice's training runs (their total data as full-data runs); the study is 12 full-data runs."""


def render(rows: list[dict[str, Any]], cmd: str, calibration: set[int]) -> str:
    return (
        "# Data-vs-tuning advisor: validation (cross-fitted learning curves)\n\n"
        f"Command: `{cmd}`\n\n"
        f"Calibration seeds {sorted(calibration)} were seen while the advisor's defaults were set; the "
        "other seeds were run once, after they were frozen.\n\n"
        f"{summary(rows, calibration)}\n\n{table(rows)}\n\n{NOTE}\n"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenarios", nargs="+", default=list(SCENARIOS), choices=list(SCENARIOS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--calibration-seeds", nargs="*", type=int, default=[0, 1, 2])
    ap.add_argument("--out", type=Path, default=None, help="markdown results table")
    ap.add_argument(
        "--json", type=Path, default=None, help="rows (with the full advice) appended as JSON lines"
    )
    ap.add_argument("--from-json", type=Path, nargs="+", default=None, help="render from saved --json files")
    ap.add_argument("--run-command", default=None, help="with --from-json: the command(s) that made them")
    args = ap.parse_args(argv)
    cmd = "OMP_NUM_THREADS=1 python benchmarks/bench_advice.py " + shlex.join(
        sys.argv[1:] if argv is None else argv
    )
    if args.from_json:
        rows = [
            json.loads(line) for p in args.from_json for line in p.read_text().splitlines() if line.strip()
        ]
        order = list(SCENARIOS)
        rows.sort(key=lambda r: (order.index(r["scenario"]), r["seed"]))
        cmd = f"{args.run_command or 'unknown'}` (runs), rendered by `{cmd}"
    else:
        torch.set_num_threads(1)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        rows = []
        for name in args.scenarios:
            for seed in args.seeds:
                r = one(name, seed)
                rows.append(r)
                print(table([r]).splitlines()[-1], flush=True)
                if args.json:
                    with args.json.open("a") as fh:
                        fh.write(json.dumps(r, default=str) + "\n")
    text = render(rows, cmd, set(args.calibration_seeds))
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
