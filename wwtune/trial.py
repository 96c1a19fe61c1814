"""The Optuna objective of a study: one training run per trial, its sanity rules and its stored record.

:class:`TrialRunner` samples the search space, builds :class:`wwtune.objective.Params`, runs the task with
a :class:`wwtune.bridge.TrialBridge` (the same bridge a user's own loop uses), and turns the outcome into
the trial's value and record: a task exception, a diverged run or a failed sanity rule fails that trial
only (reason stored), a pruned run is pruned with its reason, and the sanity rules can keep a trial as
infeasible instead.
"""

from __future__ import annotations

import contextlib
import logging
import time
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import optuna

from wwtune.bridge import HAS_SET_CONSTRAINT, StudyReporter, TrialBridge
from wwtune.config import analysis_options, load_config
from wwtune.deadline import TrialTimeout, check_alarm, trial_alarm
from wwtune.diskio import WriteError
from wwtune.exceptions import Pruned, TrainingDiverged, TrialFailed
from wwtune.objective import Params
from wwtune.reaping import process_identity, running_here
from wwtune.record import (
    SPECTRA_DIR,
    TrialRecord,
    TrialWriter,
    spectra_path,
    study_folder,
    write_trial_spectra,
)
from wwtune.resume import score_rule
from wwtune.sanity_rules import loss_violation, norm_violation
from wwtune.score import Score
from wwtune.search_space import SearchSpace
from wwtune.workers import INTERRUPTED, OVER_CAP, StudyTrialCap

__all__ = [
    "HAS_SET_CONSTRAINT",
    "DrawTrial",
    "TrialFailed",
    "TrialRunner",
    "loss_violation",
    "norm_violation",
]

_logger = logging.getLogger(__name__)

#: the showing layer's figure for a running trial: ``(trial, layer table, α band, artifacts folder)``
DrawTrial = Callable[[optuna.trial.Trial, Any, Any, Path], None]


class _TimedBridge(TrialBridge):
    """The bridge the CLI's tasks get: each report also checks the trial's time limit
    (:func:`wwtune.deadline.check_alarm`), so a task that takes SIGALRM over cannot switch it off."""

    def report(self, step: int, model: Any, loss: float) -> None:
        check_alarm()
        super().report(step, model, loss)


