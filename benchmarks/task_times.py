"""Wall time of one trial of each bundled task at its config's default budget, on one CPU core.

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python benchmarks/task_times.py [--repeats 3]

For each conf/objective/<task>.yaml (the four base tasks) it runs the task with the config's fixed values
and budget: once cold (first call in the process: data loading, library warm-up) and then ``--repeats``
times warm, reporting the median wall time and the median CPU time of the process (on a busy shared
machine the CPU time is the better estimate of the wall time on an idle core; it includes the svd).
``svd/report`` is a stand-in for the spectral analysis done at each
report: the time to take the singular values of every 2-D weight (conv kernels flattened) of the trained
model, times the number of reports; the real analysis also fits power laws, so read it as a lower bound.
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf

from wwtune.objective import NullReporter, Params

CONF = Path(__file__).resolve().parent.parent / "conf"


class TimedSvdReporter(NullReporter):
    """Records losses and the time spent taking singular values of the model's weights at each report."""

    def __init__(self) -> None:
        super().__init__()
        self.svd_s = 0.0

    def report(self, step, model, loss):
        super().report(step, model, loss)
        start = time.perf_counter()
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name.endswith("weight") and p.dim() >= 2:
                    torch.linalg.svdvals(p.reshape(p.shape[0], -1).double())
        self.svd_s += time.perf_counter() - start


def trial(cfg: dict, reporter: NullReporter) -> tuple[float, float]:
    module_name, _, fn_name = cfg["task"].partition(":")
    fn = getattr(importlib.import_module(module_name), fn_name)
    params = Params(
        values=dict(cfg["fixed"]),
        budget=int(cfg["budget"]),
        seed=0,
        data_fraction=float(cfg["data_fraction"]),
    )
    start, start_cpu = time.perf_counter(), time.process_time()
    fn(params, reporter)
    return time.perf_counter() - start, time.process_time() - start_cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--tasks", nargs="+", default=["digits_mlp", "digits_cnn", "char_lm", "teacher_student"]
    )
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(
        "| task | budget | cold trial s | warm trial s (median) | warm trial CPU s (median) "
        "| svd/report total s | svd share |"
    )
    print("|---|---|---|---|---|---|---|")
    for name in args.tasks:
        cfg = OmegaConf.to_container(OmegaConf.load(CONF / "objective" / f"{name}.yaml"))
        cold, _ = trial(cfg, NullReporter())
        warm, cpu, svd = [], [], []
        for _ in range(args.repeats):
            reporter = TimedSvdReporter()
            total, total_cpu = trial(cfg, reporter)
            warm.append(total - reporter.svd_s)
            cpu.append(total_cpu)
            svd.append(reporter.svd_s)
        w, c, s = statistics.median(warm), statistics.median(cpu), statistics.median(svd)
        row = f"| {name} | {cfg['budget']} | {cold:.2f} | {w:.2f} | {c:.2f} | {s:.3f} | {s / (w + s):.1%} |"
        print(row, flush=True)


if __name__ == "__main__":
    main()
