"""wwtune.compare / `wwtune compare`: matching, identity, distances with known answers, verdicts, rules,
the stored baseline, bounded memory, and the command line (exit codes, CSV/JSON, plots)."""

from __future__ import annotations

import importlib
import io
import json
import math
import time
import weakref
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file

import wwtune
from wwtune.__main__ import main as wwtune_main
from wwtune.compare import DEFAULT_FAIL_ON, check_rules, compare, esd_distance, ks_distance, parse_rules
from wwtune.compare_cli import main as compare_main
from wwtune.spectral.layers import WeightSpec

torch.set_num_threads(1)
# the module (``wwtune.compare`` as an attribute is the function, re-exported by wwtune/__init__.py)
cmp = importlib.import_module("wwtune.compare")


def weights(seed: int, *shapes: tuple[int, int]) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=g) / math.sqrt(s[1]) for s in shapes]


def run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = compare_main(argv, stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


# ------------------------------------------------------------------------------------------- distances
def test_ks_distance_known_values() -> None:
    assert ks_distance([1, 2, 3], [1, 2, 3]) == 0.0
    assert ks_distance([1, 2], [5, 6]) == 1.0
    assert ks_distance([1, 2, 3, 4], [3, 4, 5, 6]) == 0.5
    assert math.isnan(ks_distance([], [1.0]))


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.floats(0.01, 100), min_size=1, max_size=60),
    st.lists(st.floats(0.01, 100), min_size=1, max_size=60),
)
def test_ks_distance_matches_scipy(a: list[float], b: list[float]) -> None:
    from scipy.stats import ks_2samp

    assert ks_distance(a, b) == pytest.approx(ks_2samp(a, b).statistic, abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(1e-3, 1e3), min_size=2, max_size=80), st.floats(1e-3, 1e3))
def test_esd_distance_of_a_rescaled_spectrum_is_the_log_of_the_factor(values: list[float], c: float) -> None:
    x = np.array(values)
    assert esd_distance(x, x) == 0.0
    assert esd_distance(x, c * x) == pytest.approx(abs(math.log10(c)), abs=1e-9)
    assert esd_distance(c * x, x) == pytest.approx(esd_distance(x, c * x), abs=1e-12)


def test_esd_distance_floors_zeros_and_compares_quantiles_of_different_sizes() -> None:
    assert esd_distance([0.0, 1.0], [1e-6, 1.0], floor=1e-3) == pytest.approx(0.0)
    assert esd_distance([1.0, 10.0], [1.0, 1.0, 10.0, 10.0]) == pytest.approx(0.0)


# ------------------------------------------------------------------------------------------- matching
def test_identical_models_are_unchanged_and_analysed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    w1, w2 = weights(0, (120, 60), (60, 30))
    sd = {"a.weight": w1, "b.weight": w2}
    calls: list[int] = []
    real = cmp.compute_esds

    def counting(specs, **kw):  # noqa: ANN001, ANN202
        calls.append(len(specs))
        return real(specs, **kw)

    monkeypatch.setattr(cmp, "compute_esds", counting)
    df = compare(sd, {k: v.clone() for k, v in sd.items()})
    assert list(df["verdict"]) == ["unchanged", "unchanged"]
    assert df["identical"].tolist() == [True, True]
    assert df["rel_frobenius_change"].tolist() == [0.0, 0.0]
    assert (df["alpha_base"] == df["alpha_new"]).all()
    assert calls == [1, 1]  # one ESD per identical pair, not two
    calls.clear()
    df = compare(sd, {"a.weight": w1 + 0.01, "b.weight": w2})
    assert calls == [2, 1] and df["identical"].tolist() == [False, True]


