"""Where a study's trials are stored: one small factory keyed by ``storage.kind``.

* ``journal`` (default): Optuna's JournalStorage with a file backend at
  ``<studies_dir>/<study_name>/journal.log``. Appends one line per change, so an interrupted run loses no
  completed trial, and several processes on one host may share it.
* ``sqlite``: ``sqlite:///<studies_dir>/<study_name>/study.db`` through Optuna's RDB storage (one worker).
* any kind with ``url`` set: that URL is used as given (``sqlite:///…``, ``postgresql://…``); for
  ``journal`` a URL is a journal file path.

New kinds register a builder with :func:`register` (``builder(cfg, study_dir) -> optuna storage``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import BaseStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend, JournalStorage

__all__ = ["KNOWN_KEYS", "StorageError", "describe", "kinds", "make_storage", "register", "study_dir"]

#: Keys a ``conf/storage/<kind>.yaml`` may set.
KNOWN_KEYS = ("kind", "url", "heartbeat_interval", "grace_period")

Builder = Callable[[Mapping[str, Any], Path], BaseStorage]
_BUILDERS: dict[str, Builder] = {}


class StorageError(ValueError):
    """The storage configuration is invalid; the message names the bad value and what is allowed."""


def register(kind: str, builder: Builder) -> None:
    """Make ``storage.kind=<kind>`` available (e.g. ``postgres``)."""
    _BUILDERS[kind] = builder


def kinds() -> list[str]:
    """The registered storage kinds."""
    return sorted(_BUILDERS)


def study_dir(studies_dir: str | os.PathLike[str], study_name: str) -> Path:
    """``<studies_dir>/<study_name>``; the study name may not escape the folder."""
    if not study_name or "/" in study_name or "\\" in study_name or study_name in (".", ".."):
        raise StorageError(f"study.name must be a plain folder name but got {study_name!r}.")
    return Path(studies_dir) / study_name


def _journal(cfg: Mapping[str, Any], folder: Path) -> BaseStorage:
    path = Path(cfg["url"]) if cfg.get("url") else folder / "journal.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(path)))


def _rdb(cfg: Mapping[str, Any], folder: Path) -> BaseStorage:
    url = cfg.get("url")
    if not url:
        folder.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{folder / 'study.db'}"
    kwargs: dict[str, Any] = {}
    if cfg.get("heartbeat_interval"):
        kwargs["heartbeat_interval"] = int(cfg["heartbeat_interval"])
        if cfg.get("grace_period"):
            kwargs["grace_period"] = int(cfg["grace_period"])
        kwargs["failed_trial_callback"] = optuna.storages.RetryFailedTrialCallback(max_retry=None)
    return RDBStorage(str(url), **kwargs)


register("journal", _journal)
register("sqlite", _rdb)
register("rdb", _rdb)


def make_storage(cfg: Mapping[str, Any], study_name: str, studies_dir: str | os.PathLike[str]) -> BaseStorage:
    """Build the Optuna storage for ``cfg`` (the composed ``storage`` node).

    Example:

        .. code-block:: python

            import tempfile
            import optuna
            from wwtune.storage import make_storage

            folder = tempfile.mkdtemp()
            storage = make_storage({"kind": "journal"}, "demo", folder)
            optuna.create_study(storage=storage, study_name="demo")
    """
    unknown = sorted(set(cfg) - set(KNOWN_KEYS))
    if unknown:
        raise StorageError(f"Unknown storage setting(s) {unknown}; allowed: {list(KNOWN_KEYS)}.")
    kind = cfg.get("kind", "journal")
    if kind not in _BUILDERS:
        raise StorageError(f"storage.kind must be one of {sorted(_BUILDERS)} but got {kind!r}.")
    return _BUILDERS[kind](cfg, study_dir(studies_dir, study_name))


def describe(cfg: Mapping[str, Any], study_name: str, studies_dir: str | os.PathLike[str]) -> str:
    """Where the study lives, for the run's first log line and the summary."""
    kind = cfg.get("kind", "journal")
    folder = study_dir(studies_dir, study_name)
    if cfg.get("url"):
        return f"{kind}: {cfg['url']}"
    return {"journal": f"journal: {folder / 'journal.log'}", "sqlite": f"sqlite: {folder / 'study.db'}"}.get(
        kind, kind
    )
