"""Fixtures shared by the study and CLI tests (imported by them, not a conftest)."""

import shutil
from pathlib import Path

import pytest
import torch

HERE = Path(__file__).parent

#: The keys of the ``wwtune.layers`` trial attr, as the team contract states them (spelled out, not
#: imported from wwtune, so a key dropped from the code fails the tests).
LAYER_KEYS = (
    "step",
    "name",
    "alpha",
    "num_evals",
    "eligible",
    "warning",
    "status",
    "lambda_max",
    "log_norm",
    "rank_loss",
    "num_traps",
)

torch.set_num_threads(1)


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A user's project folder: ./conf (extending the shipped configs) and the test tasks module."""
    shutil.copytree(HERE / "userproj" / "conf", tmp_path / "conf")
    shutil.copy(HERE / "study_tasks.py", tmp_path / "study_tasks.py")
    shutil.copy(HERE / "user_task_example.py", tmp_path / "user_task_example.py")
    monkeypatch.chdir(tmp_path)
    return tmp_path
