"""PostgreSQL study storage: Optuna's RDB storage with heartbeats, retries and clear connection errors.

Several machines share one study through a PostgreSQL database. The URL (with its password) comes from
an environment variable, never from a config file, and is only ever shown redacted
(``postgresql://user:***@host:5432/db``). A worker that dies mid-trial stops sending heartbeats; after
``grace_period`` seconds the next worker to start a trial marks it FAIL and Optuna's
:class:`~optuna.storages.RetryHeartbeatStaleTrialCallback` queues a copy with the same parameters.

    storage = postgres_storage(url_from_env(), heartbeat_interval=10, grace_period=60)
    study = optuna.create_study(study_name="s", storage=storage, load_if_exists=True)
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import re
import urllib.parse
import warnings
from collections.abc import Mapping
from typing import Any

import optuna
import sqlalchemy
import sqlalchemy.exc
from sqlalchemy.engine import make_url

from wwtune.exceptions import StorageConnectionError
from wwtune.record import FAIL_REASON
from wwtune.workers import INTERRUPTED

__all__ = [
    "CONFIG_KEYS",
    "DEFAULT_URL_ENV",
    "StorageConnectionError",
    "postgres_storage",
    "redact_url",
    "storage_from_config",
    "url_from_env",
    "url_has_password",
]

_logger = logging.getLogger(__name__)

#: The environment variable holding the database URL unless the config names another.
DEFAULT_URL_ENV = "WWTUNE_STORAGE_URL"

#: SQLAlchemy drivers this storage accepts, in order of preference for a bare ``postgresql://``.
_DRIVERS = ("psycopg2", "psycopg")

_URL_EXAMPLE = "postgresql://USER:PASSWORD@HOST:5432/DBNAME"

#: Key of the PostgreSQL advisory lock that serialises the creation of Optuna's tables.
_SCHEMA_LOCK_KEY = 0x7777_7475_6E65_0001


class HeartbeatReasonStorage(optuna.storages.RDBStorage):
    """Optuna's RDB storage whose heartbeat check stores why it fails a trial.

    Optuna fails a RUNNING trial whose heartbeat stopped (at the start of any worker's next trial) without
    a word; each such trial found here gets its reason (``wwtune.fail_reason``) first, while it can still
    be changed, so the summary and the report say what happened instead of "no reason stored".
    """

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        stale = super()._get_stale_trial_ids(study_id)
        grace = self.grace_period or 2 * (self.heartbeat_interval or 0)  # Optuna's default: two beats
        reason = (
            f"{INTERRUPTED}: no heartbeat from its worker for over {grace:g} s (grace period): "
            "the worker died or hung"
        )
        for trial_id in stale:
            with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError, KeyError):
                self.set_trial_user_attr(trial_id, FAIL_REASON, reason)
        return stale


def redact_url(url: str) -> str:
    """``url`` with its password replaced by ``***``.

    Works on the text, not on a parse, so that a malformed URL (say a password with a raw ``@``) leaks
    nothing either: everything between ``scheme://user:`` and the last ``@`` is hidden, and so is a
    ``password=`` query parameter. When in doubt it hides too much, never too little.
    """
    shown = re.sub(r"^([A-Za-z][\w+.-]*://[^:/@?#]*:).*@", r"\1***@", str(url))
    return re.sub(r"(?i)([?&]password=)[^&#]*", r"\1***", shown)


def url_from_env(env_var: str = DEFAULT_URL_ENV) -> str:
    """The storage URL from ``env_var``; a clear error when it is unset or empty."""
    if not env_var or not isinstance(env_var, str):
        raise ValueError(f"url_env must name an environment variable but got {env_var!r}.")
    url = os.environ.get(env_var, "").strip()
    if not url:
        raise StorageConnectionError(
            f"storage=postgres reads the database URL from the environment variable {env_var}, which is "
            f"not set. Set it, e.g. `export {env_var}={_URL_EXAMPLE}` (keep the password out of configs)."
        )
    return url


def _is_int(value: object, *, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _scrub(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def _normalise(url: str) -> tuple[str, str | None]:
    """(URL with an explicit, installed driver, [password forms]) or a :class:`StorageConnectionError`."""
    netloc = url.partition("://")[2].split("/", 1)[0]
    if netloc.count("@") > 1:  # a raw '@' in the password: parsed, part of it would become the host name
        raise StorageConnectionError(
            f"storage URL {redact_url(url)!r} has a raw '@' in its user name or password; write it "
            "percent-encoded as %40 (the password is never shown)."
        )
    try:
        parsed = make_url(url)
    except Exception:
        raise StorageConnectionError(
            f"storage URL {redact_url(url)!r} is not a valid database URL; expected {_URL_EXAMPLE}."
        ) from None
    query_password = parsed.query.get("password")
    passwords = [parsed.password or "", *([query_password] if isinstance(query_password, str) else [])]
    passwords += [urllib.parse.quote(p, safe="") for p in passwords]
    backend, _, driver = parsed.drivername.partition("+")
    if backend not in ("postgresql", "postgres"):
        raise StorageConnectionError(
            f"storage=postgres needs a postgresql:// URL but got {redact_url(url)!r}; "
            f"expected {_URL_EXAMPLE}."
        )
    if driver and driver not in _DRIVERS:
        raise StorageConnectionError(
            f"PostgreSQL driver {driver!r} in {redact_url(url)!r} is not supported; use one of "
            f"{['postgresql+' + d for d in _DRIVERS]} or plain postgresql://."
        )
    if not driver:
        driver = next((d for d in _DRIVERS if importlib.util.find_spec(d) is not None), "")
    if not driver or importlib.util.find_spec(driver) is None:
        raise StorageConnectionError(
            f"no PostgreSQL driver is installed for {redact_url(url)!r}; "
            "install one with `pip install 'wwtune[postgres]'` (psycopg2-binary)."
        )
    if not parsed.host:
        raise StorageConnectionError(
            f"storage URL {redact_url(url)!r} names no host; expected {_URL_EXAMPLE}."
        )
    if not parsed.database:
        raise StorageConnectionError(
            f"storage URL {redact_url(url)!r} names no database; expected {_URL_EXAMPLE}."
        )
    explicit = parsed.set(drivername=f"postgresql+{driver}")
    return explicit.render_as_string(hide_password=False), passwords


def _hint(message: str, connect_timeout: int) -> str:
    lowered = message.lower()
    if "password authentication failed" in lowered or "no password supplied" in lowered:
        return "check the user name and password in the URL"
    if "does not exist" in lowered:
        return "create the database first (e.g. `createdb`) or fix its name in the URL"
    if "timeout expired" in lowered or "timed out" in lowered:
        return f"no answer within connect_timeout={connect_timeout}s; check the host, port and firewall"
    if "connection refused" in lowered:
        return "nothing listens there; is the server running, and are host and port right?"
    if "could not translate host name" in lowered or "name or service not known" in lowered:
        return "the host name does not resolve; check the host in the URL"
    return "check that the server is reachable and the URL is right"


def postgres_storage(
    url: str,
    *,
    heartbeat_interval: int | None = 10,
    grace_period: int | None = 60,
    max_retry: int | None = 2,
    connect_timeout: int = 10,
    engine_kwargs: dict[str, Any] | None = None,
) -> optuna.storages.RDBStorage:
    """Connect to a PostgreSQL study storage, or fail within about ``connect_timeout`` seconds.

    Args:
        url: ``postgresql://user:password@host:port/dbname`` (``postgresql+psycopg2://`` and
            ``postgresql+psycopg://`` also work). The database must exist; Optuna creates its tables.
        heartbeat_interval: seconds between a running trial's heartbeats; ``None`` turns heartbeats (and so
            crash detection) off. Default 10.
        grace_period: seconds without a heartbeat after which a running trial counts as dead and is marked
            FAIL by the next worker that starts a trial. Must exceed ``heartbeat_interval``. Default 60.
        max_retry: how many times a dead worker's trial is re-queued with the same parameters (Optuna's
            :class:`~optuna.storages.RetryHeartbeatStaleTrialCallback`); ``None`` retries without limit,
            0 never retries. Default 2.
        connect_timeout: seconds to wait for the server to answer a connection attempt. Default 10.
        engine_kwargs: extra keyword arguments for ``sqlalchemy.create_engine`` (e.g. ``pool_size``).

    Returns:
        An :class:`optuna.storages.RDBStorage` ready for ``optuna.create_study(..., load_if_exists=True)``.

    Raises:
        ValueError: an argument is out of range (message names it and the value).
        StorageConnectionError: bad URL, missing driver, unreachable server, wrong password, missing
            database. The message shows the URL redacted and says what to check; it never contains the
            password, and the driver's exception is not chained (its text is included, scrubbed).

    Example:
        .. code-block:: python

            import os, optuna
            from wwtune.postgres import postgres_storage, url_from_env

            storage = postgres_storage(url_from_env("WWTUNE_STORAGE_URL"), heartbeat_interval=10)
            study = optuna.create_study(study_name="demo", storage=storage, load_if_exists=True)
    """
    for name, value in (("heartbeat_interval", heartbeat_interval), ("grace_period", grace_period)):
        if value is not None and not _is_int(value, minimum=1):
            raise ValueError(f"{name} must be a positive integer (seconds) or None but got {value!r}.")
    if heartbeat_interval is None and grace_period is not None:
        raise ValueError(
            f"grace_period={grace_period!r} needs heartbeats; set heartbeat_interval (seconds) as well."
        )
    if heartbeat_interval is not None and grace_period is not None and grace_period <= heartbeat_interval:
        raise ValueError(
            f"grace_period must be longer than heartbeat_interval={heartbeat_interval} but got "
            f"{grace_period}; otherwise live trials are declared dead."
        )
    if max_retry is not None and not _is_int(max_retry, minimum=0):
        raise ValueError(f"max_retry must be a non-negative integer or None but got {max_retry!r}.")
    if not _is_int(connect_timeout, minimum=2):
        # libpq treats anything below 2 seconds as 2.
        raise ValueError(
            f"connect_timeout must be an integer of at least 2 seconds but got {connect_timeout!r}."
        )

    driver_url, passwords = _normalise(url)
    shown = redact_url(url)
    kwargs: dict[str, Any] = {"pool_pre_ping": True, **(engine_kwargs or {})}
    connect_args = dict(kwargs.get("connect_args", {}))
    connect_args.setdefault("connect_timeout", connect_timeout)
    kwargs["connect_args"] = connect_args

    try:
        with warnings.catch_warnings():
            # Heartbeats and the retry callback are marked experimental in Optuna; we use them on purpose.
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            callback = None
            if heartbeat_interval is not None and max_retry != 0:
                callback = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=max_retry)
            # Workers starting together on a fresh database would all create Optuna's tables at once and
            # collide in PostgreSQL's catalog (duplicate key in pg_type): one at a time, under a lock.
            engine = sqlalchemy.create_engine(driver_url, **kwargs)
            try:
                with engine.connect() as lock:
                    lock.execute(sqlalchemy.text(f"SELECT pg_advisory_lock({_SCHEMA_LOCK_KEY})"))
                    storage = HeartbeatReasonStorage(
                        driver_url,
                        engine_kwargs=kwargs,
                        heartbeat_interval=heartbeat_interval,
                        grace_period=grace_period,
                        heartbeat_stale_trial_callback=callback,
                    )
                    lock.execute(sqlalchemy.text(f"SELECT pg_advisory_unlock({_SCHEMA_LOCK_KEY})"))
            finally:
                engine.dispose()
    except (sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError) as e:
        original = getattr(e, "orig", None) or e.__cause__ or e
        text = str(original).strip()
        detail = _scrub(text.splitlines()[0] if text else type(e).__name__, passwords)
        raise StorageConnectionError(
            f"cannot use the study storage {shown!r}: {detail} ({_hint(detail, connect_timeout)})."
        ) from None
    _logger.info(
        "study storage: PostgreSQL %s (heartbeat %ss, grace %ss, max_retry %s)",
        shown,
        heartbeat_interval,
        grace_period,
        max_retry,
    )
    return storage


#: Keys of ``conf/storage/postgres.yaml``.
CONFIG_KEYS = (
    "kind",
    "url",
    "url_env",
    "heartbeat_interval",
    "grace_period",
    "max_retry",
    "connect_timeout",
)


def url_has_password(url: str) -> bool:
    """True when ``url`` carries a password (``user:pw@`` or a ``password=`` query parameter)."""
    return redact_url(url) != url


def storage_from_config(cfg: Mapping[str, Any], study_dir: Any = None) -> optuna.storages.RDBStorage:
    """Build the storage of ``storage=postgres`` from its config node (the storage factory's builder).

    The URL is ``cfg["url"]`` when set *without* a password (the password then comes from libpq's
    ``PGPASSWORD`` or ``~/.pgpass``), else the environment variable ``cfg["url_env"]``
    (default ``WWTUNE_STORAGE_URL``). A password in the config is refused: Hydra writes the composed config
    and the command-line overrides into the run's ``.hydra/`` folder, and the study stores its config.
    ``study_dir`` is unused (the study lives in the database).
    """
    unknown = sorted(set(cfg) - set(CONFIG_KEYS))
    if unknown:
        raise ValueError(
            f"Unknown storage setting(s) {unknown} for storage=postgres; allowed: {list(CONFIG_KEYS)}."
        )
    configured = cfg.get("url")
    env_var = cfg.get("url_env") or DEFAULT_URL_ENV
    if configured:
        if url_has_password(str(configured)):
            raise ValueError(
                f"storage.url {redact_url(str(configured))!r} contains a password; configs and command lines "
                f"are written to disk (.hydra/, the study's stored config). Put the URL in the environment "
                f"instead: `export {env_var}=...` and leave storage.url unset (or give a URL without the "
                "password and set PGPASSWORD or ~/.pgpass)."
            )
        url = str(configured)
    else:
        url = url_from_env(env_var)
    return postgres_storage(
        url,
        heartbeat_interval=cfg.get("heartbeat_interval", 10),
        grace_period=cfg.get("grace_period", 60),
        max_retry=cfg.get("max_retry", 2),
        connect_timeout=cfg.get("connect_timeout", 10),
    )
