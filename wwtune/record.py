"""The stored record of a wwtune study: what a trial writes, and the one way everything else reads it.

A study lives in Optuna's storage as trial and study **user attrs** named ``wwtune.*``. This module owns:

* **attr names** (:data:`LAYERS`, :data:`SCORE`, … for trials; :data:`STUDY_CONFIG`, … for the study);
  a new stored attr is declared here, written through :class:`TrialWriter` and read through
  :class:`TrialRecord`;
* **the writer** :class:`TrialWriter` (used by the trial runner and the trial bridge) and **the reader**
  :class:`TrialRecord` (used by the pruner, replay, trust, advisor, summary and report), with
  :meth:`TrialRecord.layers` returning the per-layer table as a DataFrame.

Their neighbours have their own homes: the failed-fit rule in :mod:`wwtune.spectral.fit_rule`, JSON-safety
and whole-file writes in :mod:`wwtune.diskio`, the study's folder in :mod:`wwtune.study_folder`, the
per-layer table a trial stores in :func:`wwtune.score.layers_record`, and which trial is feasible or best
in :mod:`wwtune.ranking`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import optuna
import pandas as pd
from optuna.trial import FrozenTrial, TrialState

# the neighbours' names, importable from here as before (each lives in its home, below this module)
from wwtune.diskio import atomic_write, atomic_write_text, json_safe
from wwtune.spectral.fit_rule import (
    FAILED_FIT_MAX_ALPHA,
    alpha_values,
    failed_fits,
    finite_or_none,
    fit_failed,
)
from wwtune.study_folder import (
    SPECTRA_DIR,
    best_params_path,
    check_study_name,
    read_trial_spectra,
    report_path,
    spectra_path,
    studies_dir,
    study_dir,
    study_folder,
    write_trial_spectra,
)

__all__ = [
    "FAILED_FIT_MAX_ALPHA",
    "SPECTRA_DIR",
    "TrialRecord",
    "TrialWriter",
    "alpha_values",
    "atomic_write",
    "atomic_write_text",
    "best_params_path",
    "check_study_name",
    "failed_fits",
    "finite_or_none",
    "fit_failed",
    "json_safe",
    "read_trial_spectra",
    "report_path",
    "spectra_path",
    "studies_dir",
    "study_attr",
    "study_dir",
    "study_folder",
    "trials_of",
    "write_study_attrs",
    "write_trial_spectra",
]

# ------------------------------------------------------------------------------------------ attr names
#: per-layer table of the latest analysis, columnar (see :func:`layers_record`)
LAYERS = "wwtune.layers"
#: the fingerprint of the score rule the trial was scored under (:func:`wwtune.resume.score_rule`)
SCORE_RULE = "wwtune.score_rule"
#: the α score of the trial's last analysis (stored even when the study optimises the held-out metric)
SCORE = "wwtune.score"
#: the task's held-out metric (``{"heldout": value}``), stored, never optimised unless score=heldout
HELDOUT = "wwtune.heldout"
#: other keys the task returned
RESULT = "wwtune.result"
#: the training budget of the trial (the pruner's default warm-up reads it)
BUDGET = "wwtune.budget"
#: ``[[step, loss], ...]`` as reported
LOSSES = "wwtune.losses"
#: ``{"host", "pid", "worker_id", ...}`` of the process that ran the trial: a *system* attr (bookkeeping,
#: kept out of ``trials_dataframe()``'s user attrs); read from the user attrs too (older studies)
WORKER = "wwtune.worker"
FAIL_REASON = "wwtune.fail_reason"
PRUNE_REASON = "wwtune.prune_reason"
INFEASIBLE_REASON = "wwtune.infeasible_reason"
#: ``[c]`` with c > 0 for a trial kept as infeasible (sanity.on_violation=infeasible); also stored as
#: Optuna's own ``constraints`` system attr (:data:`OPTUNA_CONSTRAINTS`, what optuna-dashboard shows)
CONSTRAINT, OPTUNA_CONSTRAINTS = "wwtune.constraint", "constraints"
#: the loss-drop rule's short-run form, when it applied (:func:`wwtune.sanity_rules.short_run_note`)
LOSS_RULE = "wwtune.loss_rule"
#: each layer's final α as a flat float attr ``wwtune.alpha.<layer>`` (:meth:`TrialWriter.alphas`)
ALPHA_PREFIX = "wwtune.alpha."
#: the loss before training (``report(0, ...)``), the reference of the loss-drop rule
REFERENCE_LOSS = "wwtune.reference_loss"
TIME_TRAIN = "wwtune.time_train_s"
TIME_ANALYSIS = "wwtune.time_analysis_s"

#: study attrs
STUDY_CONFIG = "wwtune.config"
STUDY_BAND = "wwtune.band"
STUDY_HELDOUT_DIRECTION = "wwtune.heldout_direction"
STUDY_HELDOUT_NAME = "wwtune.heldout_name"
STUDY_TRUST, STUDY_PICK = "wwtune.trust", "wwtune.pick"  # the pick: wwtune.pick.Pick.as_attr
STUDY_ADVICE = "wwtune.advice"
#: the study's score kind (``pareto``: best_trial is :func:`wwtune.ranking.pareto_pick`)
STUDY_SCORE_KIND = "wwtune.score_kind"
#: whether the task's training loss is comparable across trials (the trust report's baseline)
STUDY_LOSS_COMPARABLE = "wwtune.loss_comparable"
#: the study's current score rule; the rule of its trials that predate per-trial rules (if it differs)
STUDY_SCORE_RULE, STUDY_LEGACY_RULE = "wwtune.study_score_rule", "wwtune.legacy_score_rule"


# ------------------------------------------------------------------------------------------ writer
class TrialWriter:
    """Writes a running trial's record (the only code that sets ``wwtune.*`` trial attrs)."""

    def __init__(self, trial: optuna.trial.Trial) -> None:
        self.trial = trial

    def _set(self, key: str, value: Any) -> None:
        self.trial.set_user_attr(key, value)

    def start(self, budget: int, worker: Mapping[str, Any], score_rule: str | None = None) -> None:
        """The trial's budget, the process running it (``worker``: the caller's
        :func:`wwtune.reaping.process_identity`) and its score rule."""
        self._set(BUDGET, int(budget))
        # bookkeeping, out of the user attrs; Optuna offers no public per-trial system attr setter
        self.trial.storage.set_trial_system_attr(self.trial._trial_id, WORKER, dict(worker))
        if score_rule is not None:
            self._set(SCORE_RULE, score_rule)

    def budget(self, budget: int) -> None:
        self._set(BUDGET, int(budget))

    def layers(self, record: Mapping[str, Any]) -> None:
        self._set(LAYERS, record)

    def losses(self, losses: Sequence[Sequence[float]]) -> None:
        self._set(LOSSES, json_safe(list(losses)))

    def timing(self, train_s: float, analysis_s: float) -> None:
        self._set(TIME_ANALYSIS, analysis_s)
        self._set(TIME_TRAIN, train_s)

    def fail_reason(self, reason: str) -> None:
        self._set(FAIL_REASON, reason)

    def prune_reason(self, reason: Mapping[str, Any]) -> None:
        self._set(PRUNE_REASON, reason)

    def has_prune_reason(self) -> bool:
        return PRUNE_REASON in self.trial.user_attrs

    def heldout(self, value: float | None) -> None:
        self._set(HELDOUT, value)

    def result(self, extra: Mapping[str, Any]) -> None:
        self._set(RESULT, json_safe(dict(extra)))

    def score(self, value: float) -> None:
        self._set(SCORE, value)

    def infeasible(self, reason: str) -> None:
        self._set(INFEASIBLE_REASON, reason)

    def reference_loss(self, value: float) -> None:
        self._set(REFERENCE_LOSS, value)

    def loss_rule(self, note: str) -> None:
        self._set(LOSS_RULE, note)

    def alphas(self, record: Mapping[str, Any]) -> None:
        """Each layer's α of a :func:`wwtune.score.layers_record` as its own float attr
        ``wwtune.alpha.<layer>`` (None where the fit failed): sortable and plottable in
        ``trials_dataframe()`` and optuna-dashboard."""
        for name, alpha, status in zip(record["name"], record["alpha"], record["status"], strict=True):
            self._set(ALPHA_PREFIX + name, None if fit_failed(alpha, status) else float(alpha))

    def constraint(self, violated: bool) -> None:
        """``[1.0]`` (violated) or ``[0.0]``: wwtune's attr and Optuna's ``constraints`` system attr
        (positive = violated, as a sampler's ``constraints_func`` stores it), which optuna-dashboard shows."""
        self._set(CONSTRAINT, [1.0 if violated else 0.0])
        self.trial.storage.set_trial_system_attr(
            self.trial._trial_id, OPTUNA_CONSTRAINTS, [1.0 if violated else 0.0]
        )


