"""PostgreSQL storage: real server, clear errors within seconds, passwords never shown."""

from __future__ import annotations

import datetime
import logging
import socket
import threading
import time
import traceback
import urllib.parse

import optuna
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from wwtune.postgres import StorageConnectionError, postgres_storage, redact_url, url_from_env

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning"),
    pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize"),
]

# An error must arrive within this many seconds (connect_timeout=2 plus start-up slack), never a hang.
FAST_S = 8.0


def _rendered(exc: BaseException) -> str:
    """Everything a user could see of an exception: message and the full printed traceback."""
    return str(exc) + "".join(traceback.format_exception(exc))


def _fails_fast(url: str, **kwargs) -> tuple[StorageConnectionError, float]:
    start = time.monotonic()
    with pytest.raises(StorageConnectionError) as info:
        postgres_storage(url, connect_timeout=2, **kwargs)
    return info.value, time.monotonic() - start


# --- redaction --------------------------------------------------------------------------------------

password_text = st.text(
    alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=6, max_size=30
).filter(lambda p: "***" not in p)


@settings(max_examples=60, deadline=None)
@given(password=password_text, user=st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True))
def test_redact_url_hides_any_password(password: str, user: str) -> None:
    quoted = urllib.parse.quote(password, safe="")
    url = f"postgresql://{user}:{quoted}@db.example:5432/studies"
    expected = f"postgresql://{user}:***@db.example:5432/studies"
    assume(password not in expected and quoted not in expected)  # e.g. "postgr" is part of the scheme
    assert redact_url(url) == expected


@settings(max_examples=40, deadline=None)
@given(password=st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789!$%^&*()@:/", min_size=6, max_size=20))
def test_redact_url_hides_password_even_in_unparseable_urls(password: str) -> None:
    url = f"postgresql://me:{password}@host with spaces:notaport/db"
    expected = "postgresql://me:***@host with spaces:notaport/db"
    assume(password not in expected)  # e.g. "postgr" is part of the scheme
    assert redact_url(url) == expected


def test_redact_url_leaves_password_free_urls_alone_and_hides_query_passwords() -> None:
    assert redact_url("postgresql://me@db:5432/s") == "postgresql://me@db:5432/s"
    assert redact_url("postgresql://db/s?user=me&password=pw1&sslmode=require") == (
        "postgresql://db/s?user=me&password=***&sslmode=require"
    )


# --- configuration errors ---------------------------------------------------------------------------


def test_missing_environment_variable_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WWTUNE_TEST_NO_SUCH_URL", raising=False)
    with pytest.raises(StorageConnectionError, match="WWTUNE_TEST_NO_SUCH_URL.*not set"):
        url_from_env("WWTUNE_TEST_NO_SUCH_URL")
    monkeypatch.setenv("WWTUNE_TEST_URL", "postgresql://a:b@h/d")
    assert url_from_env("WWTUNE_TEST_URL") == "postgresql://a:b@h/d"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"heartbeat_interval": 0}, "heartbeat_interval must be a positive integer .* but got 0"),
        ({"heartbeat_interval": 1.5}, "heartbeat_interval must be a positive integer .* but got 1.5"),
        ({"grace_period": -3}, "grace_period must be a positive integer .* but got -3"),
        ({"heartbeat_interval": 10, "grace_period": 10}, "grace_period must be longer than heartbeat"),
        ({"heartbeat_interval": None, "grace_period": 10}, "needs heartbeats"),
        ({"max_retry": -1}, "max_retry must be a non-negative integer or None but got -1"),
        ({"connect_timeout": 1}, "connect_timeout must be an integer of at least 2 seconds but got 1"),
    ],
)
def test_bad_arguments_are_named(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        postgres_storage("postgresql://u:pw@127.0.0.1:1/db", **kwargs)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("not a url at all", "not a valid database URL"),
        ("mysql://u:s3cretPW@127.0.0.1/db", "needs a postgresql:// URL"),
        ("postgresql+asyncpg://u:s3cretPW@127.0.0.1/db", "driver 'asyncpg' .* not supported"),
        ("postgresql://u:s3cretPW@/db", "names no host"),
        ("postgresql://u:s3cretPW@127.0.0.1:5432", "names no database"),
    ],
)
def test_malformed_urls_fail_with_a_clear_message(url: str, message: str) -> None:
    err, elapsed = _fails_fast(url)
    assert elapsed < FAST_S
    assert "s3cretPW" not in _rendered(err)
    with pytest.raises(StorageConnectionError, match=message):
        raise err


