"""Time limits that hold while a trial runs: ``study.trial_timeout`` and ``study.timeout``.

Optuna checks ``timeout`` only between trials, so a hung task blocks a study for ever. :func:`trial_alarm`
arms a real-time timer around the task call; when it fires, :class:`TrialTimeout` is raised inside the
task (it derives from ``BaseException``, so a task's own ``except Exception`` cannot swallow it). It works
in the main thread on POSIX systems (where the CLI runs trials); elsewhere the limit is checked only
between trials, and a warning says so. Code blocked inside a C call that never returns to Python (a
deadlocked collective, a hung driver) is interrupted only when that call returns.

A task that installs its own SIGALRM handler (or clears the timer) would silently switch the limit off:
:func:`check_alarm`, called at each of the task's reports, puts the handler back and raises past the
deadline, and a task that returns past its deadline with the handler replaced fails saying so. A task that
takes SIGALRM over and then hangs without reporting is stopped only when it returns.

Journal appends hold the alarm (and Ctrl-C) off while they write (:func:`signals_held`), so a timeout
never tears a record.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

__all__ = ["TrialTimeout", "check_alarm", "signals_held", "trial_alarm"]

_logger = logging.getLogger(__name__)
_HELD = tuple(
    s for s in (getattr(signal, "SIGALRM", None), signal.SIGINT, getattr(signal, "SIGTERM", None)) if s
)


class TrialTimeout(BaseException):  # noqa: N818 - reads as "the trial timed out"
    """The running trial passed its time limit; ``study_wide`` when the limit was ``study.timeout``."""

    def __init__(self, message: str, study_wide: bool) -> None:
        super().__init__(message)
        self.study_wide = study_wide


def _can_alarm() -> bool:
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


class _Alarm:
    """The armed trial alarm: its handler, deadline and message (what :func:`check_alarm` needs)."""

    def __init__(self, fire: Any, deadline: float, message: str, study_wide: bool) -> None:
        self.fire, self.deadline, self.message, self.study_wide = fire, deadline, message, study_wide
        self.replaced = False  # the task replaced the SIGALRM handler or cleared the timer
        self.fired = False  # the alarm raised TrialTimeout in the task (which may have caught it)


_ARMED: list[_Alarm] = []
_CAUGHT = "the task caught the stop and ran on"
_REPLACED = (
    "the task replaced the SIGALRM handler (or cleared the timer) that enforces the time limit, so it was "
    "not stopped on time"
)


def _taken(alarm: _Alarm) -> bool:
    return signal.getsignal(signal.SIGALRM) is not alarm.fire or signal.getitimer(signal.ITIMER_REAL)[0] == 0


def check_alarm() -> None:
    """Called at each of the task's reports: the time limit holds even if the task took SIGALRM over.

    Past the deadline it raises :class:`TrialTimeout`; a handler or timer the task replaced is put back
    (with a warning, once), armed with the time that is left.
    """
    if not _ARMED or threading.current_thread() is not threading.main_thread():
        return
    alarm = _ARMED[-1]
    left = alarm.deadline - time.monotonic()
    if alarm.fired:  # the task caught the stop and reports on: stop it again
        raise TrialTimeout(f"{alarm.message} ({_CAUGHT})", alarm.study_wide)
    if not _taken(alarm):
        return
    if not alarm.replaced:
        alarm.replaced = True
        _logger.warning(
            "The task replaced the SIGALRM handler (or cleared the timer) that wwtune's trial time limit "
            "uses; the limit is restored at each reporter.report, and checked when the task returns."
        )
    if left <= 0:
        signal.setitimer(signal.ITIMER_REAL, 0)
        raise TrialTimeout(f"{alarm.message} ({_REPLACED})", alarm.study_wide)
    signal.signal(signal.SIGALRM, alarm.fire)
    signal.setitimer(signal.ITIMER_REAL, max(left, 1e-3))


@contextlib.contextmanager
def trial_alarm(seconds: float | None, message: str, *, study_wide: bool = False) -> Iterator[None]:
    """Raise :class:`TrialTimeout` (with ``message``) in this thread if the block runs ``seconds``.

    ``None`` disables it; a non-positive value fires at once. If the block replaces the SIGALRM handler or
    clears the timer, :func:`check_alarm` (at each report) restores it, and a block that ends past its
    deadline with the handler replaced raises :class:`TrialTimeout` saying so.
    """
    if seconds is None:
        yield
        return
    if not _can_alarm():
        _logger.warning(
            "A trial time limit needs the main thread of a POSIX process; it is checked between "
            "trials only here."
        )
        yield
        return

    def fire(signum: int, frame: object) -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)
        alarm.fired = True
        raise TrialTimeout(message, study_wide)

    alarm = _Alarm(fire, time.monotonic() + float(seconds), message, study_wide)
    previous = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, max(float(seconds), 1e-3))
    _ARMED.append(alarm)
    ended = False
    try:
        yield
        ended = True
    finally:
        _ARMED.remove(alarm)
        taken = _taken(alarm)
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    if ended and alarm.fired:
        raise TrialTimeout(f"{message} ({_CAUGHT})", study_wide)
    if ended and (taken or alarm.replaced) and time.monotonic() >= alarm.deadline:
        raise TrialTimeout(f"{message} ({_REPLACED})", study_wide)


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Delay SIGALRM, SIGINT and SIGTERM until the block is done (main thread only; a no-op elsewhere)."""
    if not hasattr(signal, "pthread_sigmask") or threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, _HELD)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
