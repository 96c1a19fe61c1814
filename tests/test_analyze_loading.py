"""`analyze` on broken files (issue 14): the file named, what is wrong said, no unsafe advice; skipped
tensors listed; shard paths kept inside the folder; a corrupt shard reported and the others analysed."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from wwtune import analyze
from wwtune.analyze_cli import main

torch.set_num_threads(1)


def run(argv: list[str]) -> tuple[int, str]:
    import io

    out, err = io.StringIO(), io.StringIO()
    code = main(argv, stdout=out, stderr=err)
    return code, err.getvalue()


def weights(seed: int = 0) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return {"a.weight": torch.randn(48, 32), "b.weight": torch.randn(64, 32)}


@pytest.mark.parametrize(
    "content, says",
    [
        (b"", "is empty (0 bytes)"),
        (b"hello, I am text\n", "is not a PyTorch checkpoint"),
        (b"\0" * 4096, "is not a PyTorch checkpoint"),
    ],
)
def test_broken_pt_files_are_named_and_described_without_unsafe_advice(tmp_path: Path, content, says) -> None:
    path = tmp_path / "model.pt"
    path.write_bytes(content)
    code, err = run([str(path), "--no-csv"])
    assert code == 1
    assert err.count("\n") == 1 and str(path) in err and says in err, err
    assert "weights_only" not in err and "EOFError" not in err and "pop from empty list" not in err


def test_a_pt_link_to_dev_zero_is_not_a_checkpoint(tmp_path: Path) -> None:
    link = tmp_path / "zero.pt"
    os.symlink("/dev/zero", link)
    with pytest.raises(ValueError, match="not a regular file") as err:
        analyze(link)
    assert "weights_only" not in str(err.value) and str(link) in str(err.value)


def test_a_truncated_checkpoint_says_damaged_not_weights_only(tmp_path: Path) -> None:
    path = tmp_path / "cut.pt"
    torch.save(weights(), path)
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(ValueError, match="damaged or truncated") as err:
        analyze(path)
    assert "weights_only" not in str(err.value)


def test_int8_and_bool_weights_are_listed_as_skipped(tmp_path: Path, caplog) -> None:
    sd = {
        **weights(),
        "q.weight": torch.zeros(48, 32, dtype=torch.int8),
        "m.weight": torch.ones(40, 40).bool(),
    }
    torch.save(sd, tmp_path / "mixed.pt")
    save_file(sd, str(tmp_path / "mixed.safetensors"))
    for name in ("mixed.pt", "mixed.safetensors"):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="wwtune.spectral.layers"):
            df = analyze(tmp_path / name, min_evals=8)
        assert sorted(df["name"]) == ["a", "b"]
        assert "skipped 2 weight tensor(s) that are not floating point" in caplog.text, name
        assert "q.weight (int8)" in caplog.text.replace("I8", "int8") or "q.weight (I8)" in caplog.text
        assert "m.weight" in caplog.text


def test_an_int8_only_checkpoint_says_why_nothing_was_found(tmp_path: Path) -> None:
    torch.save({"q.weight": torch.zeros(48, 32, dtype=torch.int8)}, tmp_path / "int8.pt")
    code, err = run([str(tmp_path / "int8.pt"), "--no-csv"])
    assert code == 1
    assert "skipped 1 weight tensor(s) that are not floating point: q.weight (int8)" in err, err


def _sharded(folder: Path, index: dict[str, str]) -> None:
    folder.mkdir(exist_ok=True)
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": index}))


def test_shard_entries_outside_the_folder_are_refused(tmp_path: Path) -> None:
    save_file(weights(), str(tmp_path / "other.safetensors"))  # a file beside, not inside, the model
    folder = tmp_path / "model"
    _sharded(folder, {"a.weight": "../other.safetensors"})
    with pytest.raises(ValueError, match="outside the model folder") as err:
        analyze(folder)
    assert "../other.safetensors" in str(err.value)


def test_a_weight_file_linking_outside_the_folder_is_refused_like_the_same_shard_entry(
    tmp_path: Path,
) -> None:
    """Issue 24.8: a model.safetensors link out of the folder was read silently, the same link named in the
    index refused. Both refused now; a Hugging Face hub cache snapshot (links into its blobs/) still loads."""
    save_file(weights(), str(tmp_path / "other.safetensors"))
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model.safetensors").symlink_to(tmp_path / "other.safetensors")
    with pytest.raises(ValueError, match="link outside it") as err:
        analyze(folder)
    assert "model.safetensors" in str(err.value) and str(folder) in str(err.value)
    _sharded(folder, {"a.weight": "model.safetensors"})  # the same link named in an index
    with pytest.raises(ValueError, match="outside the model folder"):
        analyze(folder)
    hub = tmp_path / "models--x--y"
    (hub / "blobs").mkdir(parents=True)
    save_file(weights(), str(hub / "blobs" / "0123abcd"))
    snapshot = hub / "snapshots" / "rev1"
    snapshot.mkdir(parents=True)
    (snapshot / "model.safetensors").symlink_to("../../blobs/0123abcd")
    assert sorted(analyze(snapshot, min_evals=8)["name"]) == ["a", "b"]


@pytest.mark.parametrize(
    "index",
    [
        b"[]",
        b'{"weight_map": 1}',
        b'{"weight_map": {"a.weight": 1}}',
        b'{"weight_map": {"a.weight": null}}',
        b"{",
    ],
)
def test_a_malformed_shard_index_is_one_error_naming_the_file(tmp_path: Path, index: bytes) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model.safetensors.index.json").write_bytes(index)
    with pytest.raises(ValueError, match="is not a valid shard index") as err:
        analyze(folder)
    assert str(folder / "model.safetensors.index.json") in str(err.value) and "PosixPath" not in str(
        err.value
    )
    code, message = run([str(folder), "--no-csv"])
    assert code != 0 and "is not a valid shard index" in message and "Traceback" not in message


def test_a_corrupt_shard_is_reported_and_the_other_shards_analysed(tmp_path: Path, caplog) -> None:
    folder = tmp_path / "model"
    _sharded(
        folder, {"a.weight": "s1.safetensors", "b.weight": "s1.safetensors", "c.weight": "s2.safetensors"}
    )
    save_file(weights(), str(folder / "s1.safetensors"))
    (folder / "s2.safetensors").write_bytes(b"\x07\x00garbage")
    with caplog.at_level(logging.WARNING, logger="wwtune.spectral.layers"):
        df = analyze(folder, min_evals=8)
    assert sorted(df["name"]) == ["a", "b"]
    assert "shard s2.safetensors is unreadable" in caplog.text and "c.weight" in caplog.text


def test_all_shards_corrupt_is_one_error_naming_them(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    _sharded(folder, {"a.weight": "s1.safetensors"})
    (folder / "s1.safetensors").write_bytes(b"")
    with pytest.raises(ValueError, match="no shard of .* could be read: s1.safetensors"):
        analyze(folder)


def test_a_good_module_still_loads(tmp_path: Path) -> None:
    torch.save(nn.Linear(32, 48).state_dict(), tmp_path / "ok.pt")
    assert list(analyze(tmp_path / "ok.pt", min_evals=8)["name"]) == ["weight"]
