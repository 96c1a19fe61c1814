"""A newcomer's first minutes, from a fresh clone of the committed HEAD: the README's two set-up commands
(`make quickstart`, `make test`), with a reduced trial count and a few tests, then the documented outputs.
Also `make newcomer`. pip may reuse its download cache; nothing else is shared with this checkout."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _base_python() -> str:
    """The interpreter the venv was made from: a newcomer's `python3`, not this test's venv."""
    for candidate in (Path(sys.base_prefix) / "bin" / "python3", Path(sys.base_prefix) / "bin" / "python"):
        if candidate.exists():
            return str(candidate)
    return "python3"


def _make(clone: Path, *args: str, timeout: float) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "MAKEFLAGS")}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if ".venv" not in p)
    env.update(OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    return subprocess.run(
        ["make", *args, f"PY={_base_python()}"],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_a_fresh_clone_sets_up_and_runs_the_quickstart_with_the_readme_commands(tmp_path):
    if shutil.which("git") is None or shutil.which("make") is None:
        pytest.fail("the newcomer test needs git and make")
    clone = tmp_path / "wwtune"
    cloned = subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], capture_output=True, text=True)
    assert cloned.returncode == 0, cloned.stderr
    assert not (clone / ".venv").exists()

    quick = _make(clone, "quickstart", "ARGS=study.n_trials=4", timeout=1200)
    said = quick.stdout + quick.stderr
    assert quick.returncode == 0, said[-5000:]
    # a quiet install: nothing from our own packaging (pip's notes about this machine's index are not ours)
    for noise in ("BuildBackendWarning", "Package would be ignored", "deprecated", "SetuptoolsDeprecation"):
        assert noise not in said, said[-5000:]
    assert "source .venv/bin/activate" in said  # the venv step is said
    # the documented outputs of the quickstart (README, "Quickstart")
    assert "Study 'quickstart': 4 trials" in quick.stdout
    for line in (
        "Returned trial #",
        "per-layer alpha at step 20",
        "Trust in the α score:",
        "Best parameters: ",
    ):
        assert line in quick.stdout, line
    assert "Report: studies/quickstart/report.html" in quick.stdout
    for path in ("studies/quickstart/report.html", "studies/quickstart/best_params.yaml"):
        assert (clone / path).is_file(), path
    # the venv's commands, as the README says to use them
    wwtune = str(clone / ".venv" / "bin" / "wwtune")
    helped = subprocess.run([wwtune, "--help"], capture_output=True, text=True)
    assert helped.returncode == 0 and "mode=optimize|report|advise" in helped.stdout

    tested = _make(clone, "test", "PYTEST_ARGS=tests/test_score.py tests/test_packaging.py", timeout=600)
    assert tested.returncode == 0, (tested.stdout + tested.stderr)[-5000:]
    assert " passed" in tested.stdout and "failed" not in tested.stdout
