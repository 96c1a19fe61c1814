"""Where a study's trials are stored: one small factory keyed by ``storage.kind``.

* ``journal`` (default): Optuna's JournalStorage with a file backend at
  ``<studies_dir>/<study_name>/journal.log``. Appends one line per change, so an interrupted run loses no
  completed trial, and several processes on one host may share it.
* ``sqlite``: ``sqlite:///<studies_dir>/<study_name>/study.db`` through Optuna's RDB storage (one worker).
* ``postgres``: Optuna's RDB storage on PostgreSQL for workers on several machines (:mod:`wwtune.postgres`):
  URL from ``$WWTUNE_STORAGE_URL`` (never from a config, so the password is never written down),
  heartbeats, re-queueing of a dead worker's trial, connection errors within ``connect_timeout``.
* ``journal``/``sqlite`` with ``url`` set: a journal file path, or an ``sqlite:///…`` URL.

New kinds register a builder with :func:`register` (``builder(cfg, study_dir) -> optuna storage``) and the
config keys it accepts.
"""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy.exc
from optuna.storages import BaseStorage, RDBStorage
from optuna.storages.journal import JournalStorage

from wwtune import record
from wwtune.diskio import WriteError
from wwtune.exceptions import StorageError
from wwtune.journal import JournalCorrupt, SafeJournalFileBackend, repair_journal
from wwtune.postgres import CONFIG_KEYS as POSTGRES_KEYS
from wwtune.postgres import DEFAULT_URL_ENV, redact_url, storage_from_config

__all__ = [
    "FILE_KEYS",
    "as_storage",
    "KNOWN_KEYS",
    "StorageError",
    "describe",
    "kinds",
    "make_storage",
    "redact_config",
    "register",
    "study_dir",
]

#: Keys of the file-based kinds' ``conf/storage/<kind>.yaml``.
FILE_KEYS = ("kind", "url", "heartbeat_interval", "grace_period")
#: Keys any ``conf/storage/<kind>.yaml`` may set (each kind checks its own subset in :func:`make_storage`).
KNOWN_KEYS = (*FILE_KEYS, *(k for k in POSTGRES_KEYS if k not in FILE_KEYS))

Builder = Callable[[Mapping[str, Any], Path], BaseStorage]
_BUILDERS: dict[str, Builder] = {}
_KEYS: dict[str, tuple[str, ...]] = {}


def register(kind: str, builder: Builder, keys: tuple[str, ...] = FILE_KEYS) -> None:
    """Make ``storage.kind=<kind>`` available, accepting the config ``keys``."""
    _BUILDERS[kind] = builder
    _KEYS[kind] = tuple(keys)


def kinds() -> list[str]:
    """The registered storage kinds."""
    return sorted(_BUILDERS)


def study_dir(studies_dir: str | os.PathLike[str], study_name: str) -> Path:
    """:func:`wwtune.record.study_dir`, a bad study name raised as :class:`StorageError`."""
    try:
        return record.study_dir(studies_dir, study_name)
    except ValueError as exc:
        raise StorageError(str(exc)) from None


def _journal(
    cfg: Mapping[str, Any], folder: Path, creator_attrs: Callable[[], Mapping[str, Any]] | None = None
) -> BaseStorage:
    path = Path(cfg["url"]) if cfg.get("url") else folder / "journal.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:  # before anything is appended: a torn tail would end up mid-file, where Optuna refuses it
        repair_journal(path)
    except (JournalCorrupt, WriteError) as exc:
        raise StorageError(str(exc)) from None
    # Absolute on purpose: Optuna's lock is a symlink to this path, and it frees the lock of a worker killed
    # while writing only if the link resolves (grace period, 30 s); a relative link dangles, and every
    # other worker would wait forever.
    return JournalStorage(SafeJournalFileBackend(str(path.absolute()), creator_attrs=creator_attrs))


def _rdb(cfg: Mapping[str, Any], folder: Path) -> BaseStorage:
    url = cfg.get("url")
    if not url:
        folder.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{folder / 'study.db'}"
    if str(url).startswith("postgres"):
        raise StorageError(
            f"storage.url {redact_url(str(url))!r} is a PostgreSQL URL; use storage=postgres and put the URL "
            f"in ${DEFAULT_URL_ENV} (heartbeats, retries, and the password stays out of configs)."
        )
    kwargs: dict[str, Any] = {}
    with warnings.catch_warnings():  # heartbeats and their retry callback are experimental in Optuna
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if cfg.get("heartbeat_interval"):
            kwargs["heartbeat_interval"] = int(cfg["heartbeat_interval"])
            if cfg.get("grace_period"):
                kwargs["grace_period"] = int(cfg["grace_period"])
            kwargs["heartbeat_stale_trial_callback"] = optuna.storages.RetryHeartbeatStaleTrialCallback()
        try:
            return RDBStorage(str(url), **kwargs)
        except ImportError as exc:
            raise StorageError(
                f"storage.url {redact_url(str(url))!r} needs a database driver that is not installed ({exc})."
            ) from None
        except sqlalchemy.exc.ArgumentError:
            raise StorageError(
                "storage.url must be a database URL such as sqlite:///path/to/study.db (storage=journal "
                f"takes a file path) but got {redact_url(str(url))!r}."
            ) from None
        except sqlalchemy.exc.OperationalError as exc:
            raise StorageError(f"cannot open storage.url {redact_url(str(url))!r}: {exc.orig}") from None


