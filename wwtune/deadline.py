"""Time limits that hold while a trial runs: ``study.trial_timeout`` and ``study.timeout``.

Optuna checks ``timeout`` only between trials, so a hung task blocks a study for ever. :func:`trial_alarm`
arms a real-time timer around the task call; when it fires, :class:`TrialTimeout` is raised inside the
task (it derives from ``BaseException``, so a task's own ``except Exception`` cannot swallow it). It works
in the main thread on POSIX systems (where the CLI runs trials); elsewhere the limit is checked only
between trials, and a warning says so. Code blocked inside a C call that never returns to Python (a
deadlocked collective, a hung driver) is interrupted only when that call returns.

Journal appends hold the alarm (and Ctrl-C) off while they write (:func:`signals_held`), so a timeout
never tears a record.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Iterator

__all__ = ["TrialTimeout", "signals_held", "trial_alarm"]

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


@contextlib.contextmanager
def trial_alarm(seconds: float | None, message: str, *, study_wide: bool = False) -> Iterator[None]:
    """Raise :class:`TrialTimeout` (with ``message``) in this thread if the block runs ``seconds``.

    ``None`` disables it; a non-positive value fires at once.
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
        raise TrialTimeout(message, study_wide)

    previous = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, max(float(seconds), 1e-3))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


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
