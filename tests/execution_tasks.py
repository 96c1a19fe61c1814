"""Task functions for tests/test_execution.py: importable by name in spawned worker processes."""

from __future__ import annotations

import os
import signal


def square(x: int) -> int:
    return x * x


def fail_on(x: int, bad: int) -> int:
    if x == bad:
        raise ValueError(f"cannot take {x}")
    return x


def die_on(x: int, bad: int) -> int:
    if x == bad:
        os.kill(os.getpid(), signal.SIGKILL)
    return x
