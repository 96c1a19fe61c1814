"""WeightWatcher 0.7.7's analyze()/describe() arguments: each one taken with WeightWatcher's meaning or
refused in one line; the new WeightWatcher columns agree with WeightWatcher on the shipped fixtures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import wwtune
from wwtune.spectral.fitting import fit_layer
from wwtune.spectral.powerlaw import fit_power_law
from wwtune.spectral.ww_args import WW_ARGS, WeightWatcherOptionError, ww_table_markdown

ROOT = Path(__file__).resolve().parents[1]
FIX = ROOT / "tests" / "fixtures"
#: the argument lists of WeightWatcher 0.7.7's analyze() and describe(), read from its source
SIGNATURES = json.loads((FIX / "weightwatcher_0.7.7_signatures.json").read_text())

torch.set_num_threads(1)

#: a non-default value of every WeightWatcher argument: a test run per argument
EXAMPLES = {
    "model": nn.Linear(4, 4),
    "layers": [1],
    "min_evals": 4,
    "max_evals": 0,
    "min_size": 4,
    "max_size": 1000,
    "max_N": 60,
    "glorot_fix": True,
    "plot": False,
    "randomize": True,
    "savefig": False,
    "mp_fit": True,
    "conv2d_norm": False,
    "ww2x": True,
    "pool": False,
    "conv2d_fft": True,
    "fft": True,
    "deltas": True,
    "intra": True,
    "vectors": True,
    "channels": "first",
    "stacked": True,
    "fix_fingers": "clip_xmax",
    "xmin_max": 5.0,
    "max_fingers": 5,
    "finger_thresh": 0.5,
    "fit": "TPL",
    "sparsify": False,
    "detX": True,
    "ERG": True,
    "svd_method": "accurate",
    "tolerance": 1e-4,
    "start_ids": 1,
    "pl_package": "powerlaw",
    "xmax": 2,
    "base_model": nn.Linear(4, 4),
    "peft": True,
    "inverse": True,
}


def small_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(60, 40), nn.ReLU(), nn.Sequential(nn.Linear(40, 30)))


@pytest.mark.parametrize("call", ["analyze", "describe"])
def test_every_weightwatcher_argument_is_taken_or_refused_in_one_line(call: str) -> None:
    fn = getattr(wwtune, call)
    missing = [a for a in SIGNATURES[call] if a not in WW_ARGS or a not in EXAMPLES]
    assert not missing, f"WeightWatcher {call}() arguments without a row in WW_ARGS / an example: {missing}"
    for arg in SIGNATURES[call]:
        entry = WW_ARGS[arg]
        if entry.status in ("refused", "default only"):
            with pytest.raises(WeightWatcherOptionError) as err:
                fn(small_model(), **{arg: EXAMPLES[arg]})
            text = str(err.value)
            assert "\n" not in text and f"{arg}" in text and len(text) < 250, text
            assert isinstance(err.value, TypeError)
            if entry.status == "default only":  # WeightWatcher's default value is accepted
                df = fn(small_model(), **{arg: entry.default})
                assert len(df) == 2
        else:
            df = fn(small_model(), **{arg: EXAMPLES[arg]})
            assert isinstance(df, pd.DataFrame), arg


def test_a_misspelled_option_is_one_line_with_did_you_mean() -> None:
    with pytest.raises(
        WeightWatcherOptionError,
        match=r"^analyze\(\) got an unexpected keyword argument "
        r"'fix_finger' .*did you mean 'fix_fingers'\?\)$",
    ):
        wwtune.analyze(small_model(), fix_finger="clip_xmax")
    with pytest.raises(
        WeightWatcherOptionError, match="describe\\(\\) got an unexpected keyword argument 'fit'"
    ):
        wwtune.describe(small_model(), fit="PL")
    with pytest.raises(WeightWatcherOptionError, match="xmax='force'"):
        wwtune.analyze(small_model(), xmax="force")


def test_the_migration_page_shows_the_table() -> None:
    page = (ROOT / "docs" / "weightwatcher-migration.md").read_text()
    assert ww_table_markdown() in page
    for arg in SIGNATURES["analyze"]:
        assert f"| `{arg}` |" in page


def test_name_is_weightwatchers_short_name_and_longname_the_path() -> None:
    m = small_model()
    df = wwtune.analyze(m)
    assert list(df["longname"]) == ["0", "2.0"]
    assert list(df["name"]) == ["0", "0"]  # WeightWatcher: the last part of the module path
    sd = wwtune.analyze(m.state_dict())
    assert list(sd["name"]) == list(sd["longname"]) == ["0", "2.0"]  # WeightWatcher: the key for a state_dict
    assert list(wwtune.analyze(m, layers="2.*")["longname"]) == ["2.0"]
    # the stored per-trial record keeps the unique full path
    from wwtune.score import Score, layers_record

    assert layers_record(df, Score(), 1)["name"] == ["0", "2.0"]


def test_new_columns_agree_with_weightwatcher_on_the_cnn_fixture() -> None:
    ref = pd.read_csv(FIX / "cnn_digits_ww_default.csv")
    df = wwtune.analyze(FIX / "cnn_digits.pt", device="cpu")
    assert list(df["longname"]) == list(ref["longname"])
    assert df["has_esd"].tolist() == ref["has_esd"].tolist() == [True] * 4
    np.testing.assert_allclose(df["sv_min"], ref["sv_min"], rtol=1e-6)
    rnd = wwtune.analyze(FIX / "cnn_digits.pt", device="cpu", randomize=True)
    assert (rnd["rand_num_spikes"] == rnd["num_traps"]).all()
    wwr = pd.read_csv(FIX / "cnn_digits_ww_randomize.csv")
    assert (wwr["rand_num_spikes"] == wwr["num_traps"]).all()  # the same in WeightWatcher


def _pareto(n: int, alpha: float, seed: int = 0) -> np.ndarray:
    return np.sort((1 - np.random.default_rng(seed).random(n)) ** (-1 / (alpha - 1)))


def test_clip_xmax_removes_fingers_and_reports_them() -> None:
    x = _pareto(2000, 3.0)
    plain, extra = fit_layer(x, fix_fingers="clip_xmax")
    assert extra == {"num_fingers": 0, "raw_alpha": plain.alpha} and plain.alpha == fit_power_law(x).alpha
    # three huge outliers ("fingers") on top of a small tail pull the first fit's xmin up to them
    fingers = np.sort(np.concatenate([_pareto(300, 3.5, 1), [1e4, 1.1e4, 1.2e4]]))
    fit, extra = fit_layer(fingers, fix_fingers="clip_xmax")
    raw = fit_power_law(fingers).alpha
    assert extra["raw_alpha"] == raw
    if extra["num_fingers"]:
        assert fit.alpha + 1.0 < raw
        assert fit.alpha == fit_power_law(fingers[: -(extra["num_fingers"] + 1)]).alpha


def test_xmax_clips_the_top_eigenvalues_and_tpl_recovers_a_truncation() -> None:
    x = _pareto(3000, 2.5)
    fit, _ = fit_layer(x, xmax=3)
    assert fit.alpha == fit_power_law(x[:-3]).alpha
    failed, _ = fit_layer(x[:10], xmax=6)
    assert failed.status == "failed" and "more than half" in failed.reason
    # a power law cut off exponentially: the TPL finds Λ > 0 and an α below the plain power law's
    rng = np.random.default_rng(3)
    y = _pareto(20000, 2.0, 3)
    y = np.sort(y[rng.random(y.size) < np.exp(-0.05 * y)])
    tpl, extra = fit_layer(y, "truncated_power_law")
    assert extra["Lambda"] > 0.01 and tpl.alpha < fit_power_law(y).alpha
    pure, extra = fit_layer(_pareto(4000, 3.0, 5), "truncated_power_law")
    assert extra["Lambda"] < 0.05 and abs(pure.alpha - 3.0) < 0.3


def test_ww_fit_names_and_filters() -> None:
    m = small_model()
    assert "Lambda" in wwtune.analyze(m, fit="E_TPL").columns
    assert "Lambda" in wwtune.analyze(m, fit="TPL", pl_package="powerlaw").columns
    assert wwtune.analyze(m, fit="PL")["alpha"].tolist() == wwtune.analyze(m)["alpha"].tolist()
    assert list(wwtune.analyze(m, max_N=50)["longname"]) == ["2.0"]  # fc 60→40 has N = 60
    assert list(wwtune.analyze(m, layers=[-1])["longname"]) == ["2.0"]  # WeightWatcher: skip layer 1
    assert list(wwtune.analyze(m, start_ids=1)["layer_id"]) == [2, 5]
    assert list(wwtune.analyze(m, min_size=35)["longname"]) == ["0"]
    assert len(wwtune.analyze(m, max_evals=0)) == 2  # WeightWatcher: 0 is no limit
    assert wwtune.analyze(m, tolerance=1e9)["weak_rank_loss"].tolist() == [40, 30]
    with pytest.raises(ValueError, match="not both"):
        wwtune.analyze(m, min_size=5, min_evals=6)
    with pytest.raises(ValueError, match="cannot be mixed"):
        wwtune.analyze(m, layers=[-1, 4])


def test_describe_lists_the_layers_without_computing() -> None:
    df = wwtune.describe(small_model())
    assert list(df.columns) == [
        "layer_id",
        "name",
        "longname",
        "layer_type",
        "N",
        "M",
        "Q",
        "rf",
        "num_evals",
    ]
    assert list(df["num_evals"]) == [40, 30]


SHARED = [
    ROOT.parent.parent / "shared" / "reference" / "weightwatcher-0.7.7",
    Path("/work/shared/reference/weightwatcher-0.7.7"),
]


def _weights(model: str) -> Path:
    return next(
        (d / f"{model}.pt" for d in [FIX, *SHARED] if (d / f"{model}.pt").is_file()), FIX / f"{model}.pt"
    )


@pytest.mark.parametrize("model", ["mlp_random", "mlp_digits", "cnn_digits"])
@pytest.mark.parametrize("options", ['{"fix_fingers": "clip_xmax"}', '{"xmax": 2}', '{"pool": false}'])
def test_fit_options_agree_with_weightwatcher(model: str, options: str) -> None:
    """WeightWatcher 0.7.7's own analyze(**options) on the fixture weights (fixtures/make_ww_options.py)."""
    ref = pd.read_csv(FIX / f"ww_options_{model}.csv")
    ref = ref[ref["options"] == options].reset_index(drop=True)
    weights = _weights(model)
    if not weights.is_file():
        pytest.skip(f"{model}.pt is in the shared reference folder, not here")
    df = wwtune.analyze(weights, device="cpu", **json.loads(options))
    assert list(df["longname"]) == list(ref["longname"])
    for col in ("layer_id", "N", "M", "rf", "num_evals"):
        assert df[col].tolist() == ref[col].tolist(), col
    failed = ref["alpha"] == -1
    assert (df["status"] == "failed").tolist() == failed.tolist()
    ok = ~failed
    np.testing.assert_allclose(df["alpha"][ok], ref["alpha"][ok], rtol=1e-6)
    np.testing.assert_allclose(df["xmin"][ok], ref["xmin"][ok], rtol=1e-6)
    np.testing.assert_allclose(df["xmax"][ok], ref["xmax"][ok], rtol=1e-6)
    np.testing.assert_allclose(df["D"][ok], ref["D"][ok], rtol=1e-6)
    assert df["num_pl_spikes"][ok].tolist() == ref["num_pl_spikes"][ok].tolist()
    np.testing.assert_allclose(df["sv_min"], ref["sv_min"], rtol=1e-6)
    if "num_fingers" in ref.columns and ref["num_fingers"].notna().all():
        assert df["num_fingers"].tolist() == ref["num_fingers"].astype(int).tolist()
        np.testing.assert_allclose(df["raw_alpha"], ref["raw_alpha"], rtol=1e-6)
