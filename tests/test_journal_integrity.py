"""Journal integrity (issue 24, points 2–4): junk at the end, sealed records, and a repair that loses nothing
it can keep and renumbers no trial. Fault injection on small journals written through wwtune's storage."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.storages.journal import JournalFileBackend, JournalStorage
from optuna.trial import TrialState

from wwtune.journal_records import SUM_KEY
from wwtune.journal_repair import repair_journal_file
from wwtune.storage import StorageError, make_storage

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _study(folder: Path, n: int = 4) -> Path:
    """A journal study of ``n`` complete trials written by wwtune's storage; returns the journal's path."""
    study = optuna.create_study(storage=make_storage({"kind": "journal"}, "s", folder), study_name="s")
    study.optimize(lambda t: t.suggest_float("x", 0, 1) + t.suggest_int("k", 0, 9), n_trials=n)
    return folder / "s" / "journal.log"


def _load(folder: Path) -> optuna.Study:
    return optuna.load_study(study_name="s", storage=make_storage({"kind": "journal"}, "s", folder))


def _plain(journal: Path) -> optuna.Study:
    return optuna.load_study(study_name="s", storage=JournalStorage(JournalFileBackend(str(journal))))


def _complete(study: optuna.Study) -> dict[int, tuple]:
    return {t.number: (t.params, t.value) for t in study.trials if t.state == TrialState.COMPLETE}


def _lines(journal: Path) -> list[bytes]:
    return journal.read_bytes().splitlines(keepends=True)


def _index(lines: list[bytes], op: int, nth: int = 0) -> int:
    return [i for i, line in enumerate(lines) if json.loads(line)["op_code"] == op][nth]


# --- 3. valid JSON that is not a record, at the end ------------------------------------------------------


@pytest.mark.parametrize(
    ("junk", "named"),
    [
        (b"{}", "without an op_code"),
        (b"42", "a JSON int"),
        (b'{"op_code":99}', "op_code 99"),
        (b'{"op_code":4,"worker_id":"w"}', "without study_id"),
        (b"[1, 2]", "a JSON list"),
    ],
)
def test_valid_json_junk_at_the_end_is_cut_back_naming_it(tmp_path, caplog, junk, named):
    journal = _study(tmp_path)
    before = journal.read_bytes()
    kept = _complete(_load(tmp_path))
    journal.write_bytes(before + junk + b"\n")
    with caplog.at_level(logging.WARNING, logger="wwtune.journal"):
        study = _load(tmp_path)  # before the fix: KeyError / TypeError / AssertionError from Optuna
    assert _complete(study) == kept and journal.read_bytes() == before
    assert named in caplog.text
    assert f"line {len(_lines(journal)) + 1}" in caplog.text
    (backup,) = journal.parent.glob("journal.log.torn.*")
    assert backup.read_bytes() == junk + b"\n"


def test_junk_in_the_middle_is_refused_not_cut(tmp_path):
    journal = _study(tmp_path)
    lines = _lines(journal)
    journal.write_bytes(b"".join([*lines[:3], b"{}\n", *lines[3:]]))
    before = journal.read_bytes()
    with pytest.raises(StorageError, match="broken record at line 4 .* without an op_code"):
        _load(tmp_path)
    assert journal.read_bytes() == before


# --- 4. sealed records -----------------------------------------------------------------------------------


def _value_line(lines: list[bytes]) -> int:
    """The index of the record that stores trial 0's value."""
    return next(
        i
        for i, line in enumerate(lines)
        if json.loads(line)["op_code"] == 6 and json.loads(line).get("values") and b'"trial_id":0,' in line
    )


def _value_digit(line: bytes) -> int:
    """The offset of a digit after the decimal point of the stored value in ``line``."""
    return line.index(b".", line.index(b'"values":[')) + 3


def _flip_bit(lines: list[bytes]) -> list[bytes]:
    i = _value_line(lines)
    line = bytearray(lines[i])
    line[_value_digit(lines[i])] ^= 0x01  # one bit: '0'<->'1', ..., '8'<->'9': still valid JSON
    lines[i] = bytes(line)
    return lines


def _change_digit(lines: list[bytes]) -> list[bytes]:
    i = _value_line(lines)
    at = _value_digit(lines[i])
    lines[i] = lines[i][:at] + (b"7" if lines[i][at : at + 1] != b"7" else b"3") + lines[i][at + 1 :]
    return lines


def _delete(lines: list[bytes]) -> list[bytes]:
    return lines[:5] + lines[6:]


def _duplicate(lines: list[bytes]) -> list[bytes]:
    return lines[:6] + [lines[5]] + lines[6:]


@pytest.mark.parametrize(
    ("damage", "says"),
    [
        (_flip_bit, "changed, its bytes do not match its checksum"),
        (_change_digit, "changed, its bytes do not match its checksum"),
        (_delete, "out of place"),
        (_duplicate, "out of place"),
    ],
)
def test_a_changed_deleted_or_duplicated_record_is_detected_naming_it(tmp_path, damage, says):
    journal = _study(tmp_path)
    damaged = damage(_lines(journal))
    journal.write_bytes(b"".join(damaged))
    json.loads(b"[" + b",".join(line.strip() for line in damaged) + b"]")  # every line still valid JSON
    _plain(journal)  # plain Optuna loads it silently: only the seal shows the damage
    before = journal.read_bytes()
    with pytest.raises(StorageError) as err:
        _load(tmp_path)
    message = str(err.value)
    assert says in message and "broken record at line " in message and "\n" not in message
    assert "sed -i" not in message and "wwtune repair-journal" in message
    assert journal.read_bytes() == before  # refused, nothing cut or appended


