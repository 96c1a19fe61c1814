"""Calibrate AlphaPruner's defaults on a bundled task: which runs would it prune, and were they good?

Every sampled configuration is trained to the END of its budget; at each epoch the weights are analysed,
the ``wwtune.layers`` attr is written on a real Optuna trial exactly as the study does, and
``should_prune()`` is asked. The first prune is recorded but training goes on, so each pruned run's
final held-out accuracy is known (what the pruner would have thrown away).

Reported per run: the configuration, final held-out accuracy, the largest ``lambda_max`` growth since the
first analysis on an eligible layer with α < 2, and the prune step/rule. Summary: compute saved
(epochs not trained / all epochs), and false kills (pruned runs whose final accuracy is in the top
quartile of all runs).

Needs the spectral engine and the bundled tasks (scikit-learn for the digits data). Not part of CI:

    OMP_NUM_THREADS=1 python benchmarks/pruner_calibration.py --task digits_mlp --n 24 --seed 1 --budget 20
"""

from __future__ import annotations

import argparse
import importlib
import math
import random
from typing import Any

import numpy as np
import optuna
import torch

from wwtune.objective import NullReporter, Params
from wwtune.pruners import AlphaPruner
from wwtune.spectral import analyze

MIN_EVALS = 50  # wwtune's default eligibility rule


class CalibrationReporter(NullReporter):
    """Analyses every epoch, asks the pruner, remembers its first decision, never stops the run."""

    def __init__(self, trial: optuna.trial.Trial, pruner: AlphaPruner) -> None:
        super().__init__()
        self.trial, self.pruner = trial, pruner
        self.first_lambda: dict[str, float] = {}
        self.max_growth_small_alpha = 0.0
        self.pruned_at: int | None = None
        self.reason: dict[str, Any] | None = None

    def report(self, step: int, model: torch.nn.Module, loss: float) -> None:
        super().report(step, model, loss)
        df = analyze(model, min_evals=8)
        eligible = (df["num_evals"] >= MIN_EVALS).tolist()
        for name, lam, alpha, ok in zip(df["name"], df["lambda_max"], df["alpha"], eligible, strict=True):
            self.first_lambda.setdefault(name, lam)
            if ok and 0 < alpha < 2:
                self.max_growth_small_alpha = max(self.max_growth_small_alpha, lam / self.first_lambda[name])
        self.trial.set_user_attr(
            "wwtune.layers",
            {
                "step": step,
                "name": df["name"].tolist(),
                "alpha": df["alpha"].tolist(),
                "num_evals": df["num_evals"].tolist(),
                "eligible": eligible,
                "status": df["status"].tolist(),
                "lambda_max": df["lambda_max"].tolist(),
                "log_norm": df["log_norm"].tolist(),
                "rank_loss": df["rank_loss"].tolist(),
                "num_traps": None,
            },
        )
        self.trial.report(0.0, step)
        if self.pruned_at is None and self.trial.should_prune():
            self.pruned_at, self.reason = step, self.pruner.reason_for(self.trial)


def sample(rng: random.Random, task: str) -> dict[str, Any]:
    """High learning rates and momenta on purpose: that is where divergence and false kills live."""
    values = {
        "lr": math.exp(rng.uniform(math.log(1e-3), math.log(0.5))),
        "momentum": rng.uniform(0.5, 0.99),
        "weight_decay": math.exp(rng.uniform(math.log(1e-6), math.log(1e-2))),
        "dropout": rng.uniform(0.0, 0.5),
        "batch_size": 64,
    }
    if task == "digits_mlp":
        values["hidden"] = 256
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--task", default="digits_mlp")
    parser.add_argument("--n", type=int, default=24)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--budget", type=int, default=20)
    parser.add_argument("--under-trained-fraction", type=float, default=None, help="default: AlphaPruner's")
    parser.add_argument("--norm-growth", type=float, default=None, help="default: AlphaPruner's")
    args = parser.parse_args()

    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    train = importlib.import_module(f"wwtune.objectives.{args.task}").train
    rng = random.Random(args.seed)
    overrides = {
        key: value
        for key, value in (
            ("under_trained_fraction", args.under_trained_fraction),
            ("norm_growth", args.norm_growth),
        )
        if value is not None
    }
    pruner = AlphaPruner(**overrides)
    study = optuna.create_study(pruner=pruner)
    rows = []
    for i in range(args.n):
        values = sample(rng, args.task)
        trial = study.ask()
        trial.set_user_attr("wwtune.budget", args.budget)
        reporter = CalibrationReporter(trial, pruner)
        try:
            acc = float(train(Params(values=values, budget=args.budget, seed=i), reporter)["heldout"])
        except Exception as exc:  # noqa: BLE001 - a diverged run is a data point, not a crash
            acc, reporter.reason = float("nan"), {"rule": f"task raised {type(exc).__name__}"}
        study.tell(trial, state=optuna.trial.TrialState.COMPLETE, values=0.0)
        rows.append((values, acc, reporter))

    accs = np.array([r[1] for r in rows])
    top_quartile = np.nanquantile(accs, 0.75)
    print(
        f"task {args.task}, {args.n} configs, seed {args.seed}, budget {args.budget}; "
        f"AlphaPruner({', '.join(f'{k}={v}' for k, v in overrides.items())}) (other arguments default)"
    )
    print()
    print("| lr | momentum | final acc | max λ_max growth (α<2 layer) | pruned at | rule |")
    print("|---:|---:|---:|---:|---:|---|")
    for values, acc, rep in sorted(rows, key=lambda r: r[0]["lr"]):
        rule = (rep.reason or {}).get("rule", "")
        print(
            f"| {values['lr']:.3g} | {values['momentum']:.3f} | {acc:.3f} | {rep.max_growth_small_alpha:.1f} "
            f"| {rep.pruned_at or ''} | {rule} |"
        )
    pruned = [r for r in rows if r[2].pruned_at is not None]
    saved = sum(args.budget - r[2].pruned_at for r in pruned) / (args.budget * args.n)
    false_kills = [r for r in pruned if r[1] >= top_quartile]
    print()
    print(
        f"pruned {len(pruned)}/{args.n}; compute saved {saved:.0%} of epochs; "
        f"top-quartile accuracy ≥ {top_quartile:.3f}; false kills {len(false_kills)}/"
        f"{len(pruned)} pruned"
    )


if __name__ == "__main__":
    main()
