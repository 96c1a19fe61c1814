"""Agreement with WeightWatcher 0.7.7 on the fixtures in tests/fixtures (see README_weightwatcher.md)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from wwtune import analyze, summary
from wwtune.spectral.powerlaw import fit_power_law

FIX = Path(__file__).parent / "fixtures"
MODELS = ["mlp_random", "mlp_digits", "cnn_digits"]
FIT_COLUMNS = ["alpha", "xmin", "xmax", "D", "sigma", "num_pl_spikes"]
NORM_COLUMNS = ["log_norm", "log_spectral_norm", "norm", "lambda_max", "stable_rank", "alpha_weighted",
                "log_alpha_norm", "entropy"]

torch.set_num_threads(1)


def _rel(a, b) -> np.ndarray:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return np.abs(a - b) / np.maximum(np.abs(b), 1e-300)


@pytest.mark.parametrize("model", MODELS)
def test_fit_from_stored_eigenvalues_matches_to_1e9(model: str) -> None:
    z = np.load(FIX / f"{model}_esd.npz")
    n_layers = len(z["N"])
    small = 0
    for i in range(n_layers):
        ev = z[f"evals_{i}"]
        small += ev.size < 20
        fit = fit_power_law(ev)
        assert fit.status == "success"
        for col in FIT_COLUMNS:
            assert _rel(getattr(fit, col), z[col][i]) <= 1e-9, (model, i, col, getattr(fit, col), z[col][i])
    assert small >= 1  # every fixture has a head with < 20 eigenvalues: the small-sample rule is exercised


def test_cnn_weights_float64_agree_with_weightwatcher() -> None:
    ref = pd.read_csv(FIX / "cnn_digits_ww_default.csv")
    df = analyze(FIX / "cnn_digits.pt", dtype="float64", device="cpu")
    assert list(df["name"]) == list(ref["name"]) == ["conv1", "conv2", "fc1", "fc2"]
    assert list(df["layer_type"]) == list(ref["layer_type"])
    exact = ["N", "M", "Q", "rf", "num_evals", "matrix_rank", "rank_loss", "weak_rank_loss", "num_pl_spikes"]
    for col in exact:
        assert list(df[col]) == list(ref[col]), col
    assert np.all(_rel(df["alpha"], ref["alpha"]) < 1e-6)
    for col in NORM_COLUMNS + ["xmin", "D", "sigma", "sv_max", "spectral_norm"]:
        assert np.all(_rel(df[col], ref[col]) < 1e-6), col
    assert list(df["warning"]) == list(ref["warning"].fillna(""))
    assert list(df["status"]) == list(ref["status"])


def test_cnn_weights_float32_alpha_within_1e3() -> None:
    ref = pd.read_csv(FIX / "cnn_digits_ww_default.csv")
    df = analyze(FIX / "cnn_digits.pt", dtype="float32", device="cpu")
    assert np.all(_rel(df["alpha"], ref["alpha"]) < 1e-3)
    assert np.all(_rel(df["log_norm"], ref["log_norm"]) < 1e-5)


def test_summary_matches_weightwatcher_means() -> None:
    ref = pd.read_csv(FIX / "cnn_digits_ww_default.csv")
    got = summary(analyze(FIX / "cnn_digits.pt", device="cpu"))
    for col in ["log_norm", "alpha", "alpha_weighted", "log_alpha_norm", "log_spectral_norm", "stable_rank"]:
        assert got[col] == pytest.approx(ref[col].mean(), rel=1e-9), col
