"""The storage factory's multi-worker concerns: per-kind keys, postgres routing, redaction, journal lock."""

from __future__ import annotations

import os

import optuna
import pytest

from wwtune.storage import StorageError, describe, make_storage, redact_config


def test_journal_lock_points_at_an_absolute_path(tmp_path, monkeypatch) -> None:
    """Optuna's journal lock is a symlink to the journal; a worker killed while writing leaves it behind and
    the others break it after a grace period only if the link resolves. A relative target (studies_dir is
    relative by default) would dangle, and every other worker would wait forever."""
    monkeypatch.chdir(tmp_path)
    targets = []
    real_symlink = os.symlink

    def recording_symlink(src, dst, *args, **kwargs):
        targets.append((src, dst))
        return real_symlink(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "symlink", recording_symlink)
    storage = make_storage({"kind": "journal", "url": None}, "s", "studies")
    optuna.create_study(storage=storage, study_name="s")
    assert targets, "the journal write took no lock"
    for src, dst in targets:
        assert os.path.isabs(src) and src == str(tmp_path / "studies" / "s" / "journal.log")
        assert dst == src + ".lock"


def test_each_kind_accepts_only_its_own_keys() -> None:
    with pytest.raises(
        StorageError, match=r"Unknown storage setting\(s\) \['max_retry'\] for storage.kind='journal'"
    ):
        make_storage({"kind": "journal", "max_retry": 2}, "s", "studies")
    with pytest.raises(StorageError, match=r"\['lock'\] for storage.kind='postgres'.*url_env"):
        make_storage({"kind": "postgres", "lock": 1}, "s", "studies")


def test_a_postgres_url_under_sqlite_is_sent_to_storage_postgres(tmp_path) -> None:
    with pytest.raises(StorageError, match="use storage=postgres") as info:
        make_storage({"kind": "sqlite", "url": "postgresql://me:Pw9secret@db/s"}, "s", tmp_path)
    assert "Pw9secret" not in str(info.value)


def test_a_password_in_the_postgres_config_is_refused_as_a_config_error(tmp_path) -> None:
    with pytest.raises(StorageError, match="contains a password") as info:
        make_storage({"kind": "postgres", "url": "postgresql://me:Pw9secret@db/s"}, "s", tmp_path)
    assert "Pw9secret" not in str(info.value)


def test_describe_and_the_stored_config_never_show_a_password(monkeypatch) -> None:
    cfg = {"kind": "sqlite", "url": "sqlite:///x.db?password=Pw9secret"}
    assert "Pw9secret" not in describe(cfg, "s", "studies")
    monkeypatch.setenv("WWTUNE_STORAGE_URL", "postgresql://me:Pw9secret@db:5432/s")
    shown = describe({"kind": "postgres", "url": None, "url_env": "WWTUNE_STORAGE_URL"}, "s", "studies")
    assert shown == "postgres: postgresql://me:***@db:5432/s"
    monkeypatch.delenv("WWTUNE_STORAGE_URL")
    assert describe({"kind": "postgres"}, "s", "studies") == "postgres: $WWTUNE_STORAGE_URL"
    full = {"study": {"name": "s"}, "storage": {"kind": "rdb", "url": "mysql://me:Pw9secret@db/s"}}
    assert redact_config(full)["storage"]["url"] == "mysql://me:***@db/s"
    assert full["storage"]["url"] == "mysql://me:Pw9secret@db/s"  # the caller's config is left alone


def test_a_plain_journal_path_is_a_storage_where_wwtune_takes_one(tmp_path, monkeypatch):
    """`storage="studies/x/journal.log"` (which Optuna reads as a malformed URL) opens the journal."""
    import wwtune
    from wwtune.storage import StorageError, as_storage

    monkeypatch.chdir(tmp_path)
    journal = tmp_path / "studies" / "demo" / "journal.log"
    storage = make_storage({"kind": "journal"}, "demo", "studies")
    study = optuna.create_study(study_name="demo", storage=storage)
    study.enqueue_trial({"x": 1.0})
    study.optimize(lambda t: t.suggest_float("x", 0, 2), n_trials=1)
    for given in ("studies/demo/journal.log", journal, tmp_path / "studies" / "demo"):
        assert wwtune.load_study("demo", given).best_value == 1.0
    assert wwtune.load_study("demo").best_value == 1.0  # the default: the study's own journal
    assert as_storage(storage) is storage
    db = f"sqlite:///{tmp_path / 'x.db'}"
    optuna.create_study(study_name="s", storage=as_storage(db))
    assert [s.study_name for s in optuna.get_all_study_summaries(as_storage(db))] == ["s"]
    with pytest.raises(StorageError, match=r"no journal file at 'studies/nope/journal.log'; give"):
        wwtune.load_study("nope")