def _postgres(cfg: Mapping[str, Any], folder: Path) -> BaseStorage:
    try:
        return storage_from_config(cfg, folder)
    except ValueError as exc:  # bad settings; connection problems raise StorageConnectionError
        raise StorageError(str(exc)) from None


register("journal", _journal)
register("sqlite", _rdb)
register("rdb", _rdb)
register("postgres", _postgres, POSTGRES_KEYS)


def make_storage(
    cfg: Mapping[str, Any],
    study_name: str,
    studies_dir: str | os.PathLike[str],
    creator_attrs: Callable[[], Mapping[str, Any]] | None = None,
) -> BaseStorage:
    """Build the Optuna storage for ``cfg`` (the composed ``storage`` node).

    ``creator_attrs`` (journal only): user attrs written into each new trial's creation record itself
    (the worker's identity), so no trial exists without them.

    Example:

        .. code-block:: python

            import tempfile
            import optuna
            from wwtune.storage import make_storage

            folder = tempfile.mkdtemp()
            storage = make_storage({"kind": "journal"}, "demo", folder)
            optuna.create_study(storage=storage, study_name="demo")
    """
    kind = cfg.get("kind", "journal")
    if kind not in _BUILDERS:
        raise StorageError(f"storage.kind must be one of {sorted(_BUILDERS)} but got {kind!r}.")
    unknown = sorted(set(cfg) - set(_KEYS[kind]))
    if unknown:
        raise StorageError(
            f"Unknown storage setting(s) {unknown} for storage.kind={kind!r}; allowed: {list(_KEYS[kind])}."
        )
    builder = _BUILDERS[kind]
    if builder is _journal and creator_attrs is not None:
        builder = functools.partial(_journal, creator_attrs=creator_attrs)
    try:
        return builder(cfg, study_dir(studies_dir, study_name))
    except OSError as exc:  # a folder that cannot be created, a read-only file system, ...
        where = cfg.get("url") or study_dir(studies_dir, study_name)
        raise StorageError(
            f"cannot create the study's storage at {redact_url(str(where))!r} (study.studies_dir / "
            f"storage.url): {exc.strerror or exc}."
        ) from None


def as_storage(storage: str | os.PathLike[str] | BaseStorage) -> BaseStorage:
    """An Optuna storage from what a user has at hand: a storage object (returned as is), a database URL
    (``sqlite:///…``, ``postgresql+psycopg2://…``), or the path of a journal file (the default storage,
    ``studies/<name>/journal.log``), which Optuna's own ``storage=`` would read as a malformed URL.

    Example:

        .. code-block:: python

            import tempfile, optuna
            from wwtune.storage import as_storage

            path = tempfile.mkdtemp() + "/journal.log"
            optuna.create_study(study_name="demo", storage=as_storage(path))
            optuna.load_study(study_name="demo", storage=as_storage(path))
    """
    if isinstance(storage, BaseStorage):
        return storage
    text = os.fspath(storage)
    if "://" in text:
        kind = "sqlite" if text.startswith("sqlite") else "rdb"
        if text.startswith("postgres"):
            return RDBStorage(text)
        return _rdb({"kind": kind, "url": text}, Path("."))
    path = Path(text)
    if path.is_dir():
        path = path / "journal.log"
    if not path.exists():
        raise StorageError(
            f"no journal file at {text!r}; give a study's journal.log path (studies/<name>/journal.log)"
            " or a database URL such as sqlite:///path/to/study.db."
        )
    return _journal({"url": str(path)}, path.parent)


def describe(cfg: Mapping[str, Any], study_name: str, studies_dir: str | os.PathLike[str]) -> str:
    """Where the study lives, for the run's first log line and the summary."""
    kind = cfg.get("kind", "journal")
    folder = study_dir(studies_dir, study_name)
    if cfg.get("url"):
        return f"{kind}: {redact_url(str(cfg['url']))}"
    if kind == "postgres":
        env_var = cfg.get("url_env") or DEFAULT_URL_ENV
        return f"postgres: {redact_url(os.environ.get(env_var, '') or '$' + env_var)}"
    return {"journal": f"journal: {folder / 'journal.log'}", "sqlite": f"sqlite: {folder / 'study.db'}"}.get(
        kind, kind
    )


def redact_config(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of the composed config whose ``storage.url`` has its password replaced by ``***``."""
    out = dict(cfg)
    storage = out.get("storage")
    if isinstance(storage, Mapping) and storage.get("url"):
        out["storage"] = {**storage, "url": redact_url(str(storage["url"]))}
    return out