def test_a_nan_weight_is_not_identical_to_a_finite_one_and_bytes_decide() -> None:
    w = weights(1, (40, 20))[0]
    bad = w.clone()
    bad[0, 0] = float("nan")
    assert cmp._same_bytes(bad, bad.clone())  # NaN payloads compare equal as bytes
    assert not cmp._same_bytes(w, bad)
    assert not cmp._same_bytes(w, w.double())  # a different dtype is a change
    df = compare({"x.weight": w}, {"x.weight": bad})
    assert df.loc[0, "verdict"].startswith("fit failed") and df.loc[0, "status_new"] == "failed"


def test_removed_added_reshaped_and_renamed_layers_are_reported() -> None:
    a, b, c, f, e = weights(2, (64, 32), (64, 32), (48, 24), (40, 20), (30, 15))
    base = {"keep.weight": a, "grow.weight": b, "old_name.weight": c, "gone.weight": f}
    new = {
        "keep.weight": a,
        "grow.weight": torch.cat([b, b[:, :8]], dim=1),
        "new_name.weight": c.clone(),
        "fresh.weight": e,
    }
    df = compare(base, new).set_index("name")
    assert set(df.index) == {"keep", "grow", "new_name", "gone", "fresh"}  # old_name reported as renamed
    assert df.loc["keep", "presence"] == "both" and df.loc["keep", "verdict"] == "unchanged"
    assert df.loc["grow", "presence"] == "reshaped"
    assert df.loc["grow", "verdict"] == "reshaped 64×32 → 64×40"
    assert df.loc["new_name", "presence"] == "renamed" and df.loc["new_name", "renamed_from"] == "old_name"
    assert df.loc["new_name", "verdict"] == "renamed from old_name; unchanged"
    assert df.loc["gone", "presence"] == "removed" and math.isnan(df.loc["gone", "alpha_new"])
    assert df.loc["gone", "alpha_base"] > 0 and df.loc["gone", "shape_new"] == ""
    assert df.loc["fresh", "presence"] == "added" and df.loc["fresh", "alpha_new"] > 0
    fired = check_rules(df.reset_index(), "removed,added,reshaped")
    assert sorted(f for f in fired if f) == ["added", "removed", "reshaped"]


# ------------------------------------------------------------------------------------------- differences
def test_differences_have_known_values() -> None:
    w = weights(3, (200, 100))[0]
    g = torch.Generator().manual_seed(9)
    e = torch.randn(w.shape, generator=g)
    e = e * (0.1 * torch.linalg.norm(w) / torch.linalg.norm(e))
    df = compare({"x.weight": w, "y.weight": w}, {"x.weight": w + e, "y.weight": 2 * w}).set_index("name")
    assert df.loc["x", "rel_frobenius_change"] == pytest.approx(0.1, rel=1e-6)
    y = df.loc["y"]
    assert y["rel_frobenius_change"] == pytest.approx(1.0, rel=1e-9)
    assert y["spectral_norm_change"] == pytest.approx(1.0, rel=1e-9)  # σ_max doubles
    assert y["esd_distance"] == pytest.approx(math.log10(4), rel=1e-9)  # every λ × 4
    assert y["delta_alpha"] == pytest.approx(0.0, abs=1e-9)  # the power-law fit is scale free
    assert y["esd_ks"] > 0.5
    assert "spectrum changed" in y["verdict"] and "spectrum" in y["events"].split(",")
    assert y["delta_log_norm"] == pytest.approx(math.log10(4), rel=1e-9)  # Σλ × 4
    assert "norm grew ×2.00" in y["verdict"]
    assert check_rules(df.reset_index(), DEFAULT_FAIL_ON).tolist() == ["", "esd>0.05,norm>0.1"]