def fail_trial_in_storage(study: optuna.Study, trial: FrozenTrial, reason: str) -> None:
    """Store ``reason`` and mark a trial of another (dead) process FAIL, straight in the storage."""
    # Optuna offers no public call to finish the trial of another process
    storage = study._storage
    storage.set_trial_user_attr(trial._trial_id, FAIL_REASON, reason)
    storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)


def write_study_attrs(
    study: optuna.Study,
    config: Mapping[str, Any],
    band: Sequence[float],
    heldout: Mapping[str, Any] | None,
    score_kind: str | None = None,
    loss_comparable: bool = True,
) -> None:
    """The study attrs a run stores: its config (already redacted), the score's band and kind, the
    held-out metric, whether the task's training loss is comparable across trials (its score rule:
    :func:`wwtune.resume.record_score_rule`)."""
    study.set_user_attr(STUDY_CONFIG, json_safe(dict(config)))
    study.set_user_attr(STUDY_SCORE_KIND, score_kind)
    study.set_user_attr(STUDY_LOSS_COMPARABLE, bool(loss_comparable))
    study.set_user_attr(STUDY_BAND, list(band))
    study.set_user_attr(STUDY_HELDOUT_DIRECTION, heldout.get("direction") if heldout else None)
    study.set_user_attr(STUDY_HELDOUT_NAME, heldout.get("name") if heldout else None)


