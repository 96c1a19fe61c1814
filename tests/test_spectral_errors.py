"""Bad input: clear errors at the boundary, or a per-layer 'failed' row, never a deep traceback."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from wwtune import analyze, summary

torch.set_num_threads(1)


def mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(30, 40), nn.ReLU(), nn.Linear(40, 20), nn.Linear(20, 10))


@pytest.mark.parametrize("source, kind", [(42, "int"), ([1, 2], "list"), (np.ones((3, 3)), "ndarray")])
def test_non_model_objects_raise_type_error(source: object, kind: str) -> None:
    with pytest.raises(TypeError, match=f"nn.Module.*but got {kind}"):
        analyze(source)


def test_missing_file_and_unsupported_extension(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        analyze(tmp_path / "nope.pt")
    (tmp_path / "w.txt").write_text("hello")
    with pytest.raises(ValueError, match=r"unsupported file extension '\.txt'.*\.safetensors"):
        analyze(tmp_path / "w.txt")
    with pytest.raises(FileNotFoundError, match="no weight files"):
        analyze(tmp_path)  # a folder without weights


def test_corrupt_or_pickled_files_get_a_clear_value_error(tmp_path: Path) -> None:
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="bad.pt' is not a PyTorch checkpoint"):
        analyze(tmp_path / "bad.pt")
    (tmp_path / "bad.safetensors").write_bytes(b"\x00\x01")
    with pytest.raises(ValueError, match="cannot read .*bad.safetensors"):
        analyze(tmp_path / "bad.safetensors")
    torch.save(mlp(), tmp_path / "full_model.pt")  # a pickled module, not weights only
    with pytest.raises(ValueError, match="pickled Python objects") as err:
        analyze(tmp_path / "full_model.pt")
    assert "weights_only=False" not in str(err.value)  # never nudge users to switch the safety off
    torch.save({"epoch": 3, "note": "x"}, tmp_path / "meta.pt")
    with pytest.raises(ValueError, match="dict without tensors"):
        analyze(tmp_path / "meta.pt")


def test_nan_inf_weights_fail_that_layer_only(caplog: pytest.LogCaptureFixture) -> None:
    model = mlp()
    with torch.no_grad():
        model[2].weight[3, 5] = float("nan")
        model[2].weight[0, 0] = float("inf")
    with caplog.at_level(logging.WARNING, logger="wwtune.spectral"):
        df = analyze(model, device="cpu").set_index("name")
    assert df.loc["2", "status"] == "failed" and df.loc["2", "warning"] == "failed"
    assert df.loc["2", "alpha"] == -1 and "2 NaN/Inf" in df.loc["2", "fail_reason"]
    assert (df.drop(index="2")["status"] == "success").all()
    assert "NaN/Inf" in caplog.text and "2" in caplog.text


def test_all_zero_and_rank_one_matrices_fail_without_crashing() -> None:
    model = mlp()
    with torch.no_grad():
        model[0].weight.zero_()
        model[2].weight.copy_(torch.outer(torch.arange(1.0, 41.0)[:20], torch.ones(40)))
    df = analyze(model, device="cpu").set_index("name")
    zero, rank1 = df.loc["0"], df.loc["2"]
    assert zero.status == "failed" and "only 0 eigenvalue" in zero.fail_reason
    assert zero.matrix_rank == 0 and zero.log_norm == -np.inf and zero.weak_rank_loss == 30
    assert rank1.status == "failed" and "only 1 eigenvalue" in rank1.fail_reason
    assert rank1.matrix_rank == 1 and rank1.rank_loss == 19
    assert df.loc["3", "status"] == "success"
    assert np.isfinite(summary(df.reset_index())["alpha"])  # summary skips failed layers


def test_model_without_analyzable_layer() -> None:
    with pytest.raises(ValueError, match="no analyzable layer: 0 weight matrices"):
        analyze(nn.Sequential(nn.ReLU(), nn.LayerNorm(4)))
    with pytest.raises(ValueError, match="none left after layers=\\['nomatch\\*'\\]"):
        analyze(mlp(), layers="nomatch*")
    with pytest.raises(ValueError, match="mapping passed to analyze\\(\\) holds a dict without tensors"):
        analyze({"state_dict": 3, "w": 5})


@pytest.mark.parametrize(
    "options, error, message",
    [
        ({"min_evals": -1}, ValueError, "min_evals cannot be less than 1 but got -1"),
        ({"min_evals": 2.5}, TypeError, "min_evals must be an integer but got 2.5"),
        ({"max_evals": 5, "min_evals": 10}, ValueError, "max_evals cannot be less than min_evals"),
        (
            {"fit": "truncated"},
            ValueError,
            "fit must be one of \\['power_law', 'hill', 'truncated_power_law', 'PL', 'TPL', 'E_TPL'\\] "
            "but got 'truncated'",
        ),
        (
            {"dtype": "float16"},
            ValueError,
            "dtype must be one of \\['float64', 'float32'\\] but got 'float16'",
        ),
        ({"device": "tpu"}, ValueError, "device must be 'auto'.* but got 'tpu'"),
        ({"layer_types": ["dense", "lstm"]}, ValueError, "layer_types must be among .* but got \\['lstm'\\]"),
        (
            {"layers": 3.5},
            TypeError,
            "layers must be a pattern string, a layer_id integer, or a non-empty list of them but got 3.5",
        ),
        ({"randomize": "yes"}, TypeError, "randomize must be True or False but got 'yes'"),
        ({"seed": -2}, ValueError, "seed cannot be less than 0 but got -2"),
        ({"colour": "red"}, TypeError, "colour"),
    ],
)
def test_bad_options_name_option_value_and_allowed(options: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        analyze(mlp(), **options)


def test_summary_rejects_other_objects() -> None:
    with pytest.raises(TypeError, match="DataFrame"):
        summary({"alpha": [1]})
