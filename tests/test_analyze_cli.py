"""`wwtune analyze PATH`: table on stdout, CSV, options mirroring analyze(), one-line errors."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import save_file

from wwtune import analyze
from wwtune.__main__ import main as wwtune_main
from wwtune.analyze_cli import _Progress, default_csv_path, format_table, main

FIX = Path(__file__).parent / "fixtures"
CNN = FIX / "cnn_digits.pt"
CNN_LAYERS = ["conv1", "conv2", "fc1", "fc2"]

torch.set_num_threads(1)


def run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(argv, stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def table_rows(stdout: str) -> dict[str, list[str]]:
    """Layer name -> the cells of its table row (the header and the rule line are skipped)."""
    lines = stdout.strip().splitlines()
    header = lines[0].split()
    assert header[:2] == ["layer", "shape"]
    return {ln.split()[0]: ln.split() for ln in lines[2:]}


def column(stdout: str, name: str) -> dict[str, str]:
    header = stdout.strip().splitlines()[0].split()
    i = header.index(name)
    # an empty cell can only be the last one (the warning column): split() drops it
    return {layer: cells[i] if i < len(cells) else "" for layer, cells in table_rows(stdout).items()}


def assert_one_line_error(code: int, err: str, expected_code: int, *needles: str) -> None:
    assert code == expected_code, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("wwtune analyze: error: ")
    assert "Traceback" not in err
    for n in needles:
        assert n in lines[0], (n, lines[0])


@pytest.fixture(scope="module")
def cnn_df() -> pd.DataFrame:
    return analyze(CNN, device="cpu")


def small_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "encoder.layer.0.attention.self.query.weight": torch.randn(48, 32, generator=g),
        "encoder.layer.0.attention.self.query.bias": torch.randn(48, generator=g),
        "encoder.layer.0.output.dense.weight": torch.randn(32, 96, generator=g),
        "embeddings.word_embeddings.weight": torch.randn(200, 32, generator=g),
        "embeddings.position_ids": torch.arange(64).unsqueeze(0),
    }


# ------------------------------------------------------------------------------------ the happy path
def test_table_and_csv_carry_analyze_results(tmp_path: Path, cnn_df: pd.DataFrame) -> None:
    csv = tmp_path / "out.csv"
    code, out, err = run([str(CNN), "--csv", str(csv), "--device", "cpu"])
    assert code == 0, err
    rows = table_rows(out)
    assert list(rows) == CNN_LAYERS
    alphas = column(out, "alpha")
    for name, a in zip(cnn_df["name"], cnn_df["alpha"], strict=True):
        assert alphas[name] == f"{a:.3f}"
    assert column(out, "shape") == {"conv1": "32×1×9", "conv2": "64×32×9", "fc1": "1024×256", "fc2": "256×10"}
    assert column(out, "warning").get("fc2") == "over-trained"  # fc2's α < 2 in the fixture
    written = pd.read_csv(csv, keep_default_na=False)
    assert list(written.columns) == list(cnn_df.columns)
    for col in ("alpha", "xmin", "D", "log_norm", "stable_rank", "num_evals"):
        np.testing.assert_allclose(written[col].to_numpy(float), cnn_df[col].to_numpy(float), rtol=1e-12)
    assert list(written["warning"]) == list(cnn_df["warning"])
    assert "4 layers analyzed" in err and str(csv) in err


def test_default_csv_goes_to_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert default_csv_path(CNN) == tmp_path / "cnn_digits_analysis.csv"
    code, _, err = run([str(CNN), "-q"])
    assert code == 0, err
    assert err == ""  # --quiet: nothing on stderr
    assert len(pd.read_csv(tmp_path / "cnn_digits_analysis.csv")) == 4


def test_no_csv_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = run([str(CNN), "--no-csv"])
    assert code == 0, err
    assert list(tmp_path.iterdir()) == []
    assert "CSV" not in err


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--layers", "fc*"], ["fc1", "fc2"]),
        (["--layers", "conv1,fc2"], ["conv1", "fc2"]),
        (["--layers", "conv1", "--layers", "fc1"], ["conv1", "fc1"]),
        (["--layer-types", "conv2d"], ["conv1", "conv2"]),
        (["--min-evals", "20"], ["conv2", "fc1"]),  # conv1 has 9 eigenvalues, fc2 10
        (["--max-evals", "100"], ["conv1", "fc2"]),
    ],
)
def test_layer_selection_options(argv: list[str], expected: list[str]) -> None:
    code, out, err = run([str(CNN), "--no-csv", *argv])
    assert code == 0, err
    assert list(table_rows(out)) == expected


def test_fit_hill_and_float32_are_passed_to_analyze(tmp_path: Path) -> None:
    csv = tmp_path / "h.csv"
    code, _, err = run([str(CNN), "--fit", "hill", "--dtype", "float32", "--csv", str(csv)])
    assert code == 0, err
    ref = analyze(CNN, fit="hill", dtype="float32", device="cpu")
    got = pd.read_csv(csv)
    np.testing.assert_allclose(got["alpha"], ref["alpha"], rtol=1e-12)
    default = analyze(CNN, device="cpu")
    assert not np.allclose(got["alpha"], default["alpha"])  # the option really changed the fit


def test_mp_fit_and_randomize_columns(tmp_path: Path) -> None:
    csv = tmp_path / "mp.csv"
    code, out, err = run(
        [str(CNN), "--mp-fit", "--randomize", "--seed", "3", "--csv", str(csv), "--layers", "conv2,fc1"]
    )
    assert code == 0, err
    header = out.splitlines()[0].split()
    assert header[-4:] == ["num_spikes", "mp_softrank", "num_traps", "rand_distance"]
    ref = analyze(CNN, mp_fit=True, randomize=True, seed=3, device="cpu", layers=["conv2", "fc1"])
    got = pd.read_csv(csv)
    for col in ("num_spikes", "sigma_mp", "num_traps", "rand_distance"):
        np.testing.assert_allclose(got[col].to_numpy(float), ref[col].to_numpy(float), rtol=1e-12)


def test_extra_columns(tmp_path: Path) -> None:
    code, out, err = run([str(CNN), "--no-csv", "--columns", "xmin,entropy"])
    assert code == 0, err
    header = out.splitlines()[0].split()
    assert header[-2:] == ["xmin", "entropy"]


def test_safetensors_file_and_hf_folder_with_bert_names(tmp_path: Path) -> None:
    folder = tmp_path / "hf_model"
    folder.mkdir()
    save_file(small_state_dict(), str(folder / "model.safetensors"))
    (folder / "config.json").write_text("{}")
    expected = {
        "embeddings.word_embeddings": "200×32",
        "encoder.layer.0.attention.self.query": "48×32",
        "encoder.layer.0.output.dense": "96×32",
    }
    for path in (folder, folder / "model.safetensors"):
        code, out, err = run([str(path), "--no-csv"])
        assert code == 0, err
        assert column(out, "shape") == expected
    assert default_csv_path(folder).name == "hf_model_analysis.csv"


def test_nan_weights_reported_per_layer_and_others_analyzed(tmp_path: Path) -> None:
    sd = small_state_dict()
    sd["encoder.layer.0.output.dense.weight"][3, 5] = float("nan")
    path = tmp_path / "nan.pt"
    torch.save(sd, path)
    code, out, err = run([str(path), "--csv", str(tmp_path / "nan.csv")])
    assert code == 0, err
    warnings = column(out, "warning")
    assert warnings["encoder.layer.0.output.dense"] == "failed"
    assert column(out, "alpha")["encoder.layer.0.attention.self.query"] != "-1.000"
    assert "NaN" in err and "encoder.layer.0.output.dense" in err  # the engine's warning, via logging
    assert "1 failed" in err


def _lines(stream: io.StringIO) -> list[str]:
    """The frames tqdm drew (carriage-return separated, as on a terminal), blank clears left out."""
    return [ln for ln in re.split(r"[\r\n]", stream.getvalue()) if ln.strip()]


def test_progress_ticker_writes_while_work_runs() -> None:
    stream = io.StringIO()
    with _Progress("model.pt", stream, enabled=True, delay=0.0, line_every=0.02):
        deadline = time.monotonic() + 30  # the "work": wait (bounded) until the ticker wrote twice
        while len(_lines(stream)) < 2:
            assert time.monotonic() < deadline, "the ticker wrote fewer than 2 lines in 30 s"
            time.sleep(0.01)
    assert all(re.fullmatch(r"analyzing model\.pt … \d+ s", ln) for ln in _lines(stream)), _lines(stream)
    silent = io.StringIO()
    threads = threading.active_count()
    with _Progress("model.pt", silent, enabled=False, delay=0.0, line_every=0.02):
        assert threading.active_count() == threads  # disabled: no ticker runs at all
    assert silent.getvalue() == ""
    short = io.StringIO()
    with _Progress("model.pt", short, enabled=True, delay=5.0):
        pass  # work shorter than the delay shows nothing
    assert short.getvalue() == ""


def test_format_table_marks_nan_and_aligns() -> None:
    df = pd.DataFrame(
        {
            "name": ["a", "long.layer"],
            "N": [4, 8],
            "M": [2, 4],
            "rf": [1, 9],
            "layer_type": ["dense", "conv2d"],
            "num_evals": [2, 36],
            "alpha": [float("nan"), 2.5],
            "warning": ["failed", ""],
        }
    )
    lines = format_table(df).splitlines()
    assert lines[0].split() == ["layer", "shape", "layer_type", "num_evals", "alpha", "warning"]
    assert lines[2].split() == ["a", "4×2", "dense", "2", "–", "failed"]
    assert lines[3].split() == ["long.layer", "8×4×9", "conv2d", "36", "2.500"]
    assert len({len(ln) for ln in lines[:2]}) == 1  # header and rule have the same width


# ------------------------------------------------------------------------------------------- errors
def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pt"
    code, out, err = run([str(missing)])
    assert_one_line_error(code, err, 2, str(missing))
    assert out == ""


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--min-evals", "0"], "must be at least 1 but got 0"),
        (["--max-evals", "ten"], "must be an integer but got 'ten'"),
        (["--dtype", "float16"], "float16"),
        (["--fit", "pareto"], "pareto"),
        (["--seed", "-3"], "cannot be negative but got -3"),
        (["--bogus"], "--bogus"),
        (["--csv", "x.csv", "--no-csv"], "not allowed with"),
        (["--layer-types", "lstm"], "lstm"),
        (["--device", "tpu"], "tpu"),
        (["--min-evals", "50", "--max-evals", "10"], "max_evals"),
    ],
)
def test_bad_options_give_one_line_errors(argv: list[str], needle: str) -> None:
    code, out, err = run([str(CNN), "--no-csv", *argv])
    assert code in (1, 2)
    assert_one_line_error(code, err, code, needle)
    assert out == ""


def test_csv_into_missing_folder_fails_before_analysis(tmp_path: Path) -> None:
    code, out, err = run([str(CNN), "--csv", str(tmp_path / "no_dir" / "x.csv")])
    assert_one_line_error(code, err, 2, "does not exist")
    assert out == ""


def test_unknown_table_column() -> None:
    code, _, err = run([str(CNN), "--no-csv", "--columns", "alpah"])
    assert_one_line_error(code, err, 2, "alpah", "available")


def test_unreadable_checkpoint_and_unsupported_file(tmp_path: Path) -> None:
    garbage = tmp_path / "broken.pt"
    garbage.write_bytes(b"this is not a checkpoint")
    code, _, err = run([str(garbage), "--no-csv"])
    assert_one_line_error(code, err, 1, "broken.pt")
    other = tmp_path / "weights.txt"
    other.write_text("1 2 3")
    code, _, err = run([str(other), "--no-csv"])
    assert_one_line_error(code, err, 1, ".txt", ".safetensors")


def test_no_analyzable_layer() -> None:
    code, _, err = run([str(CNN), "--no-csv", "--layers", "decoder.*"])
    assert_one_line_error(code, err, 1, "no analyzable layer")


def test_empty_folder(tmp_path: Path) -> None:
    code, _, err = run([str(tmp_path), "--no-csv"])
    assert_one_line_error(code, err, 2, "no weight files")


def test_help_and_dispatch_from_wwtune_main(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["--help"])
    assert code == 0
    out = capsys.readouterr().out
    assert "--layers" in out and "--min-evals" in out and "--fit" in out
    assert wwtune_main(["analyze", str(CNN), "--no-csv", "-q", "--layers", "fc1"]) == 0
    assert list(table_rows(capsys.readouterr().out)) == ["fc1"]


# --------------------------------------------------------------------------------------- subprocess
def _subprocess(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    return subprocess.run(
        [sys.executable, "-m", "wwtune", "analyze", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_subprocess_end_to_end(tmp_path: Path) -> None:
    ok = _subprocess(str(CNN), cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert list(table_rows(ok.stdout)) == CNN_LAYERS
    assert (tmp_path / "cnn_digits_analysis.csv").is_file()
    assert "Traceback" not in ok.stderr
    bad = _subprocess(str(tmp_path / "missing.safetensors"), cwd=tmp_path)
    assert bad.returncode == 2
    assert bad.stdout == ""
    assert bad.stderr.strip().count("\n") == 0 and "missing.safetensors" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_plot_writes_layer_and_esd_figures(tmp_path: Path) -> None:
    plots = tmp_path / "plots"
    code, out, err = run(
        [
            str(CNN),
            "--no-csv",
            "--mp-fit",
            "--plot",
            str(plots),
            "--band",
            "3,4",
            "--plot-format",
            "png",
            "--plot-format",
            "svg",
        ]
    )
    assert code == 0, err
    names = {p.name for p in plots.iterdir()}
    layers = list(table_rows(out))
    assert {"layer_alphas.png", "layer_alphas.svg"} <= names
    for layer in layers:  # one log-log and one linear ESD per analysed layer, in both formats
        key = layer.replace(".", "_")
        assert sum(n.startswith("esd_") and key in n.replace(".", "_") for n in names) == 4
    assert all((plots / n).stat().st_size > 1000 for n in names)
    assert f"plots ({len(names)} files)" in err


@pytest.mark.parametrize("band", ["4,3", "x", "0,1", "1,2,3"])
def test_bad_band_is_named(band: str, tmp_path: Path) -> None:
    code, _, err = run([str(CNN), "--no-csv", "--plot", str(tmp_path / "p"), "--band", band])
    assert_one_line_error(code, err, 2, "--band", band)


def test_plot_without_mp_fit_writes_no_linear_esd(tmp_path: Path) -> None:
    """Without --mp-fit there is no Marchenko–Pastur bulk to draw: only the log-log ESDs are written."""
    plots = tmp_path / "plots"
    code, _, err = run([str(CNN), "--no-csv", "--plot", str(plots)])
    assert code == 0, err
    names = {p.name for p in plots.iterdir()}
    assert "layer_alphas.png" in names and any(n.startswith("esd_") for n in names)
    assert not any(n.startswith("esd_linear_") for n in names), sorted(names)
