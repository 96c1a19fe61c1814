"""Shared fixtures."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

# --- PostgreSQL: one throw-away cluster per test session (tests/pg_cluster.py) ----------------------
from pg_cluster import PgCluster, PgUnavailable


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