@pytest.mark.parametrize("password", ["pa@ss_zz8", "@lead", "trail@", "a@b@c_tail9"])
def test_a_raw_at_sign_in_the_password_leaks_no_part_of_it(password: str) -> None:
    """Issue 24.7: a raw '@' made the driver print the password's tail as a host name it cannot find."""
    err, elapsed = _fails_fast(f"postgresql://wwt:{password}@127.0.0.1/db")
    assert elapsed < FAST_S
    shown = _rendered(err)
    assert "raw '@'" in shown and "%40" in shown and "wwt:***@127.0.0.1/db" in shown
    for part in [password, *password.split("@")]:
        assert len(part) < 3 or part not in shown.replace("127.0.0.1", ""), part


def test_a_trial_failed_by_heartbeat_has_its_reason_and_no_experimental_warning(tmp_path) -> None:
    """Issue 24.9: Optuna's heartbeat check failed trials with no reason stored, and warned in every
    worker's log that it is experimental. Same RDB storage class as PostgreSQL's, on SQLite."""
    import warnings

    from wwtune.postgres import HeartbeatReasonStorage
    from wwtune.reaping import reap_dead_workers

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        url = f"sqlite:///{tmp_path / 's.db'}"
        storage = HeartbeatReasonStorage(url, heartbeat_interval=1, grace_period=1)
    study = optuna.create_study(storage=storage, study_name="s")
    trial = study.ask()
    storage.record_heartbeat(trial._trial_id)  # then its worker dies: no more beats
    deadline = time.monotonic() + 30
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        while study.trials[0].state == optuna.trial.TrialState.RUNNING:
            assert time.monotonic() < deadline, "the silent trial was never failed"
            reap_dead_workers(study)
            time.sleep(0.05)  # a poll interval, not a wait for an outcome
    assert study.trials[0].state == optuna.trial.TrialState.FAIL
    reason = study.trials[0].user_attrs["wwtune.fail_reason"]
    assert reason.startswith("interrupted: no heartbeat from its worker for over 1 s")
    assert not [w for w in seen if issubclass(w.category, optuna.exceptions.ExperimentalWarning)]


# --- against the real server ------------------------------------------------------------------------


def test_connects_creates_study_and_runs_trials(pg_url: str) -> None:
    storage = postgres_storage(pg_url, heartbeat_interval=1, grace_period=3)
    assert storage.get_heartbeat_interval() == 1
    callback = storage.get_heartbeat_stale_trial_callback()
    assert isinstance(callback, optuna.storages.RetryHeartbeatStaleTrialCallback)
    study = optuna.create_study(study_name="s", storage=storage, load_if_exists=True)
    study.optimize(lambda t: t.suggest_float("x", -1, 1) ** 2, n_trials=3)
    again = optuna.load_study(study_name="s", storage=postgres_storage(pg_url))
    assert len(again.get_trials(states=(optuna.trial.TrialState.COMPLETE,))) == 3


def test_postgres_scheme_alias_and_explicit_driver_work(pg_cluster, pg_url: str) -> None:
    for scheme in ("postgres://", "postgresql+psycopg2://"):
        url = pg_url.replace("postgresql://", scheme)
        storage = postgres_storage(url)
        assert optuna.create_study(storage=storage).study_name