def test_rank_collapse_and_crossing_the_band() -> None:
    w, v = weights(4, (200, 100), (200, 100))
    half = w.clone()
    half[:, :60] = 0  # 60 of 100 eigenvalues lost
    df = compare({"x.weight": w}, {"x.weight": half})
    assert "rank collapse (rank loss 0 → 60)" in df.loc[0, "verdict"]
    assert check_rules(df, "rank-collapse").tolist() == ["rank-collapse"]
    a_w = wwtune.analyze({"x.weight": w}).loc[0, "alpha"]
    a_v = wwtune.analyze({"x.weight": v}).loc[0, "alpha"]
    assert abs(a_w - a_v) > 0.02
    band = (a_w - 0.01, a_w + 0.01)
    df = compare({"x.weight": w}, {"x.weight": v}, band=band)
    assert bool(df.loc[0, "crossed"])
    side = "above" if a_v > a_w else "below"
    assert f"crossed {side} the band (α {a_w:.2f} → {a_v:.2f})" in df.loc[0, "verdict"]
    assert check_rules(df, "crossed").tolist() == ["crossed"]
    assert not compare({"x.weight": w}, {"x.weight": v}, band=(0.5, 50))["crossed"].any()


def test_new_correlation_trap_with_randomize() -> None:
    w = weights(5, (300, 150))[0]
    trapped = w.clone()
    trapped[3, 7] = 40.0 * float(w.abs().max())  # one huge entry: a correlation trap
    df = compare({"x.weight": w}, {"x.weight": trapped}, randomize=True)
    assert df.loc[0, "num_traps_base"] == 0 and df.loc[0, "num_traps_new"] >= 1
    assert "new correlation trap" in df.loc[0, "verdict"]
    assert check_rules(df, "new-trap").tolist() == ["new-trap"]
    assert {"rand_distance_base", "rand_distance_new"} <= set(df.columns)
    with_mp = compare({"x.weight": w}, {"x.weight": trapped}, mp_fit=True)
    assert with_mp.loc[0, "num_spikes_base"] >= 0 and {"mp_softrank_base", "mp_softrank_new"} <= set(with_mp)
    assert "num_traps_base" not in with_mp.columns


# ------------------------------------------------------------------------------------------- rules
def test_parse_rules_and_errors() -> None:
    assert parse_rules("crossed, alpha-shift>0.5,esd>1e-2") == [
        ("crossed", None),
        ("alpha-shift", 0.5),
        ("esd", 0.01),
    ]
    assert parse_rules("") == []
    with pytest.raises(ValueError, match=r"unknown --fail-on rule 'crosed'; allowed: crossed"):
        parse_rules("crosed")
    with pytest.raises(ValueError, match=r"rule 'ks' needs a threshold ≥ 0, e.g. ks>0.5"):
        parse_rules("ks")
    with pytest.raises(ValueError, match=r"rule 'crossed' takes no threshold"):
        parse_rules("crossed>1")
    with pytest.raises(ValueError, match="needs the DataFrame returned by compare"):
        check_rules(pd.DataFrame({"name": ["a"]}), "crossed")


def test_bad_options_are_named() -> None:
    sd = {"x.weight": weights(6, (40, 20))[0]}
    with pytest.raises(ValueError, match="band must satisfy 0 < low <= high"):
        compare(sd, sd, band=(3, 2))
    with pytest.raises(ValueError, match="fit must be one of"):
        compare(sd, sd, fit="nope")
    with pytest.raises(FileNotFoundError, match="no such baseline CSV"):
        compare("missing_baseline.csv", sd)


