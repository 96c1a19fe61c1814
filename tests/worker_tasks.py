"""A cheap task for the many-workers tests: a teacher-student regression, well under a second a trial.

``WWTUNE_TEST_EPOCH_SLEEP`` (seconds) pauses after each epoch so a test can kill a worker mid-trial.
"""

from __future__ import annotations

import os
import time
from collections import OrderedDict

import torch
from torch import nn

from wwtune.objective import Params, Reporter


def regress(params: Params, reporter: Reporter) -> dict:
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(params.seed)
    x = torch.randn(128, 64, generator=g)
    y = x @ torch.randn(64, 1, generator=g)
    y = y / y.std()
    torch.manual_seed(params.seed)
    model = nn.Sequential(OrderedDict(fc1=nn.Linear(64, 64), act=nn.Tanh(), fc2=nn.Linear(64, 1)))
    opt = torch.optim.SGD(params.param_groups(model), lr=params["lr"])
    pause = float(os.environ.get("WWTUNE_TEST_EPOCH_SLEEP", "0"))
    for epoch in range(1, params.budget + 1):
        for _ in range(4):
            loss = nn.functional.mse_loss(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        reporter.report(epoch, model, loss.item())
        if pause:
            time.sleep(pause)
    return {"heldout": -float(loss.item())}