# ------------------------------------------------------------------------------------------ reader
def trials_of(study_or_trials: optuna.Study | Iterable[FrozenTrial]) -> list[FrozenTrial]:
    """The trials of a study (any storage), or the given trials as a list, sorted by trial number."""
    if isinstance(study_or_trials, optuna.Study):
        trials = study_or_trials.get_trials(deepcopy=False)
    else:
        try:
            trials = list(study_or_trials)
        except TypeError:
            raise TypeError(
                "Expected an optuna.Study or an iterable of optuna.trial.FrozenTrial but got "
                f"{type(study_or_trials).__name__}."
            ) from None
        for t in trials:
            if not isinstance(t, FrozenTrial):
                raise TypeError(f"Expected optuna.trial.FrozenTrial items but got {type(t).__name__}.")
    return sorted(trials, key=lambda t: t.number)


def study_attr(study_or_trials: Any, key: str, default: Any = None) -> Any:
    """A study user attr when a study is given, else ``default``."""
    if isinstance(study_or_trials, optuna.Study):
        return study_or_trials.user_attrs.get(key, default)
    return default


def _stored(key: str, doc: str) -> property:
    """A read-only :class:`TrialRecord` property: the trial attr ``key`` as stored, or None."""
    return property(lambda self: self.attrs.get(key), doc=doc)


class TrialRecord:
    """Reads what a trial stored (a ``FrozenTrial``, or a running trial: anything with ``user_attrs``).

    Each property is one stored attr as stored (None when absent); :meth:`layers` is the per-layer table
    as a DataFrame and :meth:`score` the trial's α score.
    """

    layers_attr = _stored(LAYERS, "the per-layer table as stored (a dict of columns)")
    budget = _stored(BUDGET, "the training budget")
    stored_score = _stored(SCORE, "the stored α score (see :meth:`score` for the trial's score)")
    heldout = _stored(HELDOUT, "the task's held-out metric")
    fail_reason = _stored(FAIL_REASON, "why the trial failed")
    prune_reason = _stored(PRUNE_REASON, "why it was pruned (a dict with 'message' and 'step')")
    infeasible_reason = _stored(INFEASIBLE_REASON, "why it was kept as infeasible")

    def __init__(self, trial: Any) -> None:
        self.trial = trial
        self.attrs: Mapping[str, Any] = trial.user_attrs

    def layers(self) -> pd.DataFrame | None:
        """The latest per-layer table as a DataFrame (``attrs["step"]`` = its step), or None."""
        cols = self.layers_attr
        if not isinstance(cols, Mapping) or "name" not in cols:
            return None
        names = list(cols["name"])
        data = {k: list(v) for k, v in cols.items() if isinstance(v, (list, tuple)) and len(v) == len(names)}
        df = pd.DataFrame(data)
        if "step" in cols and not isinstance(cols["step"], (list, tuple)):
            df.attrs["step"] = cols["step"]
        return df

    @property
    def losses(self) -> list[Any]:
        """``[[step, loss], ...]`` as reported (empty when none)."""
        return list(self.attrs.get(LOSSES) or ())

    @property
    def final_train_loss(self) -> float | None:
        """The last training loss the task reported, or None when missing or non-finite."""
        losses = self.losses
        last = losses[-1] if losses else None
        if not isinstance(last, (list, tuple)) or len(last) < 2:
            return None
        return finite_or_none(last[1])

    @property
    def worker(self) -> Mapping[str, Any]:
        """``{"host", "pid", "worker_id"}`` of the process that ran it (empty when unknown)."""
        return getattr(self.trial, "system_attrs", {}).get(WORKER) or self.attrs.get(WORKER) or {}

    def time_train_s(self, default: Any = None) -> Any:
        return self.attrs.get(TIME_TRAIN, default)

    def time_analysis_s(self, default: Any = None) -> Any:
        return self.attrs.get(TIME_ANALYSIS, default)

    def score(self) -> float | None:
        """The α score: the value when complete, else the stored score or the last intermediate value."""
        t = self.trial
        if t.state == TrialState.COMPLETE and t.values is not None and len(t.values) == 1:
            return finite_or_none(t.values[0])
        stored = finite_or_none(self.stored_score)
        if stored is not None:
            return stored
        if t.intermediate_values:
            return finite_or_none(t.intermediate_values[max(t.intermediate_values)])
        return None


def trial_score(trial: FrozenTrial) -> float | None:
    """:meth:`TrialRecord.score` of ``trial``."""
    return TrialRecord(trial).score()
