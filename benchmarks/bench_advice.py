"""Validate the data-vs-tuning advisor on teacher–student scenarios with known ground truth.

For each scenario (``starved``, ``untuned``, ``mixed``) and seed, the bench

1. runs a small random-search study of the α score (``wwtune.score.Score()``) on the scenario, training on
   half of the task's data (``available_fraction=0.5``) so that "2× data" exists for the ground truth;
2. asks the advisor (``wwtune.advice.advise``) — it sees the study and the task, never a held-out value;
3. measures the ground truth with held-out error (mean over 2 training seeds): the best configuration at
   1× and at 2× data (``gt_data`` = error drop from doubling the data) and the typical configuration at
   1× (``gt_tune`` = error drop from the typical to the best configuration; ``gt_tune_oracle`` = from the
   scenario's untuned defaults to the study's best held-out error).

Run (from the repository root; ~2 cores):

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python benchmarks/bench_advice.py --seeds 0 1 2 \
        --out benchmarks/results/advice.md
"""

from __future__ import annotations

import argparse
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

from wwtune.advice import DEFAULT_FRACTIONS, advise
from wwtune.objective import NullReporter, Params, Reporter
from wwtune.score import Score
from wwtune.search_space import SearchSpace
from wwtune.spectral import analyze

CONF = Path(__file__).resolve().parents[1] / "conf"


def load_scenario(name: str) -> dict[str, Any]:
    """``budget`` and ``fixed`` of ``conf/objective/teacher_student_<name>.yaml`` (the tasks' scenarios)."""
    cfg = OmegaConf.to_container(OmegaConf.load(CONF / "objective" / f"teacher_student_{name}.yaml"))
    return {"budget": int(cfg["budget"]), "fixed": dict(cfg["fixed"])}


SCENARIOS = ("starved", "untuned", "mixed")
AVAILABLE = 0.5


def load_task():
    from wwtune.objectives.teacher_student import train

    return train


class _Keep(Reporter):
    def __init__(self) -> None:
        self.model = None

    def report(self, step: int, model: torch.nn.Module, loss: float) -> None:
        self.model = model


def run_study(train, scen: dict[str, Any], space: SearchSpace, n_trials: int, seed: int) -> optuna.Study:
    score = Score()

    def objective(trial: optuna.Trial) -> float:
        values, layers = space.suggest(trial)
        rep = _Keep()
        out = train(Params({**scen["fixed"], **values}, layers, scen["budget"], seed, AVAILABLE), rep)
        trial.set_user_attr("wwtune.heldout", out["heldout"])
        value = score(analyze(rep.model)).value
        return math.inf if value is None else value

    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.RandomSampler(seed=seed))
    study.optimize(objective, n_trials=n_trials)
    return study


def heldout(train, scen, values, layers, fraction, seeds) -> float:
    hp = {**scen["fixed"], **values}
    errs = [train(Params(hp, layers, scen["budget"], s, fraction), NullReporter())["heldout"] for s in seeds]
    return float(np.mean(errs))


def one(train, name: str, seed: int, n_trials: int, fractions, space: SearchSpace) -> dict[str, Any]:
    scen = load_scenario(name)
    t0 = time.perf_counter()
    study = run_study(train, scen, space, n_trials, seed)
    adv = advise(
        train,
        study,
        fixed=scen["fixed"],
        budget=scen["budget"],
        fractions=fractions,
        seeds=(100 + 2 * seed, 101 + 2 * seed),
        available_fraction=AVAILABLE,
        params_from_trial=lambda t: space.split(t.params),
    )
    best, typ = adv["candidates"]["best"], adv["candidates"]["typical"]
    gt_seeds = (200 + seed, 300 + seed)
    e_b1 = heldout(train, scen, best["values"], best["layers"], AVAILABLE, gt_seeds)
    e_b2 = heldout(train, scen, best["values"], best["layers"], 1.0, gt_seeds)
    e_t1 = heldout(train, scen, typ["values"], typ["layers"], AVAILABLE, gt_seeds)
    e_def = heldout(train, scen, {}, {}, AVAILABLE, gt_seeds)
    oracle = min(t.user_attrs["wwtune.heldout"] for t in study.trials if "wwtune.heldout" in t.user_attrs)
    d = adv["decision"]
    return {
        "scenario": name,
        "seed": seed,
        "verdict": adv["verdict"],
        "alpha_slope": (adv["trends"]["best"]["mean_alpha"] or {}).get("slope"),
        "se_data": d.get("se_alpha"),
        "spread_slope": d.get("spread_slope"),
        "se_spread": d.get("se_spread"),
        "tune_gain": d.get("tune_gain"),
        "se_tune": d.get("se_tune"),
        "err_best_1x": e_b1,
        "err_best_2x": e_b2,
        "err_typical_1x": e_t1,
        "err_defaults_1x": e_def,
        "err_oracle_1x": oracle,
        "gt_data": e_b1 - e_b2,
        "gt_tune": e_t1 - e_b1,
        "gt_tune_oracle": e_def - oracle,
        "seconds": time.perf_counter() - t0,
        "advice": adv,
    }


EXPECTED = {"starved": "more data", "untuned": "more tuning", "mixed": None}


