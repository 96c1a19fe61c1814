"""The stored record of a wwtune study: what a trial writes, and the one way everything else reads it.

A study lives in two places: Optuna's storage (trial and study **user attrs** named ``wwtune.*``) and the
study's folder ``<studies_dir>/<name>/`` (``best_params.yaml``, ``report.html``, ``spectra/``, …). This
module owns both:

* **attr names** (:data:`LAYERS`, :data:`SCORE`, … for trials; :data:`STUDY_CONFIG`, … for the study);
  a new stored attr is declared here, written through :class:`TrialWriter` and read through
  :class:`TrialRecord`;
* **the writer** :class:`TrialWriter` (used by the trial runner and the trial bridge) and **the reader**
  :class:`TrialRecord` (used by the pruner, replay, trust, advisor, summary and report), with
  :meth:`TrialRecord.layers` returning the per-layer table as a DataFrame;
* **the rules read off a record**: :func:`failed_fits` (one failed-fit rule), :func:`is_feasible` and
  :func:`best_trial` (one feasibility / best-trial rule);
* :func:`json_safe` (everything stored is JSON), :func:`atomic_write` (files written whole, then renamed);
* **the study folder**: :func:`studies_dir` (the one resolution of ``study.studies_dir``),
  :func:`study_dir`, :func:`study_folder`, :func:`report_path`, :func:`best_params_path`,
  :func:`spectra_path`, and the spectra I/O :func:`write_trial_spectra` / :func:`read_trial_spectra`.

The failed-fit rule: a layer's power-law fit failed when its ``status`` is not ``"success"``, its α is
not finite, or α ≤ :data:`FAILED_FIT_MAX_ALPHA` (1.0): a power-law density ``p(λ) ∝ λ^(−α)`` cannot be
normalised for α ≤ 1, and the fitter reports a failure as α = −1, so such an α is never "a small α".
"""

from __future__ import annotations

import json
import math
import os
import re
import socket
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import optuna
import pandas as pd
from optuna.trial import FrozenTrial, TrialState

from wwtune import diskio
from wwtune.diskio import WriteError

if TYPE_CHECKING:
    from wwtune.score import Score

