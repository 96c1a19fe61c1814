"""The sanity rules a trial's run must pass once it ends: the training loss fell
(``sanity.min_loss_drop``, with its short-run form) and no layer diverged (``sanity.norm_growth``).

:class:`wwtune.bridge.TrialBridge` applies them to every trial, the CLI's and a user's own loop's alike;
a broken rule makes the trial infeasible or failed (``sanity.on_violation``), with the reason these
functions word.
"""

from __future__ import annotations

from typing import Any

from wwtune.layer_rules import LayerTable, diverged_reason

__all__ = ["LOSS_RULE_MIN_REPORTS", "loss_values", "loss_violation", "norm_violation", "short_run_note"]

#: the loss-drop rule's full form needs this many loss values (the loss before training counts as one);
#: a shorter run (a 3-epoch fine-tune) passes when its loss fell at every report instead
LOSS_RULE_MIN_REPORTS = 5


def loss_values(losses: list[list[float]], reference: float | None) -> list[float]:
    """The losses the loss-drop rule reads: the loss before training (when given), then each report's."""
    values = [float(loss) for _, loss in losses]
    return values if reference is None else [float(reference), *values]


def short_run_note(
    losses: list[list[float]], min_loss_drop: float | None, reference: float | None
) -> str | None:
    """Why the loss-drop rule takes its short-run form for this run, or None (full form, or rule off)."""
    n = len(loss_values(losses, reference))
    if not min_loss_drop or n < 2 or n >= LOSS_RULE_MIN_REPORTS:
        return None
    return (
        f"short run ({n} loss values < {LOSS_RULE_MIN_REPORTS}): the loss-drop rule asks for a fall at every "
        f"report instead of min_loss_drop={min_loss_drop:g}"
    )


def loss_violation(
    losses: list[list[float]], min_loss_drop: float | None, reference: float | None = None
) -> str | None:
    """Why the loss-drop rule fails, or None: the last reported loss compared with the loss before
    training (``reference``, from ``report(0, ...)``) when the task gave it, else with the first reported
    loss — so a run whose first epoch blew the loss up does not pass because it came down afterwards.

    A run with fewer than :data:`LOSS_RULE_MIN_REPORTS` loss values (the reference included) is too short
    for a fixed fraction (a 3-epoch fine-tune falls by 0.5–2%): it passes when its loss fell at every
    report, a fall that the run's own report-to-report noise would not produce (:func:`short_run_note`)."""
    if not min_loss_drop or not losses:
        return None
    if reference is not None:
        first, where = reference, "before training"
    elif len(losses) >= 2:
        first, where = losses[0][1], f"at step {losses[0][0]}"
    else:
        return None
    last = losses[-1][1]
    if first <= 0:
        return None
    drop = (first - last) / first
    if drop >= min_loss_drop:
        return None
    short = short_run_note(losses, min_loss_drop, reference)
    values = loss_values(losses, reference)
    if short is not None and all(b < a for a, b in zip(values, values[1:], strict=False)):
        return None
    return (
        f"training loss did not fall by sanity.min_loss_drop={min_loss_drop:g}: "
        f"{first:.4g} {where} -> {last:.4g} at step {losses[-1][0]} "
        f"(drop {drop:.1%})" + (f"; {short}, and it did not" if short else "")
    )


def norm_violation(reporter: Any, norm_growth: float | None) -> str | None:
    """``sanity.norm_growth`` for a trial's :class:`~wwtune.bridge.StudyReporter` (``reporter``): the
    divergence rule of ``pruner=alpha`` applied to every trial's final
    analysis (an eligible layer with α < 2 whose spectral or Frobenius norm grew more than ``norm_growth``
    times since the first analysis — step 0 when the task reports before training), or None."""
    if not norm_growth or reporter.first_layers is None or reporter.last_result is None:
        return None
    record = reporter.latest_layers()
    if record is None:
        return None
    first = LayerTable.from_attr(reporter.first_layers)
    reason = diverged_reason((), LayerTable.from_attr(record), first, norm_growth=float(norm_growth))
    return None if reason is None else f"diverged: {reason['message']}"
