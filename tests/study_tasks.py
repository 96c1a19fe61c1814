"""Tiny tasks for the study-runner tests, imported as `study_tasks:<name>` (tests folder or a copy)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import torch
from torch import nn

from wwtune.objective import Params, Reporter


def _data(seed: int, n: int = 256):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 64, generator=g)
    y = (x @ torch.randn(64, 4, generator=g)).argmax(dim=1)
    return x, y


def _model(params: Params) -> nn.Module:
    torch.manual_seed(params.seed)
    model = nn.Sequential()
    model.add_module("fc1", nn.Linear(64, 64))
    model.add_module("act", nn.ReLU())
    model.add_module("fc2", nn.Linear(64, 4))
    return model


def _hang_if_asked() -> None:
    """With ``WWTUNE_TEST_HANG_MARK=<path>`` and ``WWTUNE_TEST_HANG_AT=<n>``, the n-th call of a task hangs
    after its first report, once it has written <path>: a test kills the run mid-trial on that condition,
    whatever the machine's speed (calls are counted in ``<path>.calls``, so trial subprocesses count too)."""
    mark = os.environ.get("WWTUNE_TEST_HANG_MARK")
    if not mark:
        return
    calls = Path(mark + ".calls")
    with calls.open("a") as f:
        f.write("call\n")
    if len(calls.read_text().splitlines()) == int(os.environ["WWTUNE_TEST_HANG_AT"]):
        Path(mark).write_text("hanging\n")
        while True:  # no clock: sleeps until the test's SIGKILL
            signal.pause()


def fast(params: Params, reporter: Reporter) -> dict:
    """A few full-batch SGD steps per epoch; the loss falls by >10% for any lr in [0.05, 1]."""
    torch.set_num_threads(1)
    x, y = _data(params.seed)
    model = _model(params)
    opt = torch.optim.SGD(params.param_groups(model), lr=params["lr"])
    groups = {g["name"]: g["lr"] for g in opt.param_groups}
    for epoch in range(1, params.budget + 1):
        for _ in range(10):
            loss = nn.functional.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        reporter.report(epoch, model, loss.item())
        if epoch == 1:
            _hang_if_asked()
        if os.environ.get("WWTUNE_TEST_SLEEP"):
            time.sleep(float(os.environ["WWTUNE_TEST_SLEEP"]))
    return {"heldout": float(-loss.item()), "group_lrs": groups}


def crash_some(params: Params, reporter: Reporter) -> dict:
    """Raises for large learning rates: a crashing task must fail only its own trial."""
    if params["lr"] > 0.2:
        raise RuntimeError(f"boom at lr={params['lr']:.3g}")
    return fast(params, reporter)


def nan_loss(params: Params, reporter: Reporter) -> None:
    model = _model(params)
    reporter.report(1, model, float("nan"))


def nan_weights(params: Params, reporter: Reporter) -> None:
    model = _model(params)
    with torch.no_grad():
        model.fc1.weight[0, 0] = float("inf")
    reporter.report(1, model, 1.0)


def flat_loss(params: Params, reporter: Reporter) -> None:
    """The loss does not fall: the sanity rule must catch it."""
    model = _model(params)
    for epoch in range(1, params.budget + 1):
        reporter.report(epoch, model, 1.0)


def never_reports(params: Params, reporter: Reporter) -> None:
    return None


def not_a_dict(params: Params, reporter: Reporter) -> int:
    reporter.report(1, _model(params), 1.0)
    return 3


def interrupt_once(params: Params, reporter: Reporter) -> dict:
    """Acts like Ctrl-C in the middle of training when a file `stop_now` exists (and removes it)."""
    if os.path.exists("stop_now"):
        os.remove("stop_now")
        raise KeyboardInterrupt
    return fast(params, reporter)


def hang(params: Params, reporter: Reporter) -> None:
    """A task that hangs after its first report (gives up after 30 s, so a missing time limit fails the
    test instead of hanging it)."""
    reporter.report(1, _model(params), 1.0)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        time.sleep(0.01)
    raise RuntimeError("the hung task was not stopped by any time limit")


