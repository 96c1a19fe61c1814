"""Ground truth for the teacher–student advisor scenarios, measured with held-out data.

For each scenario config (conf/objective/teacher_student_*.yaml) and each seed it measures the held-out
error of the scenario's untuned defaults at N (= n_train) and at 2N, and of a random search of
``--trials`` configurations drawn from conf/search_space/teacher_student.yaml at N (the same draws for
every seed; the configuration with the best mean held-out error over the seeds counts as "tuned").

    OMP_NUM_THREADS=1 python benchmarks/teacher_student_scenarios.py [--trials 16] [--seeds 0 1 2]

Prints a Markdown table: data gain = err(default, N) − err(default, 2N); tuning gain = err(default, N) −
err(tuned, N). Used to check that "starved" is data-limited, "untuned" tuning-limited, "mixed" both.
"""

from __future__ import annotations

import argparse
import math
import statistics
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from wwtune.objective import NullReporter, Params
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
    except Exception:  # a diverged random config scores as chance-level, as a failed trial would
        return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", nargs="+", default=["starved", "untuned", "mixed"])
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    torch.set_num_threads(1)
    configs = draw_configs(args.trials)
    print("| scenario | N | err default @N | err default @2N | err tuned @N | data gain | tuning gain |")
    print("|---|---|---|---|---|---|---|")
    for name in args.scenarios:
        path = CONF / "objective" / f"teacher_student_{name}.yaml"
        objective = OmegaConf.to_container(OmegaConf.load(path))
        d1 = [error(objective, {}, {}, s) for s in args.seeds]
        d2 = [error(objective, {}, {}, s, n_scale=2) for s in args.seeds]
        tuned = []
        for values, layers in configs:
            errs = [error(objective, values, layers, s) for s in args.seeds]
            tuned.append(statistics.fmean(errs) if all(map(math.isfinite, errs)) else math.inf)
        best = int(np.argmin(tuned))
        m1, m2 = statistics.fmean(d1), statistics.fmean(d2)
        sd = statistics.stdev(d1) if len(d1) > 1 else 0.0
        print(f"| {name} | {objective['fixed']['n_train']} | {m1:.3f} ± {sd:.3f} | {m2:.3f} | "
              f"{tuned[best]:.3f} | {m1 - m2:+.3f} | {m1 - tuned[best]:+.3f} |", flush=True)


if __name__ == "__main__":
    main()