# ------------------------------------------------------------------------------------------- baseline
def test_a_stored_analysis_is_a_baseline(tmp_path: Path) -> None:
    w1, w2 = weights(7, (120, 60), (80, 40))
    sd = {"a.weight": w1, "b.weight": w2}
    csv = tmp_path / "baseline.csv"
    wwtune.analyze(sd).to_csv(csv, index=False)
    same = compare(csv, sd)
    assert list(same["verdict"]) == ["unchanged", "unchanged"]
    assert same["identical"].isna().all() and same["rel_frobenius_change"].isna().all()
    moved = {"a.weight": 3 * w1, "b.weight": w2}
    df = compare(pd.read_csv(csv), moved).set_index("name")
    assert df.loc["a", "spectral_norm_change"] == pytest.approx(2.0, rel=1e-9)
    assert math.isnan(df.loc["a", "esd_distance"])  # no eigenvalues stored in a CSV
    assert df.loc["b", "verdict"] == "unchanged"
    kept = compare(wwtune.analyze(sd, keep_evals=True), moved).set_index("name")  # with eigenvalues
    assert kept.loc["a", "esd_distance"] == pytest.approx(math.log10(9), rel=1e-9)
    stored = tmp_path / "with_evals.csv"
    cmp.write_baseline(wwtune.analyze(sd, keep_evals=True), stored)
    from_csv = compare(stored, moved).set_index("name")  # eigenvalues read back from the CSV
    assert from_csv.loc["a", "esd_distance"] == pytest.approx(math.log10(9), rel=1e-9)
    assert from_csv.loc["b", "verdict"] == "unchanged"
    with pytest.raises(ValueError, match=r"lacks analyze\(\) column\(s\) \['layer_type'"):
        compare(pd.DataFrame({"name": ["a"]}), sd)


# ------------------------------------------------------------------------------------------- memory
def test_weights_are_read_pair_by_pair(monkeypatch: pytest.MonkeyPatch) -> None:
    """At most one base and one new weight are alive at any time (memory bounded by the largest pair)."""
    alive: set[int] = set()
    peak = [0]

    def specs_of(seed: int) -> list[WeightSpec]:
        out = []
        for i in range(6):

            def load(i: int = i) -> torch.Tensor:
                t = weights(seed if i != 2 else 0, (64 + i, 32))[0]
                key = id(t)
                alive.add(key)
                weakref.finalize(t, alive.discard, key)
                peak[0] = max(peak[0], len(alive))
                return t

            out.append(WeightSpec(f"l{i}", "dense", (64 + i, 32), load))
        return out

    sources = {"base": specs_of(10), "new": specs_of(11)}
    monkeypatch.setattr(cmp, "weight_specs", lambda src: sources[src])
    seen: list[tuple[int, int]] = []
    df = compare("base", "new", progress=lambda done, total, name: seen.append((done, total)))
    assert len(df) == 6 and df["identical"].tolist() == [False, False, True, False, False, False]
    assert peak[0] <= 2
    assert seen[-1] == (6, 6) and len(seen) == 6


# ------------------------------------------------------------------------------------------- CLI
@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("ckpt")
    a, b, c = weights(8, (128, 64), (96, 48), (64, 32))
    base = {"enc.0.weight": a, "enc.1.weight": b, "head.weight": c, "enc.0.bias": torch.zeros(128)}
    save_file(base, str(folder / "base.safetensors"))
    broken = dict(base, **{"enc.1.weight": (b * 4).contiguous()})
    save_file(broken, str(folder / "broken.safetensors"))
    return {"base": folder / "base.safetensors", "broken": folder / "broken.safetensors"}