def blew_up_first_epoch(params: Params, reporter: Reporter) -> None:
    """Loss 1.0 before training, 2.85 after the first epoch, then flat around 1.2-1.5: the loss fell from
    its first *reported* value but never below where it started."""
    model = _model(params)
    reporter.report(0, model, 1.0)
    for epoch, loss in enumerate([2.85, 1.5, 1.3, 1.2][: params.budget], start=1):
        reporter.report(epoch, model, loss)


def _heavy_tailed(n: int, alpha: float, seed: int) -> torch.Tensor:
    """An n×n matrix whose eigenvalues of WᵀW follow a Pareto law of exponent ``alpha`` (known answer)."""
    g = torch.Generator().manual_seed(seed)
    u = torch.rand(n, generator=g, dtype=torch.float64)
    evals = (1.0 - u) ** (-1.0 / (alpha - 1.0))
    q1, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    q2, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    return (q1 @ torch.diag(evals.sqrt()) @ q2.T).float()


def exploding_norms(params: Params, reporter: Reporter) -> dict:
    """Normal weights before training; then fc1 becomes heavy-tailed (α ≈ 1.6) with a spectral norm ×10⁴
    while the reported loss falls nicely: the loss rules pass, only the norm-growth rule sees it."""
    model = _model(params)
    reporter.report(0, model, 2.0)
    with torch.no_grad():
        w = _heavy_tailed(64, 1.6, params.seed)
        model.fc1.weight.copy_(w / w.norm() * model.fc1.weight.norm() * 100.0)
    for epoch in range(1, params.budget + 1):
        reporter.report(epoch, model, 1.0 / epoch)
    return {"heldout": 0.0}


def wait_for_ctrl_c(params: Params, reporter: Reporter) -> dict:
    """Trains one epoch, writes `ready_for_ctrl_c`, then waits (at most 120 s) for the test's SIGINT."""
    model = _model(params)
    reporter.report(1, model, 1.0)
    with open("ready_for_ctrl_c", "w") as f:
        f.write(str(os.getpid()))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        time.sleep(0.02)
    raise RuntimeError("no SIGINT came within 120 s")


def reports_only_step_0(params: Params, reporter: Reporter) -> None:
    """Reports the untrained model (step 0) and nothing after."""
    reporter.report(0, _model(params), 1.0)


def own_alarm_reports(params: Params, reporter: Reporter) -> None:
    """Installs its own SIGALRM handler (which ignores the alarm), then keeps reporting; gives up after
    30 s, so a time limit the handler switched off fails the test instead of hanging it."""
    model = _model(params)
    reporter.report(1, model, 1.0)
    signal.signal(signal.SIGALRM, lambda signum, frame: None)
    deadline, step = time.monotonic() + 30, 1
    while time.monotonic() < deadline:
        step += 1
        reporter.report(step, model, 1.0 / step)
        time.sleep(0.05)
    raise RuntimeError("the task was not stopped by any time limit")


def own_alarm_silent(params: Params, reporter: Reporter) -> dict:
    """Reports once, installs its own SIGALRM handler, then works 3 s without reporting and returns."""
    model = _model(params)
    reporter.report(1, model, 1.0)
    signal.signal(signal.SIGALRM, lambda signum, frame: None)
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        time.sleep(0.01)
    reporter.report(2, model, 0.5)  # the last report: within its own work, past the trial's limit
    return {}


def catches_base_exception(params: Params, reporter: Reporter) -> None:
    """Swallows every exception (BaseException too) around its work, then reports; gives up after 30 s."""
    model = _model(params)
    deadline, step = time.monotonic() + 30, 0
    while time.monotonic() < deadline:
        step += 1
        try:
            time.sleep(0.05)
        except BaseException:  # noqa: BLE001, S110 - the point of this task
            pass
        reporter.report(step, model, 1.0 / step)
    raise RuntimeError("the task was not stopped by any time limit")
