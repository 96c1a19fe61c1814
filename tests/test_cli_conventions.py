"""Command-line conventions of `wwtune analyze` / `wwtune compare`: '-' is stdout, compare's JSON carries its
inputs, rules and passed, GitHub Actions annotations, help defaults printed once."""

from __future__ import annotations

import io
import json
import re
import threading

import pandas as pd
import pytest
import torch
from torch import nn

from wwtune import analyze_cli, compare_cli

torch.set_num_threads(1)


def _run(main, argv):  # noqa: ANN001, ANN202
    out, err = io.StringIO(), io.StringIO()
    code = main(argv, stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def checkpoints(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 48), nn.ReLU(), nn.Linear(48, 32))
    torch.save(model.state_dict(), tmp_path / "base.pt")
    with torch.no_grad():
        model[2].weight.mul_(10.0)  # the squared norm moves by a factor 100: norm>0.1 fires
    torch.save(model.state_dict(), tmp_path / "new.pt")
    return tmp_path


def test_compare_json_dash_is_stdout_with_inputs_rules_and_passed(checkpoints) -> None:
    code, out, err = _run(compare_cli.main, ["base.pt", "new.pt", "--json", "-", "--no-csv", "-q"])
    assert code == 1
    report = json.loads(out)  # stdout is the JSON and nothing else
    assert report["inputs"] == {"base": "base.pt", "new": "new.pt"}
    assert report["passed"] is False and "norm>0.1" in report["fail_on"]
    assert {"rule": "norm", "threshold": 0.1} in report["rules"]
    assert report["summary"]["flagged"] == ["2"] and len(report["layers"]) == 2
    assert "flagged by --fail-on" in err  # the table and summary went to stderr
    assert not (checkpoints / "-").exists()
    code, out, _ = _run(compare_cli.main, ["base.pt", "base.pt", "--json", "-", "--no-csv", "-q"])
    assert code == 0 and json.loads(out)["passed"] is True


def test_compare_json_file_has_the_same_fields(checkpoints) -> None:
    code, out, _ = _run(compare_cli.main, ["base.pt", "new.pt", "--json", "r.json", "--no-csv", "-q"])
    assert code == 1 and "flagged by --fail-on" in out
    report = json.loads((checkpoints / "r.json").read_text())
    assert set(report) >= {"inputs", "fail_on", "rules", "passed", "summary", "layers"}


def test_csv_dash_is_stdout_for_analyze_and_compare(checkpoints) -> None:
    code, out, err = _run(analyze_cli.main, ["base.pt", "--csv", "-", "-q"])
    assert code == 0 and not (checkpoints / "-").exists()
    df = pd.read_csv(io.StringIO(out), dtype={"name": str, "longname": str})
    assert list(df["longname"]) == ["0", "2"] and "alpha" in df.columns
    assert "layer" in err.splitlines()[0]  # the table went to stderr
    code, out, err = _run(compare_cli.main, ["base.pt", "new.pt", "--csv", "-", "-q"])
    assert code == 1 and list(pd.read_csv(io.StringIO(out), dtype={"name": str})["name"]) == ["0", "2"]
    code, out, err = _run(compare_cli.main, ["base.pt", "new.pt", "--csv", "-", "--json", "-"])
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "only one output can be '-' (stdout)" in err


def test_github_format_annotates_each_flagged_layer(checkpoints) -> None:
    code, out, _ = _run(compare_cli.main, ["base.pt", "new.pt", "--format", "github", "--no-csv", "-q"])
    assert code == 1
    notes = [ln for ln in out.splitlines() if ln.startswith("::")]
    assert len(notes) == 1
    head = r"::error file=new\.pt,title=wwtune compare%3A 2::layer 2: --fail-on "
    assert re.fullmatch(head + r"\S*norm>0\.1 \(α 2\.218 → 2\.218\)", notes[0]), notes[0]
    code, out, _ = _run(compare_cli.main, ["base.pt", "base.pt", "--format", "github", "--no-csv", "-q"])
    assert code == 0 and "::" not in out
    code, out, _ = _run(compare_cli.main, ["base.pt", "new.pt", "--no-csv", "-q"])
    assert "::error" not in out  # text (the default): no annotations


@pytest.mark.parametrize("main", [analyze_cli.main, compare_cli.main])
def test_help_prints_each_default_once(main, capsys) -> None:  # noqa: ANN001
    assert main(["--help"]) == 0
    out = capsys.readouterr().out  # argparse prints the help on sys.stdout
    assert "(default: None)" not in out and "(default: False)" not in out
    entries = re.split(r"\n  (?=-)", out)  # one entry per option
    for entry in entries:
        assert entry.count("default") <= 1, entry
    assert "(default: 8)" in " ".join(out.split())  # defaults that were not in the text are still shown


class WatchedStream(io.StringIO):
    """A stream that says when what was written to it so far holds a given text (no clock in the test)."""

    tty = False

    def __init__(self) -> None:
        super().__init__()
        self.changed = threading.Condition()

    def isatty(self) -> bool:
        return self.tty

    def write(self, text: str) -> int:
        with self.changed:
            n = super().write(text)
            self.changed.notify_all()
        return n

    def wait_for(self, text: str) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: text in self.getvalue(), timeout=30)


@pytest.mark.parametrize("tty", [False, True])
def test_what_follows_a_progress_line_starts_on_a_line_of_its_own(tty: bool) -> None:
    """A progress line drawn after its delay (a slow step, a busy machine) used to stay on the stream
    unended: tqdm clears only frames it drew from ``update()``, and the ticker draws with ``refresh()``, so
    the table printed next ran on after "… 1 s" in a log file (the README test then lost its header)."""
    from wwtune.cli_common import Progress

    stream = WatchedStream()
    stream.tty = tty
    with Progress("a vs b", stream, enabled=True, delay=0.05, line_every=0.01, verb="comparing") as progress:
        assert stream.wait_for("comparing a vs b …"), "no frame"
        progress.update(2, 39, "fc1")
        assert stream.wait_for("2/39 layers (fc1)"), "no bar frame"
    stream.write("layer  shape\n")
    last = stream.getvalue().rsplit("\n", 2)[-2]  # the line the table's header is on
    assert last.rsplit("\r", 1)[-1].replace("\x1b[K", "") == "layer  shape"


def test_readme_runner_drops_the_tqdm_progress() -> None:
    import importlib.util
    import sys
    from pathlib import Path

    from wwtune.cli_common import Progress

    path = Path(__file__).resolve().parents[1] / "docs" / "readme_outputs.py"
    spec = importlib.util.spec_from_file_location("readme_outputs_conv", path)
    readme = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = readme
    spec.loader.exec_module(readme)

    stream = WatchedStream()
    with Progress("model.pt", stream, enabled=True, delay=0.0, line_every=0.01) as progress:
        assert stream.wait_for("analyzing model.pt …"), "no heartbeat frame"
        progress.update(1, 2, "fc1")
        assert stream.wait_for("1/2 layers (fc1)"), "no bar frame"
    frames = stream.getvalue()
    assert re.search(r"analyzing model\.pt … \d+ s", frames)  # the heartbeat, whatever the time it shows
    assert readme.clean(frames + "2 layers analyzed\n") == "2 layers analyzed\n"
