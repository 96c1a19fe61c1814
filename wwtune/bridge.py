"""One way a training loop talks to an Optuna trial: analyse, sanity rules, trial record, report, prune.

The CLI's trial runner and a user's own loop (plain Optuna, :mod:`wwtune.integrations.lightning`,
:mod:`wwtune.integrations.huggingface`) go through the same :class:`TrialBridge`, so both write the same
trial record (``wwtune.budget``, ``wwtune.layers``, ``wwtune.losses``, ``wwtune.score``, ``wwtune.heldout``,
``wwtune.prune_reason``, ``wwtune.fail_reason``, ``wwtune.constraint``, ``wwtune.time_*``) and
:class:`wwtune.pruners.AlphaPruner`, :func:`wwtune.study.store_trust`, :func:`wwtune.report.write_report` and
optuna-dashboard read a plain user's study unchanged::

    def objective(trial):
        lr = trial.suggest_float("lr", 1e-3, 0.5, log=True)
        model = make_model()
        bridge = wwtune.TrialBridge(trial, budget=20)
        for epoch in range(1, 21):
            loss = train_one_epoch(model, lr)
            bridge.report(epoch, model, loss)      # may raise optuna.TrialPruned (reason stored)
        return bridge.finish(heldout=accuracy(model))  # the α score, a float

    study = optuna.create_study(pruner=wwtune.AlphaPruner())
    study.optimize(objective, n_trials=20, catch=(wwtune.TrialFailed,))

:func:`score_model` is the one-call score of a model outside any study. :class:`StudyReporter` is the
per-report step alone (analyse, sanity rules, record, report, prune); :class:`TrialBridge` adds the end of a
trial (the loss-drop rule, the score, the held-out metric), which the CLI's :class:`wwtune.trial.TrialRunner`
calls too.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import optuna
import pandas as pd

from wwtune import exceptions
from wwtune.deprecation import moved
from wwtune.exceptions import NoEligibleLayers, Pruned, TrainingDiverged, TrialFailed
from wwtune.objective import Reporter, check_finite_loss, check_finite_weights
from wwtune.record import TrialWriter, json_safe
from wwtune.sanity_rules import LOSS_RULE_MIN_REPORTS, loss_violation, norm_violation, short_run_note
from wwtune.schema import ON_VIOLATION
from wwtune.score import Score, ScoreResult, layers_record, named_score
from wwtune.spectral import AnalysisOptions
from wwtune.spectral import analyze as spectral_analyze

__all__ = [
    "HAS_SET_CONSTRAINT",
    "NoEligibleLayers",
    "StudyReporter",
    "TrialBridge",
    "TrialFailed",
    "TrialPruned",
    "LOSS_RULE_MIN_REPORTS",
    "analysis_options",
    "loss_violation",
    "norm_violation",
    "score_model",
]

_logger = logging.getLogger(__name__)

#: Optuna ≥ 5 records constraints per trial (``constraints_func`` is deprecated there).
HAS_SET_CONSTRAINT = hasattr(optuna.trial.Trial, "set_constraint")


class TrialPruned(Pruned, optuna.TrialPruned):
    """wwtune's prune signal as Optuna's own: ``study.optimize`` records the trial PRUNED (reason stored)."""


def __getattr__(name: str) -> Any:
    if name == "Diverged":  # deprecated: one concept with TrainingDiverged (docs/errors.md)
        return moved(__name__, name, exceptions, "TrainingDiverged")
    raise AttributeError(f"module 'wwtune.bridge' has no attribute {name!r}")


def analysis_options(score: Score, analysis: AnalysisOptions | Mapping[str, Any] | None) -> AnalysisOptions:
    """The options a bridge analyses with: ``analysis`` itself when it is an :class:`AnalysisOptions`;
    else those keyword options, with ``min_evals`` defaulting to ``min(8, score.min_evals)`` (ineligible
    layers are still analysed and listed, eligible: no, never counted)."""
    if isinstance(analysis, AnalysisOptions):
        return analysis
    kwargs = dict(analysis or {})
    kwargs.setdefault("min_evals", min(8, score.min_evals))
    return AnalysisOptions.of(**kwargs)


def score_model(
    model: Any, score: Score | str | None = None, train_loss: float | None = None, **analysis: Any
) -> float:
    """The score of ``model`` (lower is better): :func:`wwtune.analyze` then :class:`wwtune.score.Score`.

    Args:
        model: anything :func:`wwtune.analyze` reads (an ``nn.Module``, a state_dict, a checkpoint file).
        score: the score to compute: a :class:`~wwtune.score.Score`, the name of a shipped score config
            (``"balanced"``, ``"fit_band"``, ``"band"`` …) or None (default): the CLI's default score
            (``score=balanced``: ``log10(train_loss) + 0.5 × band distance``, band (2, 2), layers with at
            least 50 eigenvalues). Use ``"band"`` for α alone (no loss needed).
        train_loss: the model's final training loss; required by the scores that use it (the default,
            ``fit_band``, ``train_loss``, ``pareto``).
        **analysis: keyword arguments for :func:`wwtune.analyze` (``layers=``, ``randomize=``, ...).

    Returns:
        The score as a float.

    Raises:
        ValueError: the score needs ``train_loss`` and none (or a non-finite one) was given, or the name
            is not a shipped score.
        NoEligibleLayers: no layer is eligible (the message names why: e.g. every layer has fewer than
            ``score.min_evals`` eigenvalues); never returns None.

    Example:
        >>> import torch, wwtune
        >>> _ = torch.manual_seed(0)
        >>> model = torch.nn.Sequential(torch.nn.Linear(200, 100), torch.nn.ReLU())
        >>> isinstance(wwtune.score_model(model, train_loss=0.3), float)
        True
    """
    score = named_score(score)
    if score.uses_train_loss and (
        train_loss is None or isinstance(train_loss, bool) or not math.isfinite(float(train_loss))
    ):
        raise ValueError(
            f"score_model: score kind {score.kind!r} needs the model's final training loss: pass "
            f"train_loss=<a finite number> (got {train_loss!r}), or score='band' for α alone."
        )
    if score.multi_objective:
        raise ValueError("score_model returns one number; score kind 'pareto' has two (use 'fit_band').")
    layers = spectral_analyze(model, analysis_options(score, analysis))
    result = score(layers, train_loss=None if train_loss is None else float(train_loss))
    if result.value is None:
        raise NoEligibleLayers(f"cannot score the model: {result.reason}")
    return float(result.value)


def _no_analysis(reporter: StudyReporter) -> str:
    """Why a trial has no analysed step, said as it is (not "never called report" when it did)."""
    if not reporter.losses and reporter.reference_loss is None:
        return "the task never called reporter.report(step, model, loss)"
    if not reporter.losses:
        return (
            "the task called reporter.report only at step 0 (before training); report at least one step "
            ">= 1 with the trained model"
        )
    return (
        f"the task reported up to step {reporter.last_step}, but no analysis of its model completed "
        "(interrupted, or the model has no analysable layer)"
    )


@dataclass
class StudyReporter(Reporter):
    """Analyses the model every ``report_every`` steps (and at ``budget``), scores it and reports to Optuna.

    Raises :class:`~wwtune.exceptions.TrainingDiverged` for a non-finite loss or weights and
    :class:`TrialPruned` (a :class:`~wwtune.objective.Pruned` and an ``optuna.TrialPruned``) when the
    study's pruner says so (the reason is stored in
    ``wwtune.prune_reason``). Time spent here is the analysis overhead (``analysis_s``).

    Args:
        trial: the running Optuna trial.
        score: how an analysis is scored (the α score; it is reported to Optuna when ``report_to_optuna``).
        budget: the run's last step (always analysed).
        report_every: analyse every this many steps.
        analysis_kwargs: the :class:`~wwtune.spectral.analyze.AnalysisOptions` (or their keyword form).
        check_weights: NaN/Inf weights at an analysis step end the run as diverged.
        report_to_optuna: report the score as the trial's intermediate value and ask the pruner.
        analyze: the analysis function, called as ``analyze(model, options)`` (default
            :func:`wwtune.spectral.analyze`).
        store_every_analysis: store the per-layer table at every analysis (a pruner reads it in
            ``should_prune()``); otherwise only the latest is stored, by :meth:`flush_layers`.
        keep_spectra: keep the eigenvalues of the latest analysis in ``spectra``.
        objective: the study's objective when it is not the α score (the fit kinds, which need the
            training loss): scored at each analysis, reported to Optuna instead of ``score``.

    ``report(0, model, loss)`` (before training, optional) stores the loss before training as
    ``reference_loss`` (the reference of the loss-drop rule) and analyses the untrained weights once as
    ``first_layers`` (the reference of the norm-growth rule); it is not scored, not reported to Optuna and
    not a ``losses`` entry.

    After training, ``losses`` (``[[step, loss], ...]``), ``last_result`` (the latest
    :class:`~wwtune.score.ScoreResult`), ``analysis_s`` (seconds spent here) and ``spectra`` say what it saw.
    """

    trial: optuna.trial.Trial
    score: Score
    budget: int
    report_every: int = 1
    analysis_kwargs: AnalysisOptions | Mapping[str, Any] = field(default_factory=dict)
    check_weights: bool = True
    report_to_optuna: bool = True
    analyze: Callable[..., pd.DataFrame] | None = None
    store_every_analysis: bool = True
    keep_spectra: bool = False
    objective: Score | None = None
    # what the reporter has seen so far (not constructor arguments)
    losses: list[list[float]] = field(default_factory=list, init=False)
    analysis_s: float = field(default=0.0, init=False)
    last_step: int | None = field(default=None, init=False)
    analysed_step: int | None = field(default=None, init=False)
    last_result: ScoreResult | None = field(default=None, init=False)
    model: Any = field(default=None, init=False)
    pending_layers: dict[str, Any] | None = field(default=None, init=False)
    spectra: pd.DataFrame | None = field(default=None, init=False)
    last_objective: ScoreResult | None = field(default=None, init=False)
    first_layers: dict[str, Any] | None = field(default=None, init=False)
    reference_loss: float | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.writer = TrialWriter(self.trial)
        #: the analysis options, validated once (``analysis_kwargs`` as :class:`AnalysisOptions`)
        given = self.analysis_kwargs
        self.options = given if isinstance(given, AnalysisOptions) else AnalysisOptions.of(**given)
        self.spectra_options = dataclasses.replace(self.options, keep_evals=True)  # for keep_spectra

    def report(self, step: int, model: Any, loss: float) -> None:
        step, loss = int(step), float(loss)
        if step <= 0:
            check_finite_loss(step, loss)
            self.reference_loss = loss
            start = time.perf_counter()
            try:
                layers = (self.analyze or spectral_analyze)(model, self.options)
                self.first_layers = layers_record(layers, self.score, 0)
            finally:
                self.analysis_s += time.perf_counter() - start
            return
        self.losses.append([step, loss])
        self.last_step, self.model = step, model
        check_finite_loss(step, loss)
        if step % self.report_every == 0 or step >= self.budget:
            self.analyse(step, model)

    def analyse(self, step: int, model: Any) -> None:
        start = time.perf_counter()
        try:
            if self.check_weights:
                check_finite_weights(model, step)
            analyze = self.analyze or spectral_analyze
            if self.keep_spectra:  # the eigenvalues of the latest analysis, for the report's ESD plots
                layers = analyze(model, self.spectra_options)
                self.spectra = layers
            else:
                layers = analyze(model, self.options)
            result = self.score(layers)
            self.pending_layers = layers_record(layers, self.score, step)
            if self.first_layers is None:
                self.first_layers = self.pending_layers
            if self.store_every_analysis:  # a pruner reads these from storage in should_prune()
                self.flush_layers()
                self.writer.losses(self.losses)
            self.last_result, self.analysed_step = result, step
            reported = result
            if self.objective is not None and self.objective.uses_train_loss:
                loss = self.losses[-1][1] if self.losses else None
                reported = self.last_objective = self.objective(layers, train_loss=loss)
            if self.report_to_optuna and reported.value is not None:
                self.trial.report(reported.value, step)
                # the final step is never pruned: the run is over, pruning would only discard it
                if step < self.budget and self.trial.should_prune():
                    raise TrialPruned(self.prune_reason(step, reported.value)["message"], step)
        finally:
            self.analysis_s += time.perf_counter() - start

    def analyse_last(self) -> None:
        """After training: score the final weights if their step was not analysed yet."""
        if self.model is not None and self.analysed_step != self.last_step:
            self.analyse(self.last_step, self.model)  # final weights always scored

    def latest_layers(self) -> dict[str, Any] | None:
        """The latest per-layer table (pending or already stored)."""
        return self.pending_layers or self.trial.user_attrs.get("wwtune.layers")

    def flush_layers(self) -> None:
        """Store the latest per-layer table (``wwtune.layers``) if it is not stored yet."""
        if self.pending_layers is not None:
            self.writer.layers(self.pending_layers)
            self.pending_layers = None

    def prune_reason(self, step: int, value: float) -> dict[str, Any]:
        """Why the pruner stopped the trial (its ``reason_for`` when it has one), stored on the trial."""
        pruner = self.trial.study.pruner
        reason = None
        if hasattr(pruner, "reason_for"):
            reason = pruner.reason_for(self.trial)
        if not reason:
            reason = {
                "rule": type(pruner).__name__,
                "step": step,
                "message": f"{type(pruner).__name__} pruned the trial at step {step} (score {value:.4g})",
            }
        reason.setdefault("step", step)
        self.writer.prune_reason(reason)
        return reason


@dataclass
class TrialBridge(StudyReporter):
    """A training loop's link to one Optuna trial; see the module docstring for a complete objective.

    Call :meth:`report` with ``(step, model, training_loss)`` every epoch (or every k steps) and return
    :meth:`finish` from the objective. Each report stores the loss; every ``report_every`` steps (and at
    ``budget``) it analyses the weights, stores the per-layer table ``wwtune.layers``, reports the α score
    to the trial and raises :class:`TrialPruned` when the study's pruner says so (reason in
    ``wwtune.prune_reason``). A NaN/Inf loss or weight raises :class:`TrialFailed` (reason in
    ``wwtune.fail_reason``).

    Args:
        trial: the Optuna trial.
        score: the α score reported to the trial; default ``Score()`` (band (2, 2), min_evals 50).
        budget: the training budget in report steps (epochs or steps); the pruner's warm-up is a fraction
            of it and the last step is always analysed. Required.
        report_every: analyse every this many steps; default 1.
        analysis_kwargs: :class:`~wwtune.spectral.analyze.AnalysisOptions` or their keyword form; default
            ``min_evals`` 8 (small layers are listed, not counted).
        check_weights: NaN/Inf in any weight at an analysis fails the trial; default True.
        min_loss_drop: :meth:`finish` requires the last reported loss to be this fraction below the first;
            default 0.1 (the CLI's ``sanity.min_loss_drop``); None disables. A run with fewer than
            :data:`LOSS_RULE_MIN_REPORTS` loss values need only fall at every report (logged, and stored
            as ``wwtune.loss_rule``).
        on_violation: ``"infeasible"`` (default, as the CLI's ``sanity.on_violation``: a run whose loss did
            not fall completes as an Optuna constraint violation, so the study goes on and constrained
            samplers learn from it) or ``"fail"`` (:meth:`finish` raises :class:`TrialFailed`). A NaN/Inf
            loss or weight raises :class:`TrialFailed` from :meth:`report` in both modes (reason stored; pass
            ``catch=(wwtune.TrialFailed,)``), unless the caller completes it (``keeps_diverged``).
        objective: the score :meth:`finish` returns — a :class:`~wwtune.score.Score` or a shipped score's
            name (``"fit_band"``, ``"band"`` …); default None: the CLI's default score (``balanced``:
            ``log10(final training loss) + 0.5 × band distance``, with the band of ``score``). A
            ``Score(kind="heldout")`` returns the held-out metric instead (the α score is still stored for
            the trust report); a score that uses the training loss (``balanced``, ``fit_band``,
            ``train_loss``, ``pareto``) is computed at each analysis and reported instead of the α score
            (``pareto``: :meth:`finish` returns two values); ``"band"`` returns the α score itself.
        norm_growth: ``sanity.norm_growth``: an eligible layer with α < 2 whose norm grew more than this many
            times since the first analysis marks the run diverged; default None (off).
        penalty: the value of an infeasible diverged run under ``on_violation="infeasible"``; default None
            (the worst value of the objective's direction).
        keeps_diverged: the caller completes a diverged run itself with :meth:`infeasible_penalty` under
            ``on_violation="infeasible"`` (the CLI's runner, the Lightning and Hugging Face callbacks), so
            :meth:`report` stores no fail reason for it; default False.

    :meth:`finish` runs once: a second call returns the first call's value (a callback and the user's
    objective may both call it).
    """

    budget: int = 0
    score: Score = field(default_factory=Score)
    min_loss_drop: float | None = 0.1
    on_violation: str = "infeasible"
    objective: Score | str | None = None
    norm_growth: float | None = None
    penalty: float | None = None
    store_every_analysis: bool | None = None  # type: ignore[assignment]
    started: float = field(default_factory=time.perf_counter)
    keeps_diverged: bool = False
    finished: Any = field(default=None, init=False)
    flat_step: int | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if isinstance(self.budget, bool) or not isinstance(self.budget, int) or self.budget < 1:
            raise ValueError(f"budget must be a positive integer (report steps) but got {self.budget!r}.")
        every = self.report_every
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"report_every must be a positive integer but got {self.report_every!r}.")
        if every > self.budget:
            warnings.warn(
                f"report_every={every} exceeds budget={self.budget}: the weights are analysed at the final "
                "step only, so no pruner can stop a run early; set report_every <= budget.",
                stacklevel=3,
            )
        if self.on_violation not in ON_VIOLATION:
            raise ValueError(
                f"on_violation must be one of {list(ON_VIOLATION)} but got {self.on_violation!r}."
            )
        if self.min_loss_drop is not None and not (0 <= float(self.min_loss_drop) < 1):
            raise ValueError(f"min_loss_drop must be in [0, 1) or None but got {self.min_loss_drop!r}.")
        if not isinstance(self.score, Score) or not self.score.uses_alpha:
            raise ValueError(
                f"score must be an α Score (kind band_distance, mean_alpha, ...) but got {self.score!r}; "
                "a held-out objective goes in objective=."
            )
        if not isinstance(self.objective, Score):  # None: the CLI's default score, with the α score's band
            self.objective = named_score(self.objective, band=self.score.band)
        self.analysis_kwargs = analysis_options(self.score, self.analysis_kwargs)
        if self.store_every_analysis is None:
            self.store_every_analysis = not isinstance(self.trial.study.pruner, optuna.pruners.NopPruner)
        super().__post_init__()
        self.writer.budget(self.budget)

    def report(self, step: int, model: Any, loss: float) -> None:
        """Record ``loss`` after ``step``; analyse, report and maybe prune (see the class docstring)."""
        try:
            super().report(step, model, float(loss))
        except TrainingDiverged as exc:
            self.close()
            reason = f"diverged: {exc}"
            recorded = self.on_violation == "fail" or not self.keeps_diverged  # else: infeasible_penalty
            if recorded:
                self.writer.fail_reason(reason)
            raise TrainingDiverged(reason, reason=reason, recorded=recorded) from None
        except TrialPruned:
            self.close()
            raise

    def close(self) -> None:
        """Store what the trial has so far: the latest layer table (and its α per layer as flat attrs), the
        losses and the time split."""
        start = time.perf_counter()
        record = self.latest_layers()
        self.flush_layers()
        if record is not None and record.get("step") != self.flat_step:
            self.writer.alphas(record)
            self.flat_step = record.get("step")
        self.analysis_s += time.perf_counter() - start
        wall = time.perf_counter() - self.started
        self.writer.losses(self.losses)
        self.writer.timing(max(wall - self.analysis_s, 0.0), self.analysis_s)

    def fail(self, reason: str) -> None:
        """Store ``reason`` as ``wwtune.fail_reason`` and raise :class:`TrialFailed`."""
        self.writer.fail_reason(reason)
        raise TrialFailed(reason)

    def finish(self, result: Mapping[str, Any] | None = None, *, heldout: float | None = None) -> float:
        """End the trial: final analysis if the last step was not analysed, the sanity rules, the record.

        Args:
            result: extra values to store with the trial (``wwtune.result``); a ``"heldout"`` key is the
                held-out metric (as a task's return value in the CLI).
            heldout: the held-out metric (stored as ``wwtune.heldout``, for the trust report), if any.

        Returns:
            The objective value: the α score (or the held-out metric with a ``heldout`` objective).

        Raises:
            TrialFailed: no report was made, the loss did not fall (``on_violation="fail"``) or the score
                cannot be computed (no eligible layer); the reason is stored in ``wwtune.fail_reason``.
        """
        if self.finished is None:
            self.finished = [self.end(result, heldout)]
        return self.finished[0]

    def end(self, result: Mapping[str, Any] | None, heldout: float | None) -> Any:
        """:meth:`finish`'s work (run once)."""
        if result is not None and not isinstance(result, Mapping):
            self.fail(f"the task must return a dict or None but returned {type(result).__name__}")
        result = dict(result or {})
        if heldout is None:
            heldout = result.pop("heldout", None)
        else:
            result.pop("heldout", None)
        writer = self.writer
        self.analyse_last()  # the final weights are always scored
        self.close()
        if heldout is not None:
            heldout = json_safe(float(heldout))
            writer.heldout(heldout)
        if result:
            writer.result(result)
        if self.last_result is None:
            self.fail(_no_analysis(self))
        alpha = self.last_result
        if alpha.value is not None:
            writer.score(alpha.value)
        if self.reference_loss is not None:
            writer.reference_loss(self.reference_loss)
        diverged = norm_violation(self, self.norm_growth)
        if diverged is not None:
            if self.on_violation == "fail":
                self.fail(diverged)
            return self.infeasible_penalty(diverged)
        short = short_run_note(self.losses, self.min_loss_drop, self.reference_loss)
        if short is not None:
            writer.loss_rule(short)
            _logger.info("Trial %d: %s.", self.trial.number, short)
        violation = loss_violation(self.losses, self.min_loss_drop, self.reference_loss)
        if violation is not None:
            if self.on_violation == "fail":
                self.fail(violation)
            writer.infeasible(violation)
        self.mark_infeasible(violation is not None)
        objective = self.objective or self.score
        if objective.kind == "heldout":
            final = objective(None, heldout)
        elif objective.uses_train_loss:
            final = self.last_objective
        else:
            final = alpha
        if final is None or final.value is None:
            self.fail((final.reason if final else None) or "the score could not be computed")
        if objective.multi_objective:
            return [float(v) for v in final.values]  # type: ignore[return-value]
        return float(final.value)

    def mark_infeasible(self, violated: bool) -> None:
        """Store the trial's constraint (``wwtune.constraint``; Optuna's own where it has one)."""
        self.writer.constraint(violated)
        if HAS_SET_CONSTRAINT:
            self.trial.set_constraint("loss_drop", 1.0 if violated else 0.0)  # samplers and best_trial see it

    def infeasible_penalty(self, reason: str) -> Any:
        """A diverged run under ``on_violation="infeasible"``: COMPLETE, infeasible, valued ``penalty``
        (default: the worst value of the objective's direction, ±inf), so a constrained sampler (TPE,
        NSGA-II, GP) learns the region is bad instead of never seeing it (Optuna's samplers ignore FAIL
        trials). A held-out objective without a ``penalty`` fails the trial instead (no held-out value is
        known to be worst)."""
        objective = self.objective or self.score
        if self.penalty is None and objective.kind == "heldout":
            self.fail(reason)
        self.writer.infeasible(reason)
        self.writer.losses(self.losses)
        self.mark_infeasible(True)
        _logger.warning("Trial %d infeasible: %s", self.trial.number, reason)
        values = []
        for direction in objective.directions:
            worst = math.inf if direction == "minimize" else -math.inf
            values.append(float(self.penalty) if self.penalty is not None else worst)
        return values if objective.multi_objective else values[0]