__all__ = [
    "FAILED_FIT_MAX_ALPHA",
    "SPECTRA_DIR",
    "TrialRecord",
    "TrialWriter",
    "alpha_values",
    "atomic_write",
    "atomic_write_text",
    "best_params_path",
    "best_trial",
    "constraints",
    "earlier_rule_trials",
    "failed_fits",
    "feasible_trials",
    "fit_failed",
    "is_feasible",
    "json_safe",
    "layers_record",
    "ranked_trials",
    "read_trial_spectra",
    "report_path",
    "spectra_path",
    "studies_dir",
    "study_value",
    "study_dir",
    "study_folder",
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
#: ``{"host", "pid", "worker_id"}`` of the process that ran the trial
WORKER = "wwtune.worker"
FAIL_REASON = "wwtune.fail_reason"
PRUNE_REASON = "wwtune.prune_reason"
INFEASIBLE_REASON = "wwtune.infeasible_reason"
#: ``[c]`` with c > 0 for a trial kept as infeasible (sanity.on_violation=infeasible)
CONSTRAINT = "wwtune.constraint"
#: the loss before training (``report(0, ...)``), the reference of the loss-drop rule
REFERENCE_LOSS = "wwtune.reference_loss"
TIME_TRAIN = "wwtune.time_train_s"
TIME_ANALYSIS = "wwtune.time_analysis_s"

#: study attrs
STUDY_CONFIG = "wwtune.config"
STUDY_BAND = "wwtune.band"
STUDY_HELDOUT_DIRECTION = "wwtune.heldout_direction"
STUDY_HELDOUT_NAME = "wwtune.heldout_name"
STUDY_TRUST = "wwtune.trust"
STUDY_ADVICE = "wwtune.advice"
#: the study's score kind (``pareto``: best_trial is :func:`wwtune.score.pareto_pick`)
STUDY_SCORE_KIND = "wwtune.score_kind"
#: whether the task's training loss is comparable across trials (the trust report's baseline)
STUDY_LOSS_COMPARABLE = "wwtune.loss_comparable"
#: the study's current score rule; the rule of its trials that predate per-trial rules (if it differs)
STUDY_SCORE_RULE, STUDY_LEGACY_RULE = "wwtune.study_score_rule", "wwtune.legacy_score_rule"

#: folder (in the study's folder) of each trial's final eigenvalues, ``trial<N>.npz``
SPECTRA_DIR = "spectra"
#: α at or below this is a failed power-law fit (see the module docstring)
FAILED_FIT_MAX_ALPHA = 1.0


# ------------------------------------------------------------------------------------------ values
def json_safe(value: Any) -> Any:
    """A JSON-serialisable copy: non-finite floats and pandas' NA become None, numpy/torch scalars Python
    numbers, mapping keys strings, tuples lists; anything else its ``str``."""
    if isinstance(value, (bool, int, str)) or value is None:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    try:
        return json_safe(value.item())  # numpy / torch scalars
    except (AttributeError, ValueError):
        pass
    try:
        if pd.isna(value):  # pandas' NA / NaT
            return None
    except (TypeError, ValueError):
        pass
    return str(value)


def finite_or_none(x: Any) -> float | None:
    """``float(x)`` when that is a finite number, else None."""
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def atomic_write(
    path: str | os.PathLike[str],
    write: Callable[[Path], None],
    suffix: str = ".tmp",
    what: str = "a study file",
) -> Path:
    """Write a file whole under a unique temporary name beside ``path``, then rename it into place, so a
    reader (or another worker finishing at the same moment) never sees half a file. ``write(tmp)`` writes
    the content; ``suffix`` ends the temporary name (``numpy.savez`` wants ``.npz``). Parents are created.
    A failure (a full disk, ...) removes the temporary file, keeps the old one and raises
    :class:`wwtune.diskio.WriteError`, one line naming the file and ``what`` was not written."""
    out = Path(path)
    tmp = out.with_name(f".{out.name}.{socket.gethostname()}.{os.getpid()}{suffix}")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        write(tmp)
        os.replace(tmp, out)
    except BaseException as exc:
        try:
            tmp.unlink(missing_ok=True)  # a failed write leaves the old file and no half-written one beside
        except OSError:  # pragma: no cover - unlinking frees space; it fails only on a vanished folder
            pass
        if not isinstance(exc, OSError) or isinstance(exc, WriteError):
            raise
        raise WriteError(
            f"could not write {what} to {str(out)!r}: {exc.strerror or exc}"
            + ("; the previous version is kept" if out.exists() else "")
            + ".",
            exc.errno,
        ) from None
    return out


def atomic_write_text(path: str | os.PathLike[str], text: str, what: str = "a study file") -> Path:
    """:func:`atomic_write` of a UTF-8 text, flushed to disk before the rename."""

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            f.write(text.encode("utf-8"))
            f.flush()
            diskio._fsync(f.fileno())

    return atomic_write(path, write, what=what)


# ------------------------------------------------------------------------------------------ rules
def failed_fits(layers: pd.DataFrame) -> np.ndarray:
    """Boolean mask of the layers whose power-law fit failed (the rule of the module docstring)."""
    alpha = pd.to_numeric(layers["alpha"], errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(alpha) | (alpha <= FAILED_FIT_MAX_ALPHA)
    if "status" in layers.columns:
        status = layers["status"]
        bad |= (status.notna() & (status.astype(str) != "success")).to_numpy()
    return bad


def fit_failed(alpha: Any, status: Any = "success") -> bool:
    """:func:`failed_fits` for one layer (a result row's ``alpha`` and ``status``)."""
    a = finite_or_none(alpha)
    return (status is not None and str(status) != "success") or a is None or a <= FAILED_FIT_MAX_ALPHA


def alpha_values(layers: pd.DataFrame) -> np.ndarray:
    """α per row, NaN where the fit failed."""
    alpha = pd.to_numeric(layers["alpha"], errors="coerce").to_numpy(dtype=float)
    return np.where(failed_fits(layers), np.nan, alpha)


def constraints(trial: FrozenTrial) -> list[float]:
    """The trial's stored constraint values (``[0.0]`` when none): > 0 means infeasible."""
    return list(trial.user_attrs.get(CONSTRAINT, [0.0]))


def is_feasible(trial: FrozenTrial, n_objectives: int = 1) -> bool:
    """A COMPLETE trial with ``n_objectives`` finite values and no violated constraint: the only kind that
    can be best."""
    return (
        trial.state == TrialState.COMPLETE
        and trial.values is not None
        and len(trial.values) == n_objectives
        and all(v is not None and math.isfinite(v) for v in trial.values)
        and max(constraints(trial), default=0.0) <= 0.0
    )


def feasible_trials(study_or_trials: optuna.Study | Iterable[FrozenTrial]) -> list[FrozenTrial]:
    """The :func:`is_feasible` trials of the current score rule (:func:`ranked_trials`), by trial number
    (as many values as the study has objectives)."""
    n = len(study_or_trials.directions) if isinstance(study_or_trials, optuna.Study) else 1
    return [t for t in ranked_trials(study_or_trials) if is_feasible(t, n)]


def _rule_split(study_or_trials: Any) -> tuple[list[FrozenTrial], list[FrozenTrial]]:
    trials, current = trials_of(study_or_trials), study_attr(study_or_trials, STUDY_SCORE_RULE)
    if current is None:  # a list of trials, or a study that never recorded its rule: one rule
        return trials, []
    legacy = study_attr(study_or_trials, STUDY_LEGACY_RULE) or current
    same = [t for t in trials if t.user_attrs.get(SCORE_RULE, legacy) == current]
    return same, [t for t in trials if t.user_attrs.get(SCORE_RULE, legacy) != current]


def ranked_trials(study_or_trials: optuna.Study | Iterable[FrozenTrial]) -> list[FrozenTrial]:
    """The trials scored under the study's current score rule (all of a list of trials), by number: the
    only ones ranked. A study resumed under another score (``study.allow_config_change=true``) keeps the
    earlier trials (:func:`earlier_rule_trials`) but never ranks their values against the new ones."""
    return _rule_split(study_or_trials)[0]


def earlier_rule_trials(study_or_trials: optuna.Study | Iterable[FrozenTrial]) -> list[FrozenTrial]:
    """The trials scored under an earlier score rule (kept, not ranked: :func:`ranked_trials`)."""
    return _rule_split(study_or_trials)[1]


def study_value(trial: FrozenTrial) -> float:
    """The one value the advisor ranks a trial by: its value, or for a two-objective study
    (``score=pareto``: training loss, band distance) its band distance."""
    return float(trial.values[-1])


def best_trial(
    study_or_trials: optuna.Study | Iterable[FrozenTrial], direction: str | None = None
) -> FrozenTrial | None:
    """The best feasible trial (earliest wins a tie), or None; the one rule of the summary, the
    ``best_params.yaml``, the advisor and the report. ``direction`` defaults to the study's (``minimize``
    for a list of trials). A ``score=pareto`` study (two objectives: training loss, band distance) picks
    with :func:`wwtune.score.pareto_pick` (gate ``score.fit_quantile`` from the stored config); another
    multi-objective study has no single best trial (None)."""
    if direction is None:
        if isinstance(study_or_trials, optuna.Study):
            if len(study_or_trials.directions) != 1:
                return _pareto_pick(study_or_trials)
            direction = study_or_trials.direction.name.lower()
        else:
            direction = "minimize"
    trials = feasible_trials(study_or_trials)
    if not trials:
        return None
    sign = -1.0 if direction == "maximize" else 1.0
    return min(trials, key=lambda t: (sign * t.value, t.number))


def _pareto_pick(study: optuna.Study) -> FrozenTrial | None:
    if study.user_attrs.get(STUDY_SCORE_KIND) != "pareto" or len(study.directions) != 2:
        return None  # another multi-objective study: no rule to pick one trial
    from wwtune.score import pareto_pick  # lazy: wwtune.score imports wwtune.record

    trials = feasible_trials(study)
    quantile = ((study.user_attrs.get(STUDY_CONFIG) or {}).get("score") or {}).get("fit_quantile", 1.0)
    i = pareto_pick([t.values[0] for t in trials], [t.values[1] for t in trials], float(quantile or 1.0))
    return None if i is None else trials[i]


# ------------------------------------------------------------------------------------------ writer
def layers_record(layers: pd.DataFrame, score: Score, step: int) -> dict[str, Any]:
    """The columnar, JSON-serialisable per-layer table stored as :data:`LAYERS`.

    Keys: ``step, name, alpha, num_evals, eligible, warning, status, lambda_max, log_norm, rank_loss,
    num_traps`` (``num_traps`` is ``None`` when the analysis did not look for traps).
    """
    record: dict[str, Any] = {"step": int(step)}
    eligible = score.eligible(layers["num_evals"].to_numpy()) if len(layers) else np.zeros(0, bool)
    record["name"] = (
        [str(n) for n in layers["name"]] if "name" in layers.columns else [str(i) for i in range(len(layers))]
    )
    for column in ("alpha", "num_evals"):
        record[column] = [json_safe(v) for v in layers[column]]
    record["eligible"] = [bool(e) for e in eligible]
    for column in ("warning", "status", "lambda_max", "log_norm", "rank_loss"):
        present = column in layers.columns
        record[column] = [json_safe(v) for v in layers[column]] if present else [None] * len(layers)
    record["num_traps"] = (
        [json_safe(v) for v in layers["num_traps"]] if "num_traps" in layers.columns else None
    )
    return record


class TrialWriter:
    """Writes a running trial's record (the only code that sets ``wwtune.*`` trial attrs)."""

    def __init__(self, trial: optuna.trial.Trial) -> None:
        self.trial = trial

    def _set(self, key: str, value: Any) -> None:
        self.trial.set_user_attr(key, value)

    def start(self, budget: int, worker_id: int | None, score_rule: str | None = None) -> None:
        # lazy: wwtune.reaping imports this module (the worker record: PID, start time, run token)
        from wwtune.reaping import process_identity

        self._set(BUDGET, int(budget))
        self._set(WORKER, process_identity(worker_id))
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

    def constraint(self, violated: bool) -> None:
        self._set(CONSTRAINT, [1.0 if violated else 0.0])


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
        return self.attrs.get(WORKER) or {}

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


# ------------------------------------------------------------------------------------------ the folder
def studies_dir(cfg: Mapping[str, Any]) -> str:
    """``study.studies_dir`` of a composed config (default ``studies``): the one place it is resolved."""
    return str((cfg.get("study") or {}).get("studies_dir", "studies"))


#: a study name: one plain folder name (no path separator, no space, not hidden, no leading '-')
_STUDY_NAME = re.compile(r"\w[\w.-]*")


def check_study_name(study_name: Any) -> None:
    """Raise ``ValueError`` unless ``study_name`` is a plain folder name inside ``studies_dir``."""
    if not isinstance(study_name, str) or not _STUDY_NAME.fullmatch(study_name):
        raise ValueError(
            "study.name must be a plain folder name (letters, digits, '_', '-' and '.', starting with a "
            f"letter, digit or '_'; no '/', no spaces) but got {study_name!r}."
        )


def study_dir(studies_dir: str | os.PathLike[str], study_name: str) -> Path:
    """``<studies_dir>/<study_name>``; the study name may not escape the folder (:func:`check_study_name`)."""
    check_study_name(study_name)
    return Path(studies_dir) / study_name


def study_folder(cfg: Mapping[str, Any]) -> Path:
    """The folder of the study a composed config names."""
    return study_dir(studies_dir(cfg), str(cfg["study"]["name"]))


def report_path(cfg: Mapping[str, Any]) -> Path:
    return study_folder(cfg) / "report.html"


def best_params_path(cfg: Mapping[str, Any]) -> Path:
    return study_folder(cfg) / "best_params.yaml"


def spectra_path(folder: str | os.PathLike[str], trial_number: int) -> Path:
    """Where trial ``trial_number``'s final eigenvalues are kept, in the study folder ``folder``."""
    return Path(folder) / SPECTRA_DIR / f"trial{int(trial_number)}.npz"


def write_trial_spectra(path: str | os.PathLike[str], table: pd.DataFrame) -> Path:
    """Store an ``analyze(..., keep_evals=True)`` table: each layer's eigenvalues (float32) and its scalar
    columns (``alpha``, ``xmin``, ``D``, the MP fit, ...), enough to draw its ESD plots later."""
    if "evals" not in table.columns:
        raise ValueError("write_trial_spectra needs analyze(..., keep_evals=True): the table has no 'evals'.")
    rows = [
        {k: json_safe(v) for k, v in row.items() if k != "evals" and not isinstance(v, (list, np.ndarray))}
        for row in table.to_dict("records")
    ]
    arrays = {f"evals_{i}": np.asarray(e, dtype=np.float32) for i, e in enumerate(table["evals"])}
    return atomic_write(
        path, lambda tmp: np.savez_compressed(tmp, rows=np.array(json.dumps(rows)), **arrays), ".tmp.npz"
    )


def read_trial_spectra(path: str | os.PathLike[str]) -> pd.DataFrame | None:
    """The table :func:`write_trial_spectra` stored (with an ``evals`` column), or None if there is none."""
    try:
        with np.load(path) as data:
            rows = json.loads(str(data["rows"]))
            evals = [data[f"evals_{i}"].astype(np.float64) for i in range(len(rows))]
    except (OSError, KeyError, ValueError):
        return None
    table = pd.DataFrame(rows)
    table["evals"] = evals
    return table


def best_trial_spectra(study: optuna.Study, cfg: Mapping[str, Any]) -> pd.DataFrame | None:
    """The stored spectra of the study's :func:`best_trial` (for the report's ESD plots), or None."""
    best = best_trial(study)
    if best is None:
        return None
    return read_trial_spectra(spectra_path(study_folder(cfg), best.number))