def test_sealed_journals_load_in_plain_optuna_and_old_unsealed_ones_still_resume(tmp_path):
    journal = _study(tmp_path)
    assert all(SUM_KEY in json.loads(line) for line in _lines(journal))
    assert _complete(_plain(journal)) == _complete(_load(tmp_path))
    # a journal written by plain Optuna (as wwtune wrote before seals): loads, resumes, seals what it adds
    old = tmp_path / "old" / "s" / "journal.log"
    old.parent.mkdir(parents=True)
    plain = optuna.create_study(storage=JournalStorage(JournalFileBackend(str(old))), study_name="s")
    plain.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    study = _load(tmp_path / "old")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    assert len(_complete(_load(tmp_path / "old"))) == 4 == len(_complete(_plain(old)))
    sealed = [SUM_KEY in json.loads(line) for line in _lines(old)]
    assert not sealed[0] and sealed[-1]


# --- 2. a repair that renumbers nothing ------------------------------------------------------------------


def test_a_flipped_byte_in_a_creation_record_is_repaired_without_losing_or_renumbering_a_trial(tmp_path):
    journal = _study(tmp_path, n=6)
    kept = _complete(_load(tmp_path))
    lines = _lines(journal)
    i = _index(lines, 4, nth=2)  # trial 2's creation record, mid-file
    lines[i] = bytes([lines[i][0] ^ 0x01]) + lines[i][1:]  # '{' -> 'z'
    journal.write_bytes(b"".join(lines))
    damaged = journal.read_bytes()
    with pytest.raises(StorageError, match=f"broken record at line {i + 1} "):
        _load(tmp_path)
    # what deleting the line (the old advice) does: every later record applies to the wrong trial
    sed = tmp_path / "sed" / "s" / "journal.log"
    sed.parent.mkdir(parents=True)
    sed.write_bytes(b"".join(lines[:i] + lines[i + 1 :]))
    assert _complete(_plain(sed)) != kept
    dry = repair_journal_file(journal, dry_run=True)
    assert journal.read_bytes() == damaged and dry.changed
    report = repair_journal_file(journal)
    assert report.backup.read_bytes() == damaged
    assert len(report.lost) == 1 and f"line {i + 1}:" in report.lost[0]
    assert len(report.recreated) == 1 and "trial id 2 " in report.recreated[0]
    study = _load(tmp_path)
    assert _complete(study) == kept  # every completed trial, same number, same params and value
    assert study.trials[2].system_attrs["wwtune.repaired"]
    assert repair_journal_file(journal).changed is False  # repaired journals are consistent


def test_repair_places_a_lost_creation_by_its_worker_when_two_workers_interleave(tmp_path):
    journal = tmp_path / "s" / "journal.log"
    journal.parent.mkdir(parents=True)
    a, b = (make_storage({"kind": "journal"}, "s", tmp_path) for _ in range(2))
    optuna.create_study(storage=a, study_name="s")
    sa, sb = (optuna.load_study(study_name="s", storage=s) for s in (a, b))
    for _ in range(3):  # A creates, B creates, A finishes, B finishes
        ta, tb = sa.ask(), sb.ask()
        sa.tell(ta, ta.suggest_float("x", 0, 1))
        sb.tell(tb, tb.suggest_float("x", 0, 1))
    kept = _complete(_load(tmp_path))
    assert len(kept) == 6
    lines = _lines(journal)
    del lines[_index(lines, 4, nth=2)]  # A's second creation (trial 2) deleted outright
    journal.write_bytes(b"".join(lines))
    with pytest.raises(StorageError, match="out of place"):
        _load(tmp_path)
    report = repair_journal_file(journal)
    assert not report.lost and len(report.recreated) == 1 and "trial id 2 " in report.recreated[0]
    assert _complete(_load(tmp_path)) == kept


def test_repair_journal_command_reports_and_keeps_a_backup(tmp_path):
    journal = _study(tmp_path, n=3)
    lines = _lines(journal)
    journal.write_bytes(b"".join([*lines[:4], b"{}\n", *lines[4:], *lines[-1:]]))
    run = subprocess.run(
        [sys.executable, "-m", "wwtune", "repair-journal", str(journal)], capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    assert "line 5: " in run.stdout and "a duplicate of an earlier line" in run.stdout
    assert "The file as it was is kept in" in run.stdout
    assert len(_complete(_load(tmp_path))) == 3
    missing = subprocess.run(
        [sys.executable, "-m", "wwtune", "repair-journal", str(tmp_path / "nope.log")],
        capture_output=True,
        text=True,
    )
    assert missing.returncode == 2 and missing.stderr.startswith("wwtune: error:")
