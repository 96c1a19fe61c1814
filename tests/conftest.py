"""Shared fixtures."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from pg_cluster import PgCluster, PgUnavailable

HERE = Path(__file__).parent

torch.set_num_threads(1)  # tests share two cores; the tiny models train fastest on one thread


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A user's project folder: ./conf (extending the shipped configs) and the test tasks module."""
    shutil.copytree(HERE / "userproj" / "conf", tmp_path / "conf")
    shutil.copy(HERE / "study_tasks.py", tmp_path / "study_tasks.py")
    shutil.copy(HERE / "user_task_example.py", tmp_path / "user_task_example.py")
    monkeypatch.chdir(tmp_path)
    return tmp_path


# --- PostgreSQL: one throw-away cluster per test session (tests/pg_cluster.py) ----------------------


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """A running PostgreSQL server on 127.0.0.1 with password auth; skipped only without server binaries."""
    try:
        cluster = PgCluster.start()
    except PgUnavailable as e:
        if os.environ.get("WWTUNE_REQUIRE_SYSTEM_TESTS"):  # CI installs the binaries: missing ones fail
            pytest.fail(f"WWTUNE_REQUIRE_SYSTEM_TESTS is set but PostgreSQL cannot start: {e}")
        pytest.skip(f"PostgreSQL tests need server binaries: {e}")
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def pg_url(pg_cluster: PgCluster) -> str:
    """URL (with password) of a fresh, empty database on the session's cluster."""
    return pg_cluster.create_database()


# --- end PostgreSQL ---------------------------------------------------------------------------------
