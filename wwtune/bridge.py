"""What happens at each report step of a trial: analyse the weights, apply the sanity rules, store the
record, report the score to Optuna and let its pruner stop the run.

:class:`StudyReporter` is the :class:`wwtune.objective.Reporter` a study hands its task. It needs nothing
of wwtune's trial runner: give it an Optuna trial and a :class:`~wwtune.score.Score` and call
:meth:`~StudyReporter.report` from any training loop; :meth:`~StudyReporter.finish` analyses the final
weights if the last step was not analysed and stores what is still pending.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import optuna
import pandas as pd

from wwtune.objective import Pruned, Reporter, check_finite_loss, check_finite_weights
from wwtune.record import TrialWriter, layers_record
from wwtune.score import Score, ScoreResult
from wwtune.spectral import analyze as spectral_analyze

__all__ = ["StudyReporter"]


@dataclass
class StudyReporter(Reporter):
    """Analyses the model every ``report_every`` steps (and at ``budget``), scores it and reports to Optuna.

    Raises :class:`~wwtune.objective.TrainingDiverged` for a non-finite loss or weights and
    :class:`~wwtune.objective.Pruned` when the study's pruner says so (the reason is stored in
    ``wwtune.prune_reason``). Time spent here is the analysis overhead (``analysis_s``).

    Args:
        trial: the running Optuna trial.
        score: how an analysis is scored (the α score; it is reported to Optuna when ``report_to_optuna``).
        budget: the run's last step (always analysed).
        report_every: analyse every this many steps.
        analysis_kwargs: keyword arguments of :func:`wwtune.analyze`.
        check_weights: NaN/Inf weights at an analysis step end the run as diverged.
        report_to_optuna: report the score as the trial's intermediate value and ask the pruner.
        analyze: the analysis function (default :func:`wwtune.analyze`).
        store_every_analysis: store the per-layer table at every analysis (a pruner reads it in
            ``should_prune()``); otherwise only the latest is stored, by :meth:`flush_layers`.
        keep_spectra: keep the eigenvalues of the latest analysis in ``spectra``.

    After training, ``losses`` (``[[step, loss], ...]``), ``last_result`` (the latest
    :class:`~wwtune.score.ScoreResult`), ``analysis_s`` (seconds spent here) and ``spectra`` say what it saw.
    """

    trial: optuna.trial.Trial
    score: Score
    budget: int
    report_every: int = 1
    analysis_kwargs: Mapping[str, Any] = field(default_factory=dict)
    check_weights: bool = True
    report_to_optuna: bool = True
    analyze: Callable[..., pd.DataFrame] | None = None
    store_every_analysis: bool = True
    keep_spectra: bool = False
    # what the reporter has seen so far (not constructor arguments)
    losses: list[list[float]] = field(default_factory=list, init=False)
    analysis_s: float = field(default=0.0, init=False)
    last_step: int | None = field(default=None, init=False)
    analysed_step: int | None = field(default=None, init=False)
    last_result: ScoreResult | None = field(default=None, init=False)
    model: Any = field(default=None, init=False)
    pending_layers: dict[str, Any] | None = field(default=None, init=False)
    spectra: pd.DataFrame | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.writer = TrialWriter(self.trial)

    def report(self, step: int, model: Any, loss: float) -> None:
        step, loss = int(step), float(loss)
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
                layers = analyze(model, **self.analysis_kwargs, keep_evals=True)
                self.spectra = layers
            else:
                layers = analyze(model, **self.analysis_kwargs)
            result = self.score(layers)
            self.pending_layers = layers_record(layers, self.score, step)
            if self.store_every_analysis:  # a pruner reads these from storage in should_prune()
                self.flush_layers()
                self.writer.losses(self.losses)
            self.last_result, self.analysed_step = result, step
            if self.report_to_optuna and result.value is not None:
                self.trial.report(result.value, step)
                if self.trial.should_prune():
                    raise Pruned(self.prune_reason(step, result.value)["message"], step)
        finally:
            self.analysis_s += time.perf_counter() - start

    def finish(self) -> None:
        """After training: score the final weights if their step was not analysed yet."""
        if self.model is not None and self.analysed_step != self.last_step:
            self.analyse(self.last_step, self.model)  # final weights always scored

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
