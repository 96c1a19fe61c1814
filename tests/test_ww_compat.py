"""WeightWatcher familiarity: layer_id / longname columns, integer ids in layers=, plot= / savefig=."""

from pathlib import Path

import pytest
import torch
from torch import nn

import wwtune


def model():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(64, 32),
        nn.ReLU(),
        nn.Sequential(nn.Linear(32, 24), nn.Tanh()),
        nn.MultiheadAttention(24, 2),
        nn.Conv2d(3, 8, 3),
    )


def test_layer_id_is_the_index_in_named_modules_and_longname_the_full_path():
    m = model()
    index = {name: i for i, (name, _) in enumerate(m.named_modules())}
    df = wwtune.analyze(m)
    assert list(df.columns[:3]) == ["layer_id", "name", "longname"]
    assert list(df["name"]) == [n.rsplit(".in_proj.", 1)[0].rsplit(".", 1)[-1] for n in df["longname"]]
    owner = [n.rsplit(".in_proj.", 1)[0] for n in df["longname"]]  # MHA's q/k/v rows belong to the MHA module
    assert list(df["layer_id"]) == [index[o] for o in owner]
    assert list(df["layer_id"]) == [1, 4, 6, 6, 6, 7, 8]


def test_state_dict_layer_ids_follow_the_order_of_its_modules():
    # WeightWatcher 0.7.7 on Sequential(Linear, LayerNorm, Linear, Embedding).state_dict(): ids 1, 3, 4
    # (the LayerNorm's weight takes an id), names = longnames = the key prefixes
    torch.manual_seed(0)
    sd = nn.Sequential(
        nn.Linear(64, 48), nn.LayerNorm(48), nn.Linear(48, 32), nn.Embedding(100, 16)
    ).state_dict()
    got = wwtune.analyze(sd)
    assert list(got["layer_id"]) == [1, 3, 4] and list(got["name"]) == list(got["longname"]) == [
        "0",
        "2",
        "3",
    ]
    df = wwtune.analyze(model().state_dict())
    assert list(df["layer_id"]) == [1, 2, 3, 3, 3, 4, 5]  # WeightWatcher numbers a state_dict from 1


def test_integer_ids_select_layers_alone_or_with_patterns():
    m = model()
    assert list(wwtune.analyze(m, layers=[4])["longname"]) == ["2.0"]
    assert list(wwtune.analyze(m, layers=4)["longname"]) == ["2.0"]
    assert list(wwtune.analyze(m, layers=[1, "3.out*"])["longname"]) == ["0", "3.out_proj"]
    with pytest.raises(
        ValueError, match=r"no weight matrix has layer_id \[2\]; ids with weights: 1: 0, 4: 2.0"
    ):
        wwtune.analyze(m, layers=[2])  # the ReLU
    # WeightWatcher: negative ids skip those layers
    assert list(wwtune.analyze(m, layers=[-1, -6])["longname"]) == ["2.0", "3.out_proj", "4"]
    with pytest.raises(ValueError, match=r"negative ids .* cannot be mixed"):
        wwtune.analyze(m, layers=[-1, 4])
    with pytest.raises(TypeError, match="layers must be a pattern string, a layer_id integer"):
        wwtune.analyze(m, layers=[True])


def test_savefig_writes_the_report_plots_into_the_folder(tmp_path):
    m = nn.Sequential(nn.Linear(80, 40), nn.ReLU(), nn.Linear(40, 20))
    df = wwtune.analyze(m, savefig=tmp_path / "imgs")
    names = sorted(Path(p).name for p in df.attrs["plots"])
    # linear ESDs only with mp_fit (they show the Marchenko-Pastur bulk; issue 16)
    assert names == ["esd_0.png", "esd_2.png", "layer_alphas.png"]
    assert all((tmp_path / "imgs" / n).stat().st_size > 1000 for n in names)
    assert "evals" not in df.columns  # eigenvalues were only kept for the plots


def test_plot_true_uses_weightwatchers_default_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    df = wwtune.analyze(nn.Sequential(nn.Linear(80, 40)), plot=True, keep_evals=True)
    assert (tmp_path / "ww-img" / "layer_alphas.png").is_file() and "evals" in df.columns
    assert "plots" not in wwtune.analyze(nn.Sequential(nn.Linear(80, 40))).attrs
    with pytest.raises(TypeError, match="savefig must be a folder path or True but got 3"):
        wwtune.analyze(nn.Sequential(nn.Linear(80, 40)), savefig=3)


def test_every_column_is_documented_in_COLUMNS():  # noqa: N802
    df = wwtune.analyze(model(), mp_fit=True, randomize=True, keep_evals=True)
    assert set(df.columns) <= set(wwtune.COLUMNS)
    assert "named_modules" in wwtune.COLUMNS["layer_id"] and "longname" in wwtune.COLUMNS