class TrialRunner:
    """The Optuna objective: one training run per trial.

    Args:
        cfg: the run's :class:`~wwtune.schema.StudyConfig` (a composed config is parsed here).
        task_fn: the task ``train(params, reporter)``.
        space: the search space.
        score: the run's one :class:`~wwtune.score.Score` (the study's objective).
        worker_id: this worker's id, stored with each trial (None: a lone worker).
        cap: the study-wide trial cap (None: no cap check before a trial starts).
        draw_trial: with ``study.artifacts=true``, the figure drawing the showing layer hands in:
            ``draw_trial(trial, layer_table, band, artifacts_dir)`` attaches the trial's figure while it
            runs (e.g. :func:`wwtune.report.artifacts.attach_layer_figure`); the runner draws nothing itself.
    """

    def __init__(
        self,
        cfg: Mapping[str, Any],
        task_fn: Callable[..., Any],
        space: SearchSpace,
        score: Score,
        worker_id: int | None = None,
        cap: StudyTrialCap | None = None,
        draw_trial: DrawTrial | None = None,
    ) -> None:
        config = load_config(cfg)  # a StudyConfig (run_study's) is taken as it is
        self.cfg, self.task_fn, self.space, self.score = config, task_fn, space, score
        self.worker_id, self.cap = worker_id, cap
        obj, study, sanity = config.objective, config.study, config.sanity
        self.budget = int(obj.budget)
        self.report_every = int(obj.report_every)
        self.data_fraction = float(obj.data_fraction)
        self.fixed = dict(obj.fixed or {})
        self.seed = int(study.seed)
        self.trial_timeout = study.trial_timeout
        self.study_timeout = study.timeout
        self.study_deadline = None if study.timeout is None else time.monotonic() + float(study.timeout)
        self.folder = study_folder(study)
        artifacts = bool(study.artifacts) and draw_trial is not None
        self.artifacts_dir = self.folder / "artifacts" if artifacts else None
        self.draw_trial = draw_trial
        self.spectra_dir = self.folder / SPECTRA_DIR if study.spectra else None
        self.min_loss_drop = sanity.min_loss_drop
        self.on_violation = sanity.on_violation
        self.norm_growth = sanity.norm_growth
        self.penalty = sanity.penalty
        self.check_weights = bool(sanity.check_weights)
        self.analysis = analysis_options(config.analysis, score)
        # the α score is stored even when the study optimises something else (for the trust report)
        self.alpha_score = score.alpha_score()
        self.score_rule = score_rule(config)  # stored with each trial: the rule its value was computed by

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
            with running_here(trial.study.study_name, trial.number):
                return self._run(trial)
        except TrialFailed as exc:
            # NaN makes Optuna record FAIL without re-logging a traceback; the reason is in the user attrs
            _logger.warning("Trial %d failed: %s", trial.number, exc)
            return float("nan")
        except WriteError:
            # the run stops here; the trial, cut short by the storage, does not count: say so if a short
            # record still fits (else it stays RUNNING and the next run fails it as interrupted)
            with contextlib.suppress(WriteError):
                TrialWriter(trial).fail_reason(f"{INTERRUPTED}: the study's storage could not be written")
            raise

    def _run(self, trial: optuna.trial.Trial) -> float:
        start = time.perf_counter()
        writer = TrialWriter(trial)
        writer.start(self.budget, process_identity(self.worker_id), self.score_rule)
        try:
            values, layers = self.space.suggest(trial)
        except WriteError:  # the study's storage is full: nothing more can be recorded, stop the run
            raise
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
        # the same bridge a user's own loop uses (wwtune.TrialBridge): one implementation of the record
        reporter = _TimedBridge(
            trial,
            score=self.alpha_score,
            budget=self.budget,
            report_every=self.report_every,
            analysis_kwargs=self.analysis,
            check_weights=self.check_weights,
            report_to_optuna=self.score.kind != "heldout" and not self.score.multi_objective,
            keep_spectra=self.spectra_dir is not None,
            min_loss_drop=self.min_loss_drop,
            on_violation=self.on_violation,
            objective=self.score,
            norm_growth=self.norm_growth,
            penalty=self.penalty,
            started=start,
            keeps_diverged=True,
        )
        try:
            try:
                with self._time_limit():
                    result = self.task_fn(params, reporter)
                reporter.analyse_last()
                self._keep_spectra(trial, reporter)  # timed as analysis
            finally:
                reporter.close()  # the latest layer table, the losses, the time split
                if self.artifacts_dir is not None:
                    self._attach_layer_figure(trial)
        except KeyboardInterrupt:
            writer.fail_reason(f"{INTERRUPTED}: stopped by the user (Ctrl-C)")
            raise
        except TrialTimeout as exc:
            if exc.study_wide:  # a partial trial, like Ctrl-C: not counted; the study ends here
                trial.study.stop()
                self._fail(writer, f"{INTERRUPTED}: {exc}")
            self._fail(writer, f"timed out: {exc}")
        except Pruned as exc:
            if not writer.has_prune_reason():
                writer.prune_reason({"message": exc.reason, "step": exc.step})
            raise optuna.TrialPruned(exc.reason) from None
        except TrainingDiverged as exc:  # NaN/Inf: the bridge's check (reason stored) or the task's own
            if self.on_violation == "infeasible":
                return reporter.infeasible_penalty(exc.reason)
            if exc.recorded:
                raise
            self._fail(writer, exc.reason)
        except TrialFailed:
            raise  # a sanity rule of the bridge; its reason is stored
        except WriteError:
            raise
        except Exception as exc:  # noqa: BLE001 - one bad trial never ends the study
            _logger.warning("Trial %d: the task raised\n%s", trial.number, traceback.format_exc())
            self._fail(writer, f"task raised {type(exc).__name__}: {exc}")
        return self._finish(trial, writer, reporter, result)

    def _time_limit(self) -> Any:
        """The alarm around the task: ``study.trial_timeout``, or what is left of ``study.timeout``."""
        left = None if self.study_deadline is None else self.study_deadline - time.monotonic()
        if self.trial_timeout is not None and (left is None or self.trial_timeout <= left):
            return trial_alarm(
                self.trial_timeout, f"ran longer than study.trial_timeout={self.trial_timeout:g} s; stopped"
            )
        if left is not None:
            message = f"study.timeout={self.study_timeout:g} s was reached during the trial"
            return trial_alarm(left, message, study_wide=True)
        return trial_alarm(None, "")

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
            assert self.artifacts_dir is not None and self.draw_trial is not None
            self.draw_trial(trial, table, self.score.band, self.artifacts_dir)
        except Exception:  # noqa: BLE001 - a figure is never worth a trial
            _logger.warning("Trial %d: could not attach its figure\n%s", trial.number, traceback.format_exc())

    def _fail(self, writer: TrialWriter, reason: str) -> None:
        writer.fail_reason(reason)
        raise TrialFailed(reason)

    def _finish(
        self, trial: optuna.trial.Trial, writer: TrialWriter, reporter: TrialBridge, result: Any
    ) -> float:
        return reporter.finish(result)  # the sanity rules, the score and the held-out metric: the bridge's
