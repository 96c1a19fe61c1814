"""Ground truth for the teacher–student advisor scenarios, measured with held-out data.

For each scenario config (conf/objective/teacher_student_*.yaml) and each seed it measures the held-out
error of the scenario's untuned defaults at N (= n_train) and at 2N, and of a random search of
``--trials`` configurations drawn from conf/search_space/teacher_student.yaml at N (the same draws for
every seed; the configuration with the best mean held-out error over the seeds counts as "tuned").

    OMP_NUM_THREADS=1 python benchmarks/teacher_student_scenarios.py [--trials 16] [--seeds 0 1 2]

Prints a Markdown table: data gain = err(default, N) − err(default, 2N); tuning gain = err(default, N) −
err(tuned, N), each also per seed (the tuned configuration is the one best on
the mean). Used to check that "starved" is data-limited, "untuned" tuning-limited, "mixed" both.
"""

from __future__ import annotations

import argparse
import math
import statistics
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from wwtune.objective import NullReporter, Params, TrainingDiverged
from wwtune.objectives import teacher_student

CONF = Path(__file__).resolve().parent.parent / "conf"


def sample(spec: dict, rng: np.random.Generator):
    if spec["type"] == "categorical":
        return spec["choices"][rng.integers(len(spec["choices"]))]
    low, high = float(spec["low"]), float(spec["high"])
    if spec.get("log"):
        return float(math.exp(rng.uniform(math.log(low), math.log(high))))
    return float(rng.uniform(low, high))


def draw_configs(n: int, seed: int = 12345) -> list[tuple[dict, dict]]:
    space = OmegaConf.to_container(OmegaConf.load(CONF / "search_space" / "teacher_student.yaml"))
    rng = np.random.default_rng(seed)
    configs = []
    for _ in range(n):
        values = {k: sample(s, rng) for k, s in space["params"].items()}
        layers = {p: {k: sample(s, rng) for k, s in st.items()} for p, st in space.get("layers", {}).items()}
        configs.append((values, layers))
    return configs


def error(objective: dict, values: dict, layers: dict, seed: int, n_scale: int = 1) -> float:
    fixed = dict(objective["fixed"])
    fixed["n_train"] = int(fixed["n_train"]) * n_scale
    params = Params(values={**fixed, **values}, layers=layers, budget=int(objective["budget"]), seed=seed)
    try:
        return float(teacher_student.train(params, NullReporter())["heldout"])
    except TrainingDiverged:  # a diverged random configuration cannot be the tuned one
        return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", nargs="+", default=["starved", "untuned", "mixed"])
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    torch.set_num_threads(1)
    configs = draw_configs(args.trials)
    chosen = {}
    print(
        "| scenario | N | err default @N | err default @2N | err tuned @N | data gain | tuning gain "
        "| data gain per seed | tuning gain per seed |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name in args.scenarios:
        path = CONF / "objective" / f"teacher_student_{name}.yaml"
        objective = OmegaConf.to_container(OmegaConf.load(path))
        d1 = [error(objective, {}, {}, s) for s in args.seeds]
        d2 = [error(objective, {}, {}, s, n_scale=2) for s in args.seeds]
        per_config = [[error(objective, values, layers, s) for s in args.seeds] for values, layers in configs]
        means = [statistics.fmean(e) if all(map(math.isfinite, e)) else math.inf for e in per_config]
        best = int(np.argmin(means))
        m1, m2 = statistics.fmean(d1), statistics.fmean(d2)
        sd = statistics.stdev(d1) if len(d1) > 1 else 0.0
        data_gains = " ".join(f"{a - b:+.3f}" for a, b in zip(d1, d2, strict=True))
        tune_gains = " ".join(f"{a - b:+.3f}" for a, b in zip(d1, per_config[best], strict=True))
        print(
            f"| {name} | {objective['fixed']['n_train']} | {m1:.3f} ± {sd:.3f} | {m2:.3f} | "
            f"{means[best]:.3f} | {m1 - m2:+.3f} | {m1 - means[best]:+.3f} | {data_gains} | {tune_gains} |",
            flush=True,
        )
        chosen[name] = configs[best]
    print()
    for name, (values, layers) in chosen.items():
        rounded = {k: round(v, 4) if isinstance(v, float) else v for k, v in values.items()}
        mults = {p: {k: round(v, 3) for k, v in st.items()} for p, st in layers.items()}
        print(f"- tuned configuration for {name}: {rounded}, layers {mults}")


if __name__ == "__main__":
    main()
