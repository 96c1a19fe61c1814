"""`wwtune repair-journal PATH`: mend a journal that wwtune refused, losing as little as can be, renumbering
nothing, and saying exactly what was lost.

Deleting a broken line is not a repair: a journal names trials by the order of their creation records, so
with one creation record gone every later record applies to the wrong trial. Here:

* every record that passes :func:`wwtune.journal_records.check_line`'s content checks is kept, in order;
* a line that is not a record, or whose bytes no longer match its seal, is dropped, and so is an exact
  duplicate of an earlier line;
* a trial whose creation record was lost (dropped or deleted) gets a stand-in creation record at the same
  place in the order of creations, so every trial keeps its number and every later record its trial. Where
  a creation belongs is read from the records themselves: the first record its worker writes next names the
  trial it created. The stand-in knows no start time and no parameters set at creation (wwtune sets them
  later, in records that are kept); it is marked with the system attr ``wwtune.repaired``;
* the file is first copied to ``<path>.bak.<time>``, then replaced in one step, all under the journal's
  lock, and every record is sealed afresh.

With ``--dry-run`` nothing is written; the report is the same.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from optuna.storages.journal import JournalFileSymlinkLock

from wwtune.journal_records import CREATE_TRIAL, FIRST, body_crc, check_line, describe_line, seal_logs

__all__ = ["RepairReport", "main", "repair_journal_file"]

#: worker id of the stand-in creation records
REPAIR_WORKER = "wwtune-repair"
_EPOCH = "1970-01-01T00:00:00.000000+00:00"


class RepairReport:
    """What a repair did (or, in a dry run, would do): ``lost`` and ``recreated`` are lines of text."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.backup: Path | None = None
        self.kept = 0
        self.lost: list[str] = []
        self.recreated: list[str] = []

    @property
    def changed(self) -> bool:
        return bool(self.lost or self.recreated)

    def text(self) -> str:
        if not self.changed:
            return f"{self.path}: every record is consistent; nothing to repair."
        lines = [f"{self.path}: kept {self.kept} record(s)."]
        lines += [f"  dropped {what}" for what in self.lost]
        lines += [f"  recreated {what}" for what in self.recreated]
        if self.backup:
            lines.append(f"The file as it was is kept in {self.backup}.")
        return "\n".join(lines)


def _classify(lines: list[bytes], report: RepairReport) -> list[dict[str, Any]]:
    """The records to keep, in order; what is dropped goes to ``report.lost``."""
    kept: list[dict[str, Any]] = []
    seen: set[bytes] = set()
    prev = FIRST
    for number, line in enumerate(lines, start=1):
        complete = line.endswith(b"\n")
        kind, detail = check_line(line, prev) if complete else ("torn", "cut short")
        prev = body_crc(line)
        if kind in ("ok", "out of place") and line in seen:
            report.lost.append(f"line {number}: {describe_line(line)}, a duplicate of an earlier line")
        elif kind in ("ok", "out of place"):  # out of place but not a duplicate: a line before it is lost
            seen.add(line)
            kept.append(json.loads(line))
        else:
            why = "a record cut short" if kind == "torn" else f"{kind}: {detail}"
            report.lost.append(f"line {number}: {describe_line(line)}, {why}")
    return kept


def _intended_ids(records: list[dict[str, Any]]) -> dict[int, int]:
    """For each creation record (by index), the trial id its worker's next trial record names."""
    intended: dict[int, int] = {}
    created = 0
    for i, rec in enumerate(records):
        if rec["op_code"] != CREATE_TRIAL:
            continue
        for later in records[i + 1 :]:
            if later.get("worker_id") == rec["worker_id"] and isinstance(later.get("trial_id"), int):
                if later["trial_id"] >= created:
                    intended[i] = later["trial_id"]
                break
        created += 1
    return intended


def _stand_in(trial_id: int, study_id: Any, start: str | None) -> dict[str, Any]:
    return {
        "op_code": CREATE_TRIAL,
        "worker_id": REPAIR_WORKER,
        "study_id": study_id,
        "datetime_start": start or _EPOCH,
        "system_attrs": {"wwtune.repaired": f"the creation record of trial id {trial_id} was lost"},
    }


def _renumbered(records: list[dict[str, Any]], report: RepairReport) -> list[dict[str, Any]]:
    """``records`` with a stand-in creation record wherever a trial's own one is missing."""
    intended = _intended_ids(records)
    studies = [r["study_id"] for r in records if r["op_code"] == CREATE_TRIAL]
    out: list[dict[str, Any]] = []
    expected, study, start = 0, studies[0] if studies else 0, None

    def fill(upto: int, where: str) -> None:
        nonlocal expected
        while expected < upto:
            out.append(_stand_in(expected, study, start))
            report.recreated.append(
                f"trial id {expected} (study id {study}): its creation record was lost; a stand-in keeps "
                f"its number (start time and creation-time parameters unknown), {where}"
            )
            expected += 1

    for i, rec in enumerate(records):
        if rec["op_code"] == CREATE_TRIAL:
            study = rec["study_id"]
            fill(intended.get(i, expected), "before the next trial's creation")
            expected += 1
            start = rec.get("datetime_start") or start
        elif isinstance(rec.get("trial_id"), int):
            fill(rec["trial_id"] + 1, "before its first remaining record")
        out.append(rec)
    return out


def repair_journal_file(path: str | os.PathLike[str], dry_run: bool = False) -> RepairReport:
    """Repair the journal at ``path`` as the module says; returns the report (nothing written when
    ``dry_run`` or when every record is consistent)."""
    path = Path(path)
    report = RepairReport(path)
    lock = JournalFileSymlinkLock(str(path.absolute()))
    lock.acquire()
    try:
        lines = path.read_bytes().splitlines(keepends=True)
        records = _renumbered(_classify(lines, report), report)
        report.kept = len(records) - len(report.recreated)
        if dry_run or not report.changed:
            return report
        backup = path.with_name(f"{path.name}.bak.{time.strftime('%Y%m%dT%H%M%S')}.{os.getpid()}")
        shutil.copy2(path, backup)
        fresh = path.with_name(f".{path.name}.repair.{os.getpid()}.tmp")
        try:
            with open(fresh, "wb") as f:
                f.write(seal_logs(records, FIRST))
                f.flush()
                os.fsync(f.fileno())
            os.replace(fresh, path)
        finally:
            fresh.unlink(missing_ok=True)
        report.backup = backup
    finally:
        lock.release()
    return report


def main(argv: Sequence[str]) -> int:
    """``wwtune repair-journal PATH [--dry-run]``."""
    parser = argparse.ArgumentParser(
        prog="wwtune repair-journal",
        description="Mend a study journal that wwtune refused: keep every consistent record, renumber no "
        "trial, keep a backup, and list exactly what is dropped.",
    )
    parser.add_argument("path", help="the journal file (studies/<name>/journal.log)")
    parser.add_argument("--dry-run", action="store_true", help="report what would be dropped; write nothing")
    args = parser.parse_args(list(argv))
    if not Path(args.path).is_file():
        print(f"wwtune: error: {args.path!r} is not a file (studies/<name>/journal.log)", file=sys.stderr)
        return 2
    try:
        report = repair_journal_file(args.path, dry_run=args.dry_run)
    except OSError as exc:
        print(f"wwtune: write error: could not repair {args.path!r}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    print(report.text())
    if args.dry_run and report.changed:
        print("(dry run: nothing was written)")
    return 0
