"""The Optuna objective of a study: one training run per trial, its sanity rules and its stored record.

:class:`TrialRunner` samples the search space, builds :class:`wwtune.objective.Params`, runs the task with
a :class:`wwtune.bridge.StudyReporter`, and turns the outcome into the trial's value and record: a task
exception, a diverged run or a failed sanity rule fails that trial only (reason stored), a pruned run is
pruned with its reason, and the loss-drop rule can keep a trial as infeasible instead.
"""

from __future__ import annotations

import logging
import math
import time
import traceback
from collections.abc import Callable, Mapping
from typing import Any

import optuna
from optuna.artifacts import FileSystemArtifactStore

from wwtune.bridge import StudyReporter
from wwtune.config import analysis_kwargs
from wwtune.objective import Params, Pruned, TrainingDiverged
from wwtune.record import (
    SPECTRA_DIR,
    TrialRecord,
    TrialWriter,
    json_safe,
    spectra_path,
    study_folder,
    write_trial_spectra,
)
from wwtune.report import attach_figures, plot_layer_alphas
from wwtune.score import Score
from wwtune.search_space import SearchSpace
from wwtune.workers import INTERRUPTED, OVER_CAP, StudyTrialCap

__all__ = ["HAS_SET_CONSTRAINT", "TrialFailed", "TrialRunner", "loss_violation", "norm_violation"]

_logger = logging.getLogger(__name__)

#: Optuna ≥ 5 records constraints per trial (``constraints_func`` is deprecated there).
HAS_SET_CONSTRAINT = hasattr(optuna.trial.Trial, "set_constraint")


class TrialFailed(Exception):  # noqa: N818 - reads as "the trial failed"
    """Raised by the trial function to mark a trial FAIL; the reason is stored in ``wwtune.fail_reason``."""


def loss_violation(
    losses: list[list[float]], min_loss_drop: float | None, reference: float | None = None
) -> str | None:
    """Why the loss-drop rule fails, or None: the last reported loss compared with the loss before
    training (``reference``, from ``report(0, ...)``) when the task gave it, else with the first reported
    loss — so a run whose first epoch blew the loss up does not pass because it came down afterwards."""
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
    if drop < min_loss_drop:
        return (
            f"training loss did not fall by sanity.min_loss_drop={min_loss_drop:g}: "
            f"{first:.4g} {where} -> {last:.4g} at step {losses[-1][0]} "
            f"(drop {drop:.1%})"
        )
    return None


def norm_violation(reporter: StudyReporter, norm_growth: float | None) -> str | None:
    """``sanity.norm_growth``: the divergence rule of ``pruner=alpha`` applied to every trial's final
    analysis (an eligible layer with α < 2 whose spectral or Frobenius norm grew more than ``norm_growth``
    times since the first analysis — step 0 when the task reports before training), or None."""
    if not norm_growth or reporter.first_layers is None or reporter.last_result is None:
        return None
    record = reporter.latest_layers()
    if record is None:
        return None
    from wwtune.pruners import LayerTable, diverged_reason  # lazy: pruners import optuna internals

    first = LayerTable.from_attr(reporter.first_layers)
    reason = diverged_reason((), LayerTable.from_attr(record), first, norm_growth=float(norm_growth))
    return None if reason is None else f"diverged: {reason['message']}"


