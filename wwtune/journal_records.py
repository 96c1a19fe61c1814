"""The journal's records, one at a time: are they Optuna journal records, unchanged, in their place?

wwtune seals every record it appends to a study's journal with one extra field, ``"wwtune_sum"``, the last
in the record: ``"<crc>.<prev>"`` where ``<crc>`` is the CRC-32 of the record's bytes without that field
and ``<prev>`` the same CRC of the line before it (``00000000`` for the first line). Optuna's own journal
reader ignores fields it does not use, so a sealed journal still loads in plain Optuna. On load
(:func:`check_line`):

* a line that is not JSON, not an object, or not a record Optuna can apply (an unknown ``op_code``, a
  missing field) is *not a record* — cut back when it is the journal's tail (:mod:`wwtune.journal`),
  refused in the middle;
* a sealed record whose bytes do not match its CRC was *changed* (a flipped bit, an edited digit);
* a sealed record whose ``<prev>`` is not the line before it has *lost its place*: a record before it was
  deleted, or it is a duplicate.

Records written before seals existed (or by plain Optuna) carry no seal and are only checked for shape.
What a seal cannot show: a deleted *last* record (it looks like a record never written), or damage to an
unsealed record that keeps its shape.
"""

from __future__ import annotations

import json
import os
import re
import zlib
from collections.abc import Mapping
from typing import Any

__all__ = [
    "SUM_KEY",
    "body_crc",
    "check_line",
    "describe_line",
    "last_line",
    "record_problem",
    "seal",
    "seal_logs",
]

#: the field that carries a record's seal
SUM_KEY = "wwtune_sum"
_SEALED = re.compile(rb',"' + SUM_KEY.encode() + rb'":"([0-9a-f]{8})\.([0-9a-f]{8})"\}\r?\n?$')
#: CRC of the (absent) line before the first one
FIRST = "00000000"

# The fields Optuna's journal replay reads for each operation (``optuna.storages.journal``'s op codes).
_TRIAL = ("trial_id",)
_FIELDS: dict[int, tuple[str, ...]] = {
    0: ("study_name", "directions"),  # create study
    1: ("study_id",),  # delete study
    2: ("study_id", "user_attr"),
    3: ("study_id", "system_attr"),
    4: ("study_id", "datetime_start"),  # create trial
    5: (*_TRIAL, "param_name", "param_value_internal", "distribution"),
    6: (*_TRIAL, "state", "values"),  # set trial state and values
    7: (*_TRIAL, "step", "intermediate_value"),
    8: (*_TRIAL, "user_attr"),
    9: (*_TRIAL, "system_attr"),
    10: (),  # discard trials (written by other Optuna front ends; Optuna's replay skips it)
}
CREATE_TRIAL = 4
OPS = {
    0: "create study",
    1: "delete study",
    2: "set study user attr",
    3: "set study system attr",
    4: "create trial",
    5: "set trial param",
    6: "set trial state",
    7: "report intermediate value",
    8: "set trial user attr",
    9: "set trial system attr",
    10: "discard trials",
}


def record_problem(log: Any) -> str | None:
    """Why the parsed JSON value ``log`` is not a journal record Optuna can apply, or None when it is."""
    if not isinstance(log, dict):
        return f"a JSON {type(log).__name__}, not a record"
    op = log.get("op_code")
    if "op_code" not in log:
        return "a JSON object without an op_code"
    if not isinstance(op, int) or isinstance(op, bool) or op not in _FIELDS:
        return f"op_code {op!r}, which Optuna's journal does not know"
    missing = [k for k in ("worker_id", *_FIELDS[op]) if k not in log]
    if missing:
        return f"a {OPS[op]!r} record without {', '.join(missing)}"
    return None


def body_crc(line: bytes) -> str:
    """The CRC of ``line`` (one journal line, newline or not) without its seal, as 8 hex digits."""
    match = _SEALED.search(line)
    body = line[: match.start()] + b"}" if match else line.rstrip(b"\r\n")
    return f"{zlib.crc32(body):08x}"


def check_line(line: bytes, prev_crc: str) -> tuple[str, str | None]:
    """``(kind, detail)`` for one complete journal ``line`` (ending in a newline) after a line whose
    :func:`body_crc` is ``prev_crc``.

    ``kind`` is ``"ok"``; ``"junk"`` (not JSON, or not a journal record: ``detail`` says which);
    ``"changed"`` (its bytes do not match its seal); or ``"out of place"`` (the seal names another line
    before it: one was deleted, or this one is a duplicate).
    """
    try:
        log = json.loads(line)
    except ValueError:
        return "junk", "not JSON"
    problem = record_problem(log)
    if problem:
        return "junk", problem
    match = _SEALED.search(line)
    if match is None:
        if SUM_KEY in log:  # a seal that is not where wwtune writes it: the line was edited
            return "changed", "its seal is malformed"
        return "ok", None
    crc, prev = match.group(1).decode(), match.group(2).decode()
    if body_crc(line) != crc:
        return "changed", "its bytes do not match its checksum"
    if prev != prev_crc:
        return "out of place", "the record before it is not the one it was written after"
    return "ok", None


def seal(log: Mapping[str, Any], prev_crc: str) -> tuple[bytes, str]:
    """``log`` as one sealed journal line (newline included) following a line of CRC ``prev_crc``; and
    this line's CRC (the ``prev_crc`` of the next)."""
    body = json.dumps({k: v for k, v in log.items() if k != SUM_KEY}, separators=(",", ":")).encode()
    crc = f"{zlib.crc32(body):08x}"
    return body[:-1] + f',"{SUM_KEY}":"{crc}.{prev_crc}"}}\n'.encode(), crc


def seal_logs(logs: list[Mapping[str, Any]], prev_crc: str) -> bytes:
    """Several records sealed in a chain after a line of CRC ``prev_crc``."""
    out = []
    for log in logs:
        line, prev_crc = seal(log, prev_crc)
        out.append(line)
    return b"".join(out)


def last_line(fd: int, size: int) -> bytes:
    """The last complete line of the file open as ``fd`` (``size`` bytes long); empty when none."""
    if size == 0:
        return b""
    chunk, end = 65536, size
    data = b""
    while end > 0:
        start = max(0, end - chunk)
        data = os.pread(fd, end - start, start) + data
        end = start
        cut = data.rfind(b"\n", 0, len(data) - 1)
        if cut >= 0:
            return data[cut + 1 :]
    return data


def describe_line(line: bytes) -> str:
    """A short, safe description of a journal line for messages: its op and trial or study, else its start."""
    try:
        log = json.loads(line)
    except ValueError:
        log = None
    if isinstance(log, dict) and log.get("op_code") in OPS:
        where = next((f"{k} {log[k]}" for k in ("trial_id", "study_id", "study_name") if k in log), "")
        return f"a {OPS[log['op_code']]!r} record" + (f" ({where})" if where else "")
    text = line[:40].decode("utf-8", errors="replace").rstrip("\r\n")
    return f"{text!r}" + ("…" if len(line) > 40 else "")
