"""The README's optuna-dashboard commands, run for real against studies wwtune wrote.

Each test runs a tiny study, starts ``optuna-dashboard <storage>`` (the documented command) on a free
loopback port, and reads the study back through the dashboard's own HTTP API: the trials, wwtune's
per-trial attributes and, with ``--artifact-dir``, the attached figures.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy.engine import URL, make_url

from wwtune.cli import compose
from wwtune.study import run_study

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

DASHBOARD = shutil.which("optuna-dashboard", path=str(Path(sys.executable).parent)) or shutil.which(
    "optuna-dashboard"
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(port: int, path: str) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
        return json.loads(r.read())


def dashboard_study(storage: str, *extra: str, env: dict[str, str] | None = None) -> dict:
    """Start the dashboard on ``storage`` (as the README says), return its JSON for the one study."""
    # in the `test` extra; a missing dashboard is a failure here, not a skip
    assert DASHBOARD, "optuna-dashboard is not installed (it is in the test extra)"
    port = _free_port()
    proc = subprocess.Popen(
        [DASHBOARD, storage, "--host", "127.0.0.1", "--port", str(port), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                studies = _get(port, "/api/studies")["study_summaries"]
                break
            except (urllib.error.URLError, ConnectionError, OSError):
                if proc.poll() is not None or time.monotonic() > deadline:
                    proc.kill()
                    out = proc.communicate(timeout=10)[0]
                    pytest.fail(f"optuna-dashboard did not serve (exit {proc.returncode}): {out[-2000:]}")
                time.sleep(0.3)
        assert [s["study_name"] for s in studies] == ["tiny"]
        return _get(port, f"/api/studies/{studies[0]['study_id']}")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def check(detail: dict, n: int) -> list[dict]:
    trials = detail["trials"]
    assert len(trials) == n
    complete = [t for t in trials if t["state"] == "Complete"]
    assert complete, [t["state"] for t in trials]
    for t in complete:
        keys = {a["key"] for a in t["user_attrs"]}
        assert {"wwtune.layers", "wwtune.score", "wwtune.losses"} <= keys
        assert t["params"], "the searched parameters show"
    return complete


def test_dashboard_opens_the_journal_file_and_shows_trial_figures(project: Path) -> None:
    from wwtune.report.artifacts import attach_layer_figure

    run_study(
        compose(["study=tiny", "study.n_trials=2", "study.artifacts=true"]), draw_trial=attach_layer_figure
    )
    folder = project / "studies" / "tiny"
    detail = dashboard_study(str(folder / "journal.log"), "--artifact-dir", str(folder / "artifacts"))
    for t in check(detail, 2):
        names = [a["filename"] for a in t["artifacts"]]
        assert names == [f"trial{t['number']}_layer_alphas_step{_step(t)}.png"]


def _step(trial: dict) -> int:
    layers = next(a["value"] for a in trial["user_attrs"] if a["key"] == "wwtune.layers")
    return json.loads(layers)["step"] if isinstance(layers, str) else layers["step"]


def test_dashboard_opens_the_sqlite_url(project: Path) -> None:
    run_study(compose(["study=tiny", "study.n_trials=2", "storage=sqlite"]))
    check(dashboard_study(f"sqlite:///{project / 'studies' / 'tiny' / 'study.db'}"), 2)


def test_dashboard_opens_the_postgres_url(project: Path, pg_url: str, monkeypatch) -> None:
    monkeypatch.setenv("WWTUNE_STORAGE_URL", pg_url)
    run_study(compose(["study=tiny", "study.n_trials=2", "storage=postgres"]))
    # the README's form: the psycopg2 driver named, the password from PGPASSWORD (not on the command line)
    url = make_url(pg_url)
    plain = URL.create(
        "postgresql+psycopg2", username=url.username, host=url.host, port=url.port, database=url.database
    ).render_as_string(hide_password=False)
    assert "psycopg2" in plain and url.password not in plain
    check(dashboard_study(plain, env={"PGPASSWORD": url.password}), 2)