def test_wrong_password_is_clear_fast_and_never_shows_the_password(pg_cluster, pg_url: str, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "Wr0ngPassw0rd-xyz"
    database = pg_url.rsplit("/", 1)[1]
    err, elapsed = _fails_fast(pg_cluster.url(database, password=wrong))
    assert elapsed < FAST_S
    shown = _rendered(err)
    assert "password authentication failed" in shown and "check the user name and password" in shown
    assert f"postgres:***@127.0.0.1:{pg_cluster.port}/{database}" in shown
    assert wrong not in shown and wrong not in caplog.text
    assert pg_cluster.password not in shown


def test_unreachable_port_is_clear_and_fast(pg_cluster) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"postgresql://postgres:{pg_cluster.password}@127.0.0.1:{port}/postgres"
    err, elapsed = _fails_fast(url)
    assert elapsed < FAST_S
    assert "Connection refused" in str(err) and "is the server running" in str(err)
    assert pg_cluster.password not in _rendered(err)


def test_server_that_never_answers_times_out_instead_of_hanging() -> None:
    """A TCP peer that accepts but never speaks (a hung server, a black-holing proxy) → connect_timeout."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # the kernel completes the handshake; nobody ever reads or answers
        port = silent.getsockname()[1]
        err, elapsed = _fails_fast(f"postgresql://u:Secr3tPW@127.0.0.1:{port}/db")
    assert elapsed < FAST_S  # it gave up (no hang); the message says it was the connect_timeout
    assert "timeout expired" in str(err) and "connect_timeout=2s" in str(err)
    assert "Secr3tPW" not in _rendered(err)


def test_missing_database_says_so(pg_cluster) -> None:
    err, elapsed = _fails_fast(pg_cluster.url("no_such_db"))
    assert elapsed < FAST_S
    assert 'database "no_such_db" does not exist' in str(err) and "create the database" in str(err)
    assert pg_cluster.password not in _rendered(err)


def test_heartbeat_fails_a_silent_trial_and_retries_it_with_the_same_params(pg_url: str) -> None:
    """Optuna-level crash safety: a trial whose heartbeat stops is failed after the grace period and
    re-queued; the next trial of any worker runs the copy with identical parameters."""
    storage = postgres_storage(pg_url, heartbeat_interval=1, grace_period=2, max_retry=2)
    study = optuna.create_study(study_name="hb", storage=storage)
    # A "worker" that started a trial and died: RUNNING, one heartbeat, then silence.
    dead = study.ask()
    dead_x = dead.suggest_float("x", -1, 1)
    storage.record_heartbeat(dead._trial_id)
    # wait (bounded) until the heartbeat check fails it: its grace period has passed without a heartbeat
    deadline = time.monotonic() + 60
    while study.get_trials(deepcopy=False)[0].state == optuna.trial.TrialState.RUNNING:
        assert time.monotonic() < deadline, "the silent trial was not failed within 60 s"
        optuna.storages.fail_stale_trials(study)
        time.sleep(0.1)
    study.optimize(lambda t: t.suggest_float("x", -1, 1) ** 2, n_trials=1)
    trials = study.get_trials(deepcopy=False)
    assert trials[0].state == optuna.trial.TrialState.FAIL
    retried = [t for t in trials if t.system_attrs.get("failed_trial") == dead.number]
    assert len(retried) == 1 and retried[0].state == optuna.trial.TrialState.COMPLETE
    assert retried[0].params["x"] == dead_x


def test_live_trial_with_heartbeats_is_not_failed(pg_url: str) -> None:
    storage = postgres_storage(pg_url, heartbeat_interval=1, grace_period=2)
    study = optuna.create_study(study_name="live", storage=storage)
    stop = threading.Event()

    def slow(trial: optuna.Trial) -> float:
        stop.wait(60.0)  # until released: longer than the grace period, but heartbeats keep it alive
        return trial.suggest_float("x", 0, 1)

    worker = threading.Thread(target=study.optimize, args=(slow,), kwargs={"n_trials": 1})
    worker.start()
    other = optuna.load_study(
        study_name="live", storage=postgres_storage(pg_url, heartbeat_interval=1, grace_period=2)
    )
    # wait (bounded) until the running trial is older than its grace period, by the stored start time
    deadline = time.monotonic() + 60
    while True:
        running = other.get_trials(deepcopy=False)
        started = running[0].datetime_start if running else None
        if started is not None and (datetime.datetime.now() - started).total_seconds() > 3.0:
            break
        assert time.monotonic() < deadline, "the trial did not run past its grace period within 60 s"
        time.sleep(0.1)
    optuna.storages.fail_stale_trials(other)
    assert [t.state for t in other.get_trials()] == [optuna.trial.TrialState.RUNNING]
    stop.set()
    worker.join(10)
    assert [t.state for t in other.get_trials()] == [optuna.trial.TrialState.COMPLETE]


# --- the config builder (storage=postgres) ----------------------------------------------------------


def test_config_builder_reads_the_url_from_the_environment(pg_url: str, monkeypatch) -> None:
    from wwtune.postgres import storage_from_config

    monkeypatch.setenv("WWTUNE_TEST_PG_URL", pg_url)
    cfg = {
        "kind": "postgres",
        "url": None,
        "url_env": "WWTUNE_TEST_PG_URL",
        "heartbeat_interval": 2,
        "grace_period": 5,
        "max_retry": 1,
        "connect_timeout": 3,
    }
    storage = storage_from_config(cfg)
    assert storage.get_heartbeat_interval() == 2 and storage.grace_period == 5
    monkeypatch.delenv("WWTUNE_TEST_PG_URL")
    with pytest.raises(StorageConnectionError, match="WWTUNE_TEST_PG_URL, which is not set"):
        storage_from_config(cfg)


def test_config_builder_refuses_a_password_in_the_config() -> None:
    from wwtune.postgres import storage_from_config

    cfg = {"kind": "postgres", "url": "postgresql://me:HunTer2pw@db/s"}
    with pytest.raises(ValueError, match=r"contains a password.*export WWTUNE_STORAGE_URL") as info:
        storage_from_config(cfg)
    assert "HunTer2pw" not in _rendered(info.value)
    with pytest.raises(ValueError, match=r"Unknown storage setting\(s\) \['heartbeat'\]"):
        storage_from_config({"kind": "postgres", "heartbeat": 3})


def test_config_builder_accepts_a_password_free_url_with_pgpassword(pg_cluster, pg_url, monkeypatch) -> None:
    from wwtune.postgres import storage_from_config

    monkeypatch.setenv("PGPASSWORD", pg_cluster.password)
    no_password = pg_url.replace(f":{pg_cluster.password}@", "@")
    assert pg_cluster.password not in no_password
    assert storage_from_config({"kind": "postgres", "url": no_password}).get_heartbeat_interval() == 10
