"""Layer discovery and the ESD of each layer kind, from modules, state_dicts, files and HF folders."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from wwtune import COLUMNS, analyze
from wwtune.spectral import esd as esd_mod
from wwtune.spectral.columns import ALWAYS

torch.set_num_threads(1)


def svd_evals(mats: list[np.ndarray], scale: float = 1.0) -> np.ndarray:
    """Reference ESD: squared singular values of each matrix (times scale), pooled and sorted."""
    sq = [np.linalg.svd(np.asarray(m, dtype=np.float64), compute_uv=False) ** 2 * scale for m in mats]
    return np.sort(np.concatenate(sq))


def evals_of(df: pd.DataFrame, name: str) -> np.ndarray:
    return df.set_index("longname").loc[name, "evals"]


class Conv1D(nn.Module):
    """Hugging Face GPT-2 style layer: weight stored (in, out), found by class name."""

    def __init__(self, nf: int, nx: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(nx, nf))
        self.bias = nn.Parameter(torch.zeros(nf))


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.query = nn.Linear(24, 24)
        self.c_attn = Conv1D(72, 24)
        self.attn = nn.MultiheadAttention(24, 4)
        self.norm = nn.LayerNorm(24)


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(300, 24)
        self.encoder = nn.ModuleList([Block(), Block()])
        self.c1 = nn.Conv1d(6, 16, 5)
        self.c2 = nn.Conv2d(32, 16, (2, 4))  # out < in, even kernel: no N/M swap
        self.c3 = nn.Conv3d(4, 12, 3)
        self.head = nn.Linear(24, 10)


@pytest.fixture(scope="module")
def net() -> Net:
    torch.manual_seed(0)
    return Net()


@pytest.fixture(scope="module")
def df(net: Net) -> pd.DataFrame:
    return analyze(net, keep_evals=True, device="cpu")


def test_every_documented_column_present_and_names_are_module_paths(df: pd.DataFrame) -> None:
    assert set(ALWAYS) <= set(df.columns) and set(df.columns) <= set(COLUMNS)
    assert list(df["longname"]) == [
        "embed",
        "encoder.0.query",
        "encoder.0.c_attn",
        "encoder.0.attn.in_proj.q",
        "encoder.0.attn.in_proj.k",
        "encoder.0.attn.in_proj.v",
        "encoder.0.attn.out_proj",
        "encoder.1.query",
        "encoder.1.c_attn",
        "encoder.1.attn.in_proj.q",
        "encoder.1.attn.in_proj.k",
        "encoder.1.attn.in_proj.v",
        "encoder.1.attn.out_proj",
        "c1",
        "c2",
        "c3",
        "head",
    ]
    types = dict(zip(df["longname"], df["layer_type"], strict=True))
    assert types["embed"] == "embedding" and types["c1"] == "conv1d" and types["c2"] == "conv2d"
    assert types["c3"] == "conv3d" and types["encoder.0.c_attn"] == "dense"


def test_dense_embedding_and_hf_conv1d_evals(net: Net, df: pd.DataFrame) -> None:
    np.testing.assert_allclose(
        evals_of(df, "embed"), svd_evals([net.embed.weight.detach().numpy()]), rtol=1e-9, atol=1e-9
    )
    cw = net.encoder[0].c_attn.weight.detach().numpy()
    np.testing.assert_allclose(evals_of(df, "encoder.0.c_attn"), svd_evals([cw]), rtol=1e-9, atol=1e-9)
    row = df.set_index("longname").loc["encoder.0.c_attn"]
    assert (row.N, row.M, row.rf, row.num_evals) == (72, 24, 1, 24)


def test_multihead_attention_in_proj_split_into_q_k_v(net: Net, df: pd.DataFrame) -> None:
    w = net.encoder[1].attn.in_proj_weight.detach().numpy()
    for i, part in enumerate("qkv"):
        got = evals_of(df, f"encoder.1.attn.in_proj.{part}")
        np.testing.assert_allclose(got, svd_evals([w[24 * i : 24 * (i + 1)]]), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", ["c1", "c2", "c3"])
def test_conv_slices_pooled_and_halved_without_nm_swap(net: Net, df: pd.DataFrame, name: str) -> None:
    w = getattr(net, name).weight.detach().numpy()
    out_, in_ = w.shape[:2]
    slices = w.reshape(out_, in_, -1)
    ref = svd_evals([slices[:, :, p] for p in range(slices.shape[2])], scale=0.5)
    np.testing.assert_allclose(evals_of(df, name), ref, rtol=1e-9, atol=1e-12)
    row = df.set_index("longname").loc[name]
    assert (row.N, row.M) == (max(out_, in_), min(out_, in_))
    assert row.rf == slices.shape[2] and row.num_evals == min(out_, in_) * slices.shape[2]


def test_state_dict_gives_the_same_rows_typed_by_shape(net: Net, df: pd.DataFrame) -> None:
    sd = analyze(net.state_dict(), keep_evals=True, device="cpu")
    assert sorted(sd["longname"]) == sorted(df["longname"])
    a, b = df.set_index("longname"), sd.set_index("longname")
    for name in df["longname"]:
        np.testing.assert_array_equal(a.loc[name, "evals"], b.loc[name, "evals"])
    assert b.loc["embed", "layer_type"] == "embedding" and b.loc["c2", "layer_type"] == "conv2d"
    assert b.loc["encoder.0.c_attn", "layer_type"] == "dense"


def test_pt_file_wrapped_checkpoint_and_safetensors(tmp_path: Path, net: Net, df: pd.DataFrame) -> None:
    torch.save({"state_dict": net.state_dict(), "epoch": 3}, tmp_path / "ckpt.pth")
    st_path = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(st_path))
    for src in (tmp_path / "ckpt.pth", st_path):
        got = analyze(src, device="cpu").set_index("longname")
        ref = df.set_index("longname")
        np.testing.assert_allclose(got.loc[ref.index, "alpha"], ref["alpha"], rtol=1e-12)


def test_sharded_hf_folder_reads_each_tensor_once(
    tmp_path: Path, net: Net, df: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    sd = {k: v.contiguous() for k, v in net.state_dict().items()}
    keys = sorted(sd)
    shards = {
        "model-00001-of-00002.safetensors": keys[: len(keys) // 2],
        "model-00002-of-00002.safetensors": keys[len(keys) // 2 :],
    }
    for fname, ks in shards.items():
        save_file({k: sd[k] for k in ks}, str(tmp_path / fname))
    index = {"metadata": {}, "weight_map": {k: f for f, ks in shards.items() for k in ks}}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    (tmp_path / "config.json").write_text("{}")

    import safetensors

    loads: list[str] = []
    real_open = safetensors.safe_open

    class Spy:
        def __init__(self, *a, **k):  # noqa: ANN002, ANN003
            self.f = real_open(*a, **k)

        def __enter__(self):  # noqa: ANN204
            self.inner = self.f.__enter__()
            return self

        def __exit__(self, *exc):  # noqa: ANN002, ANN204
            return self.f.__exit__(*exc)

        def keys(self):  # noqa: ANN201
            return self.inner.keys()

        def get_slice(self, k):  # noqa: ANN001, ANN201
            return self.inner.get_slice(k)

        def get_tensor(self, k):  # noqa: ANN001, ANN201
            loads.append(k)
            return self.inner.get_tensor(k)

    monkeypatch.setattr(safetensors, "safe_open", Spy)
    got = analyze(tmp_path, device="cpu").set_index("longname")
    ref = df.set_index("longname")
    np.testing.assert_allclose(got.loc[ref.index, "alpha"], ref["alpha"], rtol=1e-12)
    # only weight matrices are read (no biases/norms), each exactly once, in_proj once per q/k/v
    assert all(k.endswith("weight") for k in loads)
    assert len(loads) == len(set(loads)) + 2 * 2  # 2 MHA in_proj tensors, read for q, k and v


def test_batched_grams_and_chunked_conversion_match_one_by_one(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(40, 64), nn.Linear(64, 40), nn.Linear(40, 200), nn.Embedding(900, 40))
    batched = analyze(model, keep_evals=True, device="cpu")
    monkeypatch.setattr(esd_mod, "_CHUNK_ELEMENTS", 1000)  # forces row-chunked Gram accumulation
    monkeypatch.setattr(esd_mod, "_BATCH_ELEMENTS", 1)  # one layer per eigvalsh call
    single = analyze(model, keep_evals=True, device="cpu")
    for a, b in zip(batched["evals"], single["evals"], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10)


def test_selection_by_pattern_type_and_eval_counts(net: Net) -> None:
    got = analyze(net, layers="encoder.*.attn.*", device="cpu")
    assert all(n.startswith(("encoder.0.attn", "encoder.1.attn")) for n in got["longname"]) and len(got) == 8
    assert set(analyze(net, layer_types=["conv2d", "conv3d"], device="cpu")["longname"]) == {"c2", "c3"}
    got = analyze(net, min_evals=30, max_evals=128, device="cpu")
    assert got["num_evals"].between(30, 128).all() and set(got["longname"]) == {"c1", "c2", "c3"}
    assert "head" in set(analyze(net, device="cpu")["longname"])  # 10 evals ≥ default min_evals=8


def test_float32_option_close_to_float64(net: Net, df: pd.DataFrame) -> None:
    f32 = analyze(net, dtype="float32", device="cpu")
    ok = df["status"] == "success"
    np.testing.assert_allclose(f32["log_norm"][ok], df["log_norm"][ok], rtol=1e-5)
    np.testing.assert_allclose(f32["lambda_max"][ok], df["lambda_max"][ok], rtol=1e-4)


def test_device_auto_runs_on_what_is_available(net: Net) -> None:
    got = analyze(net.head, device="auto")
    assert len(got) == 1 and got["status"].iloc[0] == "success"


def test_transposed_conv_and_hill_fit_option() -> None:
    torch.manual_seed(2)
    model = nn.Sequential(nn.ConvTranspose2d(8, 24, 3), nn.Linear(64, 200))
    df = analyze(model, keep_evals=True, device="cpu")
    w = model[0].weight.detach().numpy()  # (in, out, kh, kw)
    ref = svd_evals([w[:, :, i, j].T for i in range(3) for j in range(3)], scale=0.5)
    np.testing.assert_allclose(df["evals"].iloc[0], ref, rtol=1e-9, atol=1e-12)
    assert (df["N"].iloc[0], df["M"].iloc[0], df["rf"].iloc[0]) == (24, 8, 9)
    hill = analyze(model, fit="hill", device="cpu")
    ev = df["evals"].iloc[1]
    xmin = np.sort(ev)[ev.size // 2]
    tail = ev[ev >= xmin]
    assert hill["xmin"].iloc[1] == xmin
    assert hill["alpha"].iloc[1] == pytest.approx(1 + tail.size / np.sum(np.log(tail / xmin)), rel=1e-12)


def test_hf_folder_with_pytorch_bin_and_non_weight_entries(tmp_path: Path) -> None:
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(20, 30), nn.BatchNorm1d(30), nn.Linear(30, 12))
    torch.save(model.state_dict(), tmp_path / "pytorch_model.bin")  # has an int64 num_batches_tracked
    torch.save({"lr": 0.1}, tmp_path / "training_args.bin")  # ignored: not weights
    got = analyze(tmp_path, device="cpu")
    assert list(got["longname"]) == ["0", "2"]
    np.testing.assert_allclose(got["alpha"], analyze(model, device="cpu")["alpha"], rtol=1e-12)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_syrk_gram_path_equals_the_matmul_path(monkeypatch: pytest.MonkeyPatch, dtype: str) -> None:
    """Single-threaded torch takes SciPy's syrk (lower triangle only), multi-threaded torch a matmul."""
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(200, 90), nn.Linear(90, 300), nn.Embedding(1000, 64))
    monkeypatch.setattr(esd_mod, "_CHUNK_ELEMENTS", 5000)  # the embedding is accumulated over row chunks
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        via_syrk = analyze(model, dtype=dtype, keep_evals=True)
        monkeypatch.setattr(esd_mod, "_SYRK", {})
        via_matmul = analyze(model, dtype=dtype, keep_evals=True)
    finally:
        torch.set_num_threads(threads)
    tol = 1e-12 if dtype == "float64" else 1e-5
    for a, b in zip(via_syrk["evals"], via_matmul["evals"], strict=True):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol * float(b.max()))
    alpha_tol = 1e-9 if dtype == "float64" else 1e-3
    np.testing.assert_allclose(via_syrk["alpha"], via_matmul["alpha"], rtol=alpha_tol)
