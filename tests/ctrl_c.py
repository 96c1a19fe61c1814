"""Sending Ctrl-C to a child process in a test, whatever launched the suite."""

from __future__ import annotations

import signal


def sigint_as_in_a_terminal() -> None:
    """``preexec_fn`` for a child the test interrupts with SIGINT: the child starts with SIGINT at its default
    action, as a program started from a terminal does. A suite launched in the background without job
    control (``cmd &`` in a script, ``nohup``) hands every child SIGINT *ignored*; Python then installs no
    KeyboardInterrupt handler and the child never sees the test's Ctrl-C."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
