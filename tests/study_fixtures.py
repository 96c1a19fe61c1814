"""Fixtures shared by the study and CLI tests (imported by them, not a conftest)."""

import shutil
from pathlib import Path

import pytest
import torch

HERE = Path(__file__).parent

torch.set_num_threads(1)


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A user's project folder: ./conf (extending the shipped configs) and the test tasks module."""
    shutil.copytree(HERE / "userproj" / "conf", tmp_path / "conf")
    shutil.copy(HERE / "study_tasks.py", tmp_path / "study_tasks.py")
    shutil.copy(HERE / "user_task_example.py", tmp_path / "user_task_example.py")
    monkeypatch.chdir(tmp_path)
    return tmp_path