def test_cli_same_file_exits_0_and_writes_csv(
    checkpoints: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = run([str(checkpoints["base"]), str(checkpoints["base"])])
    assert code == 0, err
    assert "3 layers compared" in out and "3 unchanged" in out and "none flagged by --fail-on" in out
    assert out.startswith("no layer changed")
    csv = pd.read_csv(tmp_path / "base_compare.csv", keep_default_na=False)
    assert list(csv["verdict"]) == ["unchanged"] * 3 and list(csv["fail_on"]) == [""] * 3


def test_cli_broken_layer_exits_1_lists_it_first_and_writes_json(
    checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    js = tmp_path / "r.json"
    code, out, err = run(
        [str(checkpoints["base"]), str(checkpoints["broken"]), "--no-csv", "--json", str(js), "--all"]
    )
    assert code == 1, err
    lines = out.strip().splitlines()
    assert lines[0].split()[:2] == ["layer", "shape"] and lines[2].split()[0] == "enc.1"
    assert lines[2].split()[-1] == "esd>0.05,norm>0.1"
    assert "1 flagged by --fail-on" in lines[-1] and lines[-1].endswith(": enc.1")
    report = json.loads(js.read_text())
    assert report["summary"]["flagged"] == ["enc.1"] and report["summary"]["identical"] == 2
    row = next(r for r in report["layers"] if r["name"] == "enc.1")
    assert row["spectral_norm_change"] == pytest.approx(3.0) and row["fail_on"] == "esd>0.05,norm>0.1"
    code, out, _ = run(
        [str(checkpoints["base"]), str(checkpoints["broken"]), "--no-csv", "--fail-on", "none"]
    )
    assert code == 0 and "no --fail-on rules" in out
    code, _, _ = run(
        [str(checkpoints["base"]), str(checkpoints["broken"]), "--no-csv", "--fail-on", "alpha-shift>0.5"]
    )
    assert code == 0  # a pure rescaling keeps α


def test_cli_errors_exit_2(checkpoints: dict[str, Path], tmp_path: Path) -> None:
    code, _, err = run([str(checkpoints["base"]), str(tmp_path / "nope.pt")])
    assert code == 2 and "NEW: no such file or folder" in err
    code, _, err = run([str(checkpoints["base"]), str(checkpoints["base"]), "--fail-on", "crossed,bogus"])
    assert code == 2 and "unknown --fail-on rule 'bogus'" in err
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    code, _, err = run([str(checkpoints["base"]), str(bad), "--no-csv"])
    assert code == 2 and "cannot read" in err


def test_cli_plots_and_entry_point(
    checkpoints: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plots = tmp_path / "plots"
    code = wwtune_main(
        [
            "compare",
            str(checkpoints["base"]),
            str(checkpoints["broken"]),
            "--no-csv",
            "-q",
            "--plot",
            str(plots),
        ]
    )
    assert code == 1
    assert sorted(p.name for p in plots.iterdir()) == ["compare_alphas.png", "esd_compare_enc.1.png"]
    assert "enc.1" in capsys.readouterr().out


def test_cli_against_a_baseline_csv_from_analyze_keep_evals(
    checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    from wwtune.analyze_cli import main as analyze_main

    baseline = tmp_path / "baseline.csv"
    code = analyze_main(
        [str(checkpoints["base"]), "--csv", str(baseline), "--keep-evals", "-q"],
        stdout=io.StringIO(),
        stderr=io.StringIO(),
    )
    assert code == 0 and "evals" in pd.read_csv(baseline).columns
    code, out, err = run([str(baseline), str(checkpoints["broken"]), "--no-csv"])
    assert code == 1, err
    assert out.strip().splitlines()[2].split()[-1] == "esd>0.05,norm>0.1"
    assert "2 unchanged" in out
    plain = tmp_path / "plain.csv"
    analyze_main(
        [str(checkpoints["base"]), "--csv", str(plain), "-q"], stdout=io.StringIO(), stderr=io.StringIO()
    )
    code, out, _ = run([str(plain), str(checkpoints["broken"]), "--no-csv"])
    assert code == 1 and out.strip().splitlines()[2].split()[-1] == "norm>0.1"  # no eigenvalues: norms only


def test_progress_line_counts_layers() -> None:
    from wwtune.cli_common import Progress

    stream = io.StringIO()
    with Progress("a vs b", stream, enabled=True, delay=0.0, line_every=0.01, verb="comparing") as progress:
        progress.update(3, 6, "enc.2")
        deadline = time.monotonic() + 10  # wait on the condition, bounded
        while "3/6" not in stream.getvalue() and time.monotonic() < deadline:
            time.sleep(0.01)
    assert "comparing a vs b …  50%|##########          | 3/6 layers (enc.2) " in stream.getvalue()


def test_docstring_examples_run() -> None:
    import doctest

    import wwtune.compare_cli as cli
    import wwtune.compare_rules as rules

    for module in (cmp, cli, rules):
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert result.attempted > 0 and result.failed == 0, module.__name__