def table(rows: list[dict[str, Any]]) -> str:
    cols = [
        "scenario",
        "seed",
        "verdict",
        "expected",
        "Δ mean α / doubling (best)",
        "Δ α spread / doubling (best)",
        "tune_gain ± se",
        "err best 1× → 2×",
        "err typical 1×",
        "err defaults → study's held-out best (1×)",
        "gt_data",
        "gt_tune",
        "gt_tune_oracle",
        "s",
    ]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]

    def f(v: float | None) -> str:
        return "–" if v is None else f"{v:.3f}"

    for r in rows:
        cells = [
            r["scenario"],
            str(r["seed"]),
            f"**{r['verdict']}**",
            EXPECTED[r["scenario"]] or "(reported)",
            f"{f(r['alpha_slope'])} ± {f(r['se_data'])}",
            f"{f(r['spread_slope'])} ± {f(r['se_spread'])}",
            f"{f(r['tune_gain'])} ± {f(r['se_tune'])}",
            f"{r['err_best_1x']:.3f} → {r['err_best_2x']:.3f}",
            f"{r['err_typical_1x']:.3f}",
            f"{r['err_defaults_1x']:.3f} → {r['err_oracle_1x']:.3f}",
            f"{r['gt_data']:+.3f}",
            f"{r['gt_tune']:+.3f}",
            f"{r['gt_tune_oracle']:+.3f}",
            f"{r['seconds']:.0f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def summary(rows: list[dict[str, Any]], calibration: set[int]) -> str:
    """Per scenario and seed group: how many verdicts match the expected one, and the other verdicts."""
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
            expected = EXPECTED[name]
            right = (
                f"{verdicts.count(expected)}/{len(sel)} as expected ({expected})" if expected else "reported"
            )
            seeds = ", ".join(str(r["seed"]) for r in sel)
            out.append(f"- {name}, {group} ({seeds}): {right}; {counts}")
    return "\n".join(out)


COLUMNS_NOTE = """\
Columns: the advisor's verdict; the best configuration's change of mean α and of the cross-layer α spread
per doubling of the data (OLS slope ± standard error over 4 fractions × 2 seeds); the tuning gap (typical
− best fitted α score at 1×). Ground truth (held-out error, never seen by the advisor; mean of 2 training
seeds): `err best 1× → 2×` (the best-by-α configuration with the available data and with twice as much),
`err typical 1×`, `err defaults → study's held-out best` (the scenario's untuned defaults vs the lowest
held-out error among the study's trials); `gt_data` = error drop from doubling the data, `gt_tune` =
typical − best, `gt_tune_oracle` = defaults − study's held-out best; `s` = wall seconds."""


def render(rows: list[dict[str, Any]], cmd: str, calibration: set[int]) -> str:
    return (
        "# Data-vs-tuning advisor: validation on teacher–student scenarios\n\n"
        f"Command: `{cmd}`\n\n"
        "Scenarios: `conf/objective/teacher_student_{starved,untuned,mixed}.yaml`, search space "
        "`conf/search_space/teacher_student.yaml`; per seed a 12-trial random-search study of the α score on "
        "half the task's data (so 2× exists for the ground truth), then `wwtune.advice.advise` with its "
        f"defaults. Calibration seeds {sorted(calibration)} were seen while the rule's thresholds were set; "
        "the other seeds were first run with the thresholds fixed.\n\n"
        f"{summary(rows, calibration)}\n\n{table(rows)}\n\n{COLUMNS_NOTE}\n"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenarios", nargs="+", default=list(SCENARIOS), choices=list(SCENARIOS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--calibration-seeds", nargs="*", type=int, default=[0, 1, 2])
    ap.add_argument("--trials", type=int, default=12)
    ap.add_argument("--fractions", nargs="+", type=float, default=list(DEFAULT_FRACTIONS))
    ap.add_argument("--out", type=Path, default=None, help="markdown results table")
    ap.add_argument("--json", type=Path, default=None, help="every row with its full advice, as JSON")
    ap.add_argument("--from-json", type=Path, default=None, help="render --out from a saved --json; no runs")
    ap.add_argument("--run-command", default=None, help="with --from-json: the command that made the JSON")
    args = ap.parse_args(argv)
    cmd = "OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python benchmarks/bench_advice.py " + shlex.join(
        sys.argv[1:] if argv is None else argv
    )
    if args.from_json:
        rows = json.loads(args.from_json.read_text())
        made_by = args.run_command or (rows[0].get("command") if rows else None) or "unknown"
        cmd = f"{made_by}` (runs), rendered by `{cmd}"
    else:
        torch.set_num_threads(1)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        train = load_task()
        space = SearchSpace.from_config(
            OmegaConf.to_container(OmegaConf.load(CONF / "search_space" / "teacher_student.yaml"))
        )
        rows = []
        for name in args.scenarios:
            for seed in args.seeds:
                r = one(train, name, seed, args.trials, args.fractions, space)
                r["command"] = cmd
                rows.append(r)
                print(table([r]).splitlines()[-1], flush=True)
    text = render(rows, cmd, set(args.calibration_seeds))
    print(text)
    if args.out:
        args.out.write_text(text)
    if args.json and not args.from_json:
        args.json.write_text(json.dumps(rows, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
