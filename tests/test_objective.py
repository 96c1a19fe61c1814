import math

import pytest
import torch
from torch import nn

from wwtune.objective import NullReporter, Params, TrainingDiverged


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(4, 8)
        self.drop1 = nn.Dropout(0.0)
        self.fc2 = nn.Linear(8, 3)
        self.drop2 = nn.Dropout(0.0)


def test_param_groups_apply_per_layer_lr_and_weight_decay():
    params = Params(
        values={"lr": 0.1, "weight_decay": 1e-4}, layers={"fc2": {"lr_mult": 3.0, "weight_decay": 0.0}}
    )
    groups = {g["name"]: g for g in params.param_groups(Net())}
    assert set(groups) == {"default", "fc2"}
    assert groups["fc2"]["lr"] == pytest.approx(0.3)
    assert groups["fc2"]["weight_decay"] == 0.0
    assert groups["default"]["lr"] == pytest.approx(0.1)
    assert groups["default"]["weight_decay"] == pytest.approx(1e-4)
    assert len(groups["fc2"]["params"]) == 2 and len(groups["default"]["params"]) == 2
    opt = torch.optim.SGD(params.param_groups(Net()), lr=1.0)
    assert sorted(g["lr"] for g in opt.param_groups) == pytest.approx([0.1, 0.3])


def test_first_matching_pattern_wins_and_dropout_applies():
    params = Params(
        values={"lr": 0.1, "dropout": 0.2}, layers={"drop2": {"dropout": 0.5}, "drop*": {"dropout": 0.1}}
    )
    net = Net()
    changed = params.apply_dropout(net)
    assert changed == {"drop1": 0.1, "drop2": 0.5}
    assert net.drop2.p == 0.5


def test_bad_values_are_named():
    with pytest.raises(ValueError, match="data_fraction"):
        Params(data_fraction=0.0)
    with pytest.raises(ValueError, match="lr_multiplier"):
        Params(layers={"fc1": {"lr_multiplier": 2}})
    with pytest.raises(KeyError, match="'momentum'"):
        Params(values={"lr": 1})["momentum"]
    with pytest.raises(ValueError, match="drop1"):
        Params(values={"dropout": 1.5}).apply_dropout(Net())


def test_null_reporter_flags_divergence():
    rep = NullReporter()
    rep.report(1, Net(), 0.5)
    with pytest.raises(TrainingDiverged):
        rep.report(2, Net(), math.nan)
    assert rep.losses[0] == (1, 0.5)
