"""Every error a user of wwtune may catch derives from :class:`WwtuneError`.

Each one also keeps the built-in base it always had (``ValueError``, ``OSError``, ``RuntimeError``), so
code that catches those today still does. The list, with when each is raised: ``docs/errors.md``.
Errors that need a heavier import (``TrialPruned`` is also Optuna's ``TrialPruned``) are declared in
their module and still derive from one of these.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "LayerFailed",
    "NoEligibleLayers",
    "Pruned",
    "TrainingDiverged",
    "TrialFailed",
    "WwtuneError",
]


class WwtuneError(Exception):
    """The base of every error wwtune raises on purpose (``except wwtune.WwtuneError`` catches them all)."""


class Pruned(WwtuneError):  # noqa: N818 - reads as "the run was pruned"
    """Raised by a reporter to stop a run early; the study records the reason.

    The bridge raises its subclass :class:`wwtune.bridge.TrialPruned`, which is also Optuna's
    ``TrialPruned`` (so ``study.optimize`` records the trial PRUNED); ``except Pruned`` catches both.
    """

    def __init__(self, reason: str, step: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.step = step


class TrialFailed(WwtuneError):  # noqa: N818 - reads as "the trial failed"
    """A trial failed a sanity rule (or its task raised); the reason is in ``wwtune.fail_reason``.

    Pass ``catch=(wwtune.TrialFailed,)`` to ``study.optimize`` so one bad trial does not end the study.
    """


class TrainingDiverged(TrialFailed):  # noqa: N818
    """A run's loss or weights became NaN/Inf; the trial fails with this reason.

    Raised by the task's own checks (:func:`wwtune.objective.check_finite_loss`) and by the bridge, which
    first stores :attr:`reason` as the trial's fail reason (then :attr:`recorded` is True). One concept:
    it was ``wwtune.bridge.Diverged`` when the bridge raised it (that name is a deprecated alias).
    """

    def __init__(self, message: str = "", *, reason: str | None = None, recorded: bool = False) -> None:
        super().__init__(message)
        #: the trial's fail reason: ``"diverged: <message>"``
        self.reason = reason if reason is not None else f"diverged: {message}"
        #: whether the reason is already stored in the trial (by the bridge)
        self.recorded = recorded


class ConfigError(WwtuneError, ValueError):
    """The composed configuration is invalid; the message names the key, the value and what is allowed."""


class NoEligibleLayers(WwtuneError, ValueError):
    """The model has no layer the score may count (too few eigenvalues, or every fit failed)."""


class WriteError(WwtuneError, OSError):
    """A study file could not be written; ``str()`` is one line naming the file and what was lost."""

    def __init__(self, message: str, errno: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if errno is not None:
            self.errno = errno

    def __str__(self) -> str:
        return self.message


class JournalWriteError(WriteError):
    """Appending to the journal failed (disk full, ...); the append was rolled back, the file is readable."""


class JournalCorrupt(WwtuneError, ValueError):
    """A broken record sits in the middle of a journal: refused, the message says where and what to do."""


class StorageError(WwtuneError, ValueError):
    """The storage configuration is invalid; the message names the bad value and what is allowed."""


class StorageConnectionError(WwtuneError, RuntimeError):
    """The study storage cannot be reached or used. The message never contains a password."""


class SearchSpaceError(WwtuneError, ValueError):
    """A search space entry is malformed; the message names the entry and what is allowed."""


class SweeperMoved(WwtuneError, ValueError):
    """A hydra-optuna-sweeper setting in a wwtune run; the message names the wwtune equivalent."""


class UsageError(WwtuneError):
    """A bad command line: reported like argparse's own errors (exit status 2)."""


class LayerFailed(WwtuneError, RuntimeError):
    """A layer's analysis failed in a worker (an exception, or the worker process died); names the layer."""

    def __init__(self, layer: str, why: str) -> None:
        super().__init__(f"layer {layer!r}: {why}")
        self.layer = layer