class TrialRunner:
    """The Optuna objective: one training run per trial.

    Args:
        cfg: the composed (validated) config.
        task_fn: the task ``train(params, reporter)``.
        space: the search space.
        score: the run's one :class:`~wwtune.score.Score` (the study's objective).
        worker_id: this worker's id, stored with each trial (None: a lone worker).
        cap: the study-wide trial cap (None: no cap check before a trial starts).
    """

    def __init__(
        self,
        cfg: Mapping[str, Any],
        task_fn: Callable[..., Any],
        space: SearchSpace,
        score: Score,
        worker_id: int | None = None,
        cap: StudyTrialCap | None = None,
    ) -> None:
        self.cfg, self.task_fn, self.space, self.score = cfg, task_fn, space, score
        self.worker_id, self.cap = worker_id, cap
        obj = cfg["objective"]
        self.budget = int(obj["budget"])
        self.report_every = int(obj.get("report_every", 1))
        self.data_fraction = float(obj.get("data_fraction", 1.0))
        self.fixed = dict(obj.get("fixed") or {})
        self.seed = int(cfg["study"]["seed"])
        self.folder = study_folder(cfg)
        self.artifacts_dir = self.folder / "artifacts" if cfg["study"].get("artifacts", False) else None
        self.spectra_dir = self.folder / SPECTRA_DIR if cfg["study"].get("spectra", True) else None
        sanity = cfg["sanity"]
        self.min_loss_drop = sanity.get("min_loss_drop")
        self.on_violation = sanity.get("on_violation", "infeasible")
        self.norm_growth = sanity.get("norm_growth")
        self.penalty = sanity.get("penalty")
        self.check_weights = bool(sanity.get("check_weights", True))
        self.analysis = analysis_kwargs(cfg, score)
        # the α score is stored even when the study optimises something else (for the trust report)
        self.alpha_score = score.alpha_score()

    def __call__(self, trial: optuna.trial.Trial) -> float:
        if self.cap is not None and not self.cap.admits(trial.study, trial.number):
            # another worker claimed the last slot a moment earlier: end this trial before it samples anything
            TrialWriter(trial).fail_reason(
                f"{OVER_CAP}: the study's {self.cap.n_trials} trials were already claimed by other workers; "
                "not run, not counted",
            )
            _logger.info("Trial %d not run: the study-wide cap was reached meanwhile.", trial.number)
            return float("nan")
        try:
            return self._run(trial)
        except TrialFailed as exc:
            # NaN makes Optuna record FAIL without re-logging a traceback; the reason is in the user attrs
            _logger.warning("Trial %d failed: %s", trial.number, exc)
            return float("nan")

    def _run(self, trial: optuna.trial.Trial) -> float:
        start = time.perf_counter()
        writer = TrialWriter(trial)
        writer.start(self.budget, self.worker_id)
        try:
            values, layers = self.space.suggest(trial)
        except Exception as exc:  # noqa: BLE001 - a sampler that cannot propose fails this trial only
            _logger.warning("Trial %d: sampling raised\n%s", trial.number, traceback.format_exc())
            self._fail(writer, f"sampling the parameters raised {type(exc).__name__}: {exc}")
        params = Params(
            values={**self.fixed, **values},
            layers=layers,
            budget=self.budget,
            seed=self.seed + trial.number,
            data_fraction=self.data_fraction,
        )
        reporter = StudyReporter(
            trial,
            self.alpha_score,
            self.budget,
            self.report_every,
            self.analysis,
            self.check_weights,
            report_to_optuna=self.score.kind != "heldout" and not self.score.multi_objective,
            store_every_analysis=not isinstance(trial.study.pruner, optuna.pruners.NopPruner),
            keep_spectra=self.spectra_dir is not None,
            objective=self.score if self.score.uses_train_loss else None,
        )
        try:
            try:
                result = self.task_fn(params, reporter)
                reporter.finish()
                self._keep_spectra(trial, reporter)  # timed as analysis
            finally:
                flush_start = time.perf_counter()
                reporter.flush_layers()
                reporter.analysis_s += time.perf_counter() - flush_start
                wall = time.perf_counter() - start
                writer.losses(reporter.losses)
                writer.timing(max(wall - reporter.analysis_s, 0.0), reporter.analysis_s)
                if self.artifacts_dir is not None:
                    self._attach_layer_figure(trial)
        except KeyboardInterrupt:
            writer.fail_reason(f"{INTERRUPTED}: stopped by the user (Ctrl-C)")
            raise
        except Pruned as exc:
            if not writer.has_prune_reason():
                writer.prune_reason({"message": exc.reason, "step": exc.step})
            raise optuna.TrialPruned(exc.reason) from None
        except TrainingDiverged as exc:
            if self.on_violation == "infeasible":
                return self._infeasible_penalty(trial, writer, reporter, f"diverged: {exc}")
            self._fail(writer, f"diverged: {exc}")
        except Exception as exc:  # noqa: BLE001 - one bad trial never ends the study
            _logger.warning("Trial %d: the task raised\n%s", trial.number, traceback.format_exc())
            self._fail(writer, f"task raised {type(exc).__name__}: {exc}")
        return self._finish(trial, writer, reporter, result)

    def _keep_spectra(self, trial: optuna.trial.Trial, reporter: StudyReporter) -> None:
        """Store the final analysis' eigenvalues (``study.spectra``) for the report's ESD plots."""
        if self.spectra_dir is None or reporter.spectra is None:
            return
        start = time.perf_counter()
        try:
            write_trial_spectra(spectra_path(self.folder, trial.number), reporter.spectra)
        except OSError as exc:  # a full disk loses the report's ESD plots, never the trial
            _logger.warning("Trial %d: could not store its spectra: %s", trial.number, exc)
        reporter.analysis_s += time.perf_counter() - start

    def _attach_layer_figure(self, trial: optuna.trial.Trial) -> None:
        """``study.artifacts=true``: attach the trial's α-per-layer figure as an Optuna artifact.

        Attached while the trial still runs (Optuna refuses changes to a finished trial); a failure to
        attach is logged and never fails the trial.
        """
        record = TrialRecord(trial)
        table = record.layers()
        if table is None:
            return
        try:
            assert self.artifacts_dir is not None
            self.artifacts_dir.mkdir(parents=True, exist_ok=True)
            figure = plot_layer_alphas(table, self.score.band)
            name = f"trial{trial.number}_layer_alphas_step{table.attrs.get('step')}"
            attach_figures(trial, {name: figure}, FileSystemArtifactStore(str(self.artifacts_dir)))
        except Exception:  # noqa: BLE001 - a figure is never worth a trial
            _logger.warning("Trial %d: could not attach its figure\n%s", trial.number, traceback.format_exc())

    def _fail(self, writer: TrialWriter, reason: str) -> None:
        writer.fail_reason(reason)
        raise TrialFailed(reason)

    def _mark_infeasible(self, trial: optuna.trial.Trial, writer: TrialWriter, violated: bool) -> None:
        writer.constraint(violated)
        if HAS_SET_CONSTRAINT:
            trial.set_constraint("loss_drop", 1.0 if violated else 0.0)  # samplers and best_trial see it

    def _infeasible_penalty(
        self, trial: optuna.trial.Trial, writer: TrialWriter, reporter: StudyReporter, reason: str
    ) -> Any:
        """A diverged run under ``on_violation=infeasible``: COMPLETE, infeasible, valued ``sanity.penalty``
        (default: the worst value of the score's direction, ±inf), so a constrained sampler (TPE, NSGA-II,
        GP) learns the region is bad instead of never seeing it (Optuna's samplers ignore FAIL trials)."""
        if self.penalty is None and self.score.kind == "heldout":
            self._fail(writer, reason)  # no value of the held-out metric is known to be worst
        writer.infeasible(reason)
        writer.losses(reporter.losses)
        self._mark_infeasible(trial, writer, True)
        _logger.warning("Trial %d infeasible: %s", trial.number, reason)
        values = []
        for direction in self.score.directions:
            worst = math.inf if direction == "minimize" else -math.inf
            values.append(float(self.penalty) if self.penalty is not None else worst)
        return values if self.score.multi_objective else values[0]

    def _finish(
        self, trial: optuna.trial.Trial, writer: TrialWriter, reporter: StudyReporter, result: Any
    ) -> float:
        if result is not None and not isinstance(result, Mapping):
            self._fail(writer, f"the task must return a dict or None but returned {type(result).__name__}")
        result = dict(result or {})
        heldout = result.pop("heldout", None)
        if heldout is not None:
            heldout = json_safe(float(heldout))
            writer.heldout(heldout)
        if result:
            writer.result(result)
        if reporter.last_result is None:
            self._fail(writer, "the task never called reporter.report(step, model, loss)")
        alpha = reporter.last_result
        if alpha.value is not None:
            writer.score(alpha.value)
        if reporter.reference_loss is not None:
            writer.reference_loss(reporter.reference_loss)
        diverged = norm_violation(reporter, self.norm_growth)
        if diverged is not None:
            if self.on_violation == "fail":
                self._fail(writer, diverged)
            return self._infeasible_penalty(trial, writer, reporter, diverged)
        violation = loss_violation(reporter.losses, self.min_loss_drop, reporter.reference_loss)
        if violation is not None:
            if self.on_violation == "fail":
                self._fail(writer, violation)
            writer.infeasible(violation)
        self._mark_infeasible(trial, writer, violation is not None)
        if self.score.kind == "heldout":
            final = self.score(None, heldout)
        elif self.score.uses_train_loss:
            final = reporter.last_objective
        else:
            final = alpha
        if final is None or final.value is None:
            self._fail(writer, (final.reason if final else None) or "the score could not be computed")
        if self.score.multi_objective:
            return [float(v) for v in final.values]
        return float(final.value)
