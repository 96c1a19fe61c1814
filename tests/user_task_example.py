"""A complete user task for wwtune (the README example): an MLP learning a random teacher's labels.

Run it with `python -m wwtune study=example` in a folder holding this file and a `conf/` (tests/userproj).
"""

import torch
from torch import nn

from wwtune.objective import Params, Reporter, task


@task(supports_data_fraction=True)
def train(params: Params, reporter: Reporter) -> dict:
    torch.manual_seed(params.seed)
    n, width = int(1024 * params.data_fraction), params.get("width", 128)
    x = torch.randn(n + 512, 64)
    y = (x @ torch.randn(64, 4)).argmax(dim=1)  # labels of a random linear teacher
    model = nn.Sequential()
    model.add_module("fc1", nn.Linear(64, width))
    model.add_module("act", nn.ReLU())
    model.add_module("drop", nn.Dropout(0.0))
    model.add_module("fc2", nn.Linear(width, 4))
    params.apply_dropout(model)  # global or per-layer "dropout"
    opt = torch.optim.SGD(params.param_groups(model), lr=params["lr"], momentum=params.get("momentum", 0.0))
    for epoch in range(1, params.budget + 1):  # budget unit: epochs
        model.train()
        for i in range(0, n, 64):
            loss = nn.functional.cross_entropy(model(x[i : i + 64]), y[i : i + 64])
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            train_loss = nn.functional.cross_entropy(model(x[:n]), y[:n]).item()
        reporter.report(epoch, model, train_loss)  # analyses the weights here; may stop the run
    with torch.no_grad():
        accuracy = (model(x[n:]).argmax(dim=1) == y[n:]).float().mean().item()
    return {"heldout": accuracy}  # optional; stored beside the α score, not optimised
