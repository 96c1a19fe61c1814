"""Pruning on layer diagnostics: stop trials whose layers converge poorly or whose training blew up.

:class:`AlphaPruner` is an ordinary :class:`optuna.pruners.BasePruner`. It reads the per-layer
diagnostics that wwtune's study reporter stores on each trial (user attrs, see below) and can wrap any
Optuna pruner, which is then applied to the reported α score (the trial's intermediate values).

Optuna hands a pruner a read-only :class:`~optuna.trial.FrozenTrial`, so the pruner cannot write the
reason for its decision itself. It remembers the reason instead; the code that called
``trial.should_prune()`` fetches it with :meth:`AlphaPruner.reason_for` and stores it::

    trial.set_user_attr("wwtune.layers", layers)        # BEFORE should_prune: the pruner reads it
    trial.report(score, step)
    if trial.should_prune():
        reason = pruner.reason_for(trial)               # dict, JSON-serialisable
        trial.set_user_attr("wwtune.prune_reason", reason)
        raise wwtune.Pruned(reason["message"], step)

User attrs read from the trial:

* ``wwtune.layers``: the latest analysis, columnar ``{"step", "name", "alpha", "num_evals", "eligible",
  "status", "lambda_max", "log_norm", "rank_loss", "num_traps"}`` (``num_traps`` may be ``null``
  when correlation traps were not computed; then the trap rule has nothing to judge).
* ``wwtune.budget``: the training budget (int), used for the default warm-up.
* ``wwtune.losses``: ``[[step, loss], ...]``, used by the divergence rule.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from optuna.pruners import BasePruner

from wwtune.layer_rules import LayerTable, chosen_layers, diverged_reason
from wwtune.record import TrialRecord

if TYPE_CHECKING:
    import optuna

#: LayerTable and diverged_reason live in wwtune.layer_rules (shared with the bridge); still offered here
__all__ = ["RULES", "AlphaPruner", "LayerTable", "diverged_reason"]

_logger = logging.getLogger(__name__)

#: The rules an :class:`AlphaPruner` can apply, in the order they are checked.
RULES = ("diverged", "under_trained", "trap", "rank_collapse")


# How many trials' first analyses and prune reasons a pruner keeps (oldest dropped first).
_MAX_REMEMBERED_TRIALS = 10_000


class AlphaPruner(BasePruner):
    """Pruner that stops trials whose layers' spectra say the run is going nowhere.

    After a warm-up (α means little early in training) the pruner checks, at every reporting step:

    * ``"under_trained"``: the fraction of eligible layers (with a successful power-law fit) whose α is
      above ``under_trained_alpha`` exceeds ``under_trained_fraction``;
    * ``"trap"``: an eligible layer has more than ``max_traps`` correlation traps;
    * ``"rank_collapse"``: an eligible layer has ``rank_loss / num_evals`` above
      ``max_rank_loss_fraction``;
    * then the ``wrapped`` Optuna pruner, if any, on the reported α score.

    At every step, warm-up or not, the ``"diverged"`` rule prunes a run whose training loss is NaN/Inf,
    whose ``lambda_max`` or ``log_norm`` is not finite, or which has an eligible layer with α below
    ``diverged_alpha`` *and* a spectral or Frobenius norm that grew by more than ``norm_growth`` times
    since the first analysis the pruner saw for that trial. α below 2 alone never prunes: heavily
    regularised good runs reach it. Failed fits (α = −1) count neither as small nor as large α.

    The reason for a decision is kept by the pruner; see :meth:`reason_for`. The reporter must call
    ``should_prune()`` after every analysis (warm-up included) so the pruner sees the first one.

    Example:

        .. code-block:: python

            import optuna

            from wwtune.pruners import AlphaPruner


            def objective(trial):
                lr = trial.suggest_float("lr", 1e-4, 1.0, log=True)
                trial.set_user_attr("wwtune.budget", 10)
                for step in range(1, 11):
                    alpha = 2.0 + 0.01 / lr  # toy model: a tiny learning rate leaves layers under-trained
                    trial.set_user_attr(
                        "wwtune.layers",
                        {"step": step, "name": ["fc1", "fc2"], "alpha": [alpha, alpha + 0.5],
                         "num_evals": [64, 64], "eligible": [True, True]},
                    )
                    trial.report(abs(alpha - 2.0), step)
                    if trial.should_prune():
                        trial.set_user_attr("wwtune.prune_reason", pruner.reason_for(trial))
                        raise optuna.TrialPruned()
                return abs(alpha - 2.0)


            pruner = AlphaPruner(wrapped=optuna.pruners.MedianPruner())
            sampler = optuna.samplers.RandomSampler(seed=0)
            study = optuna.create_study(pruner=pruner, sampler=sampler)
            study.optimize(objective, n_trials=10)

    Args:
        wrapped:
            An Optuna pruner applied, after the warm-up, to the reported α score when no layer rule
            fired (its own warm-up and startup settings apply on top). :obj:`None` (default): only the
            layer rules prune.
        rules:
            The rules to apply, any of ``"diverged"``, ``"under_trained"``, ``"trap"`` and
            ``"rank_collapse"``. Default: all four.
        n_warmup_steps:
            Layer rules and the wrapped pruner are disabled while the step is below this. :obj:`None`
            (default): ``ceil(warmup_fraction * budget)``, with the budget read from the trial's
            ``wwtune.budget`` user attr.
        warmup_fraction:
            Fraction of the training budget used as warm-up when ``n_warmup_steps`` is :obj:`None`.
            Must be in [0, 1]. Default 0.5: α is meaningful from about half-way through training.
        under_trained_alpha:
            A layer whose α is above this is under-trained. Default 6, the bound above which
            WeightWatcher labels a layer under-trained and power-law fits become unreliable.
        under_trained_fraction:
            ``"under_trained"`` prunes when *more than* this fraction of eligible, successfully fitted
            layers are under-trained. Must be in [0, 1). Default 0.4: at least half of 2 or 4 layers,
            2 of 3, 3 of 5. Measured with ``benchmarks/pruner_calibration.py`` (see
            ``benchmarks/results/pruner_calibration.md``): on digits_mlp (2 eligible layers) 0.4 saved
            24% of epochs and a strict majority (0.5) 15%; on digits_cnn 32% vs 22%; no pruned run
            would have finished in the top quartile with either setting (seed 1, 40 runs).
        max_traps:
            ``"trap"`` prunes when an eligible layer has more than this many correlation traps.
            Default 0 (any trap). Layers whose ``num_traps`` is missing are not judged.
        max_rank_loss_fraction:
            ``"rank_collapse"`` prunes when an eligible layer's ``rank_loss / num_evals`` is above
            this. Must be in (0, 1). Default 0.5: half the spectrum numerically zero.
        diverged_alpha:
            ``"diverged"`` needs α below this on a layer whose norms exploded. Default 2.
        norm_growth:
            ``"diverged"``: growth factor of ``lambda_max`` (or of ``10 ** log_norm``) since the first
            analysis that counts as exploding. Must be > 1. Default 100 (the largest singular value
            grew tenfold). In ``benchmarks/results/pruner_calibration.md`` runs with α < 2 below ×100
            include good ones (up to ×47, accuracy ≥ 0.90) and poor ones (×56, ×82); runs above it
            mostly ended near chance, but two reached 0.93 and 0.958: growth alone does not separate
            them, and the bound is set high on purpose.
    """

    def __init__(
        self,
        wrapped: BasePruner | None = None,
        *,
        rules: Sequence[str] = RULES,
        n_warmup_steps: int | None = None,
        warmup_fraction: float = 0.5,
        under_trained_alpha: float = 6.0,
        under_trained_fraction: float = 0.4,
        max_traps: int = 0,
        max_rank_loss_fraction: float = 0.5,
        diverged_alpha: float = 2.0,
        norm_growth: float = 100.0,
    ) -> None:
        if wrapped is not None and not isinstance(wrapped, BasePruner):
            raise TypeError(
                f"wrapped must be an optuna.pruners.BasePruner or None but got {type(wrapped).__name__}."
            )
        if isinstance(rules, str):
            raise TypeError(f"rules must be a list of rule names but got the string {rules!r}.")
        unknown = [r for r in rules if r not in RULES]
        if unknown:
            raise ValueError(f"Unknown pruning rule(s) {unknown}; allowed: {list(RULES)}.")
        if n_warmup_steps is not None and n_warmup_steps < 0:
            raise ValueError(f"Number of warmup steps cannot be negative but got {n_warmup_steps}.")
        if not 0.0 <= warmup_fraction <= 1.0:
            raise ValueError(f"warmup_fraction must be in [0, 1] but got {warmup_fraction}.")
        if not under_trained_alpha > 0.0:
            raise ValueError(f"under_trained_alpha must be positive but got {under_trained_alpha}.")
        if not 0.0 <= under_trained_fraction < 1.0:
            raise ValueError(f"under_trained_fraction must be in [0, 1) but got {under_trained_fraction}.")
        if max_traps < 0:
            raise ValueError(f"max_traps cannot be negative but got {max_traps}.")
        if not 0.0 < max_rank_loss_fraction < 1.0:
            raise ValueError(f"max_rank_loss_fraction must be in (0, 1) but got {max_rank_loss_fraction}.")
        if not diverged_alpha > 0.0:
            raise ValueError(f"diverged_alpha must be positive but got {diverged_alpha}.")
        if not norm_growth > 1.0:
            raise ValueError(f"norm_growth must be greater than 1 but got {norm_growth}.")

        self._wrapped = wrapped
        self._rules = frozenset(rules)
        self._n_warmup_steps = n_warmup_steps
        self._warmup_fraction = float(warmup_fraction)
        self._under_trained_alpha = float(under_trained_alpha)
        self._under_trained_fraction = float(under_trained_fraction)
        self._max_traps = int(max_traps)
        self._max_rank_loss_fraction = float(max_rank_loss_fraction)
        self._diverged_alpha = float(diverged_alpha)
        self._norm_growth = float(norm_growth)

        self._lock = threading.Lock()
        self._first: OrderedDict[tuple[str, int], LayerTable] = OrderedDict()
        self._reasons: OrderedDict[tuple[str, int], dict[str, Any]] = OrderedDict()

    def prune(self, study: optuna.study.Study, trial: optuna.trial.FrozenTrial) -> bool:
        key = (study.study_name, trial.number)
        reason = self._decide(study, trial, key)
        with self._lock:
            self._reasons.pop(key, None)
            if reason is not None:
                self._reasons[key] = reason
                _trim(self._reasons)
        if reason is not None:
            _logger.info("Trial %d pruned: %s", trial.number, reason["message"])
        return reason is not None

    def reason_for(
        self,
        trial: optuna.trial.Trial | optuna.trial.FrozenTrial,
        study: optuna.study.Study | None = None,
    ) -> dict[str, Any] | None:
        """Why the last :meth:`prune` call on ``trial`` returned ``True``; :obj:`None` if it did not.

        Call it right after ``trial.should_prune()`` returned ``True``. ``study`` is needed only for a
        :class:`~optuna.trial.FrozenTrial` when one pruner serves several studies.

        Returns:
            A JSON-serialisable dict: ``rule`` (one of :data:`RULES` or ``"wrapped"``), ``step``,
            ``message`` (one line for people), ``layers`` and ``alpha`` (the layers that triggered the
            rule and their α; empty for ``"wrapped"`` and loss-based divergence), plus the rule's
            numbers (``fraction``/``threshold``/``bound``, ``num_traps``, ``rank_loss_fraction``,
            ``growth``, ``cause``, ``pruner``/``score``).
        """
        study = study if study is not None else getattr(trial, "study", None)
        with self._lock:
            if study is not None:
                reason = self._reasons.get((study.study_name, trial.number))
            else:
                matches = [r for (_, number), r in self._reasons.items() if number == trial.number]
                reason = matches[-1] if matches else None
        return None if reason is None else dict(reason)

    # ----------------------------------------------------------------------------------------------

    def _decide(
        self, study: optuna.study.Study, trial: optuna.trial.FrozenTrial, key: tuple[str, int]
    ) -> dict[str, Any] | None:
        record = TrialRecord(trial)
        raw_layers = record.layers_attr
        table = None if raw_layers is None else LayerTable.from_attr(raw_layers)
        first = None if table is None else self._first_analysis(key, table)
        step = trial.last_step if trial.last_step is not None else (table.step if table else None)

        if "diverged" in self._rules:
            reason = self._diverged(trial, table, first)
            if reason is not None:
                return {"step": step, **reason}

        if step is None or step < self._warmup_steps(trial):
            return None

        if table is not None:
            for rule, check in (
                ("under_trained", self._under_trained),
                ("trap", self._trap),
                ("rank_collapse", self._rank_collapse),
            ):
                if rule in self._rules:
                    reason = check(table)
                    if reason is not None:
                        return {"rule": rule, "step": step, **reason}

        if self._wrapped is not None and self._wrapped.prune(study, trial):
            score = trial.intermediate_values.get(step) if trial.last_step is not None else None
            name = type(self._wrapped).__name__
            return {
                "rule": "wrapped",
                "step": step,
                "pruner": name,
                "score": score,
                "layers": [],
                "alpha": [],
                "message": f"{name} pruned the trial on its α score {_fmt(score)} at step {step}.",
            }
        return None

    def _warmup_steps(self, trial: optuna.trial.FrozenTrial) -> int:
        if self._n_warmup_steps is not None:
            return self._n_warmup_steps
        budget = TrialRecord(trial).budget
        if budget is None:
            raise ValueError(
                f"Trial {trial.number} has no 'wwtune.budget' user attr, which AlphaPruner needs for its "
                "default warm-up; set it on the trial or give AlphaPruner an explicit n_warmup_steps."
            )
        return math.ceil(self._warmup_fraction * int(budget))

    def _first_analysis(self, key: tuple[str, int], table: LayerTable) -> LayerTable:
        with self._lock:
            first = self._first.get(key)
            if first is None:
                self._first[key] = first = table
                _trim(self._first)
            return first

    def _under_trained(self, table: LayerTable) -> dict[str, Any] | None:
        fitted = [i for i in range(len(table.name)) if table.eligible[i] and table.fit_ok(i)]
        if not fitted:
            return None
        high = [i for i in fitted if table.alpha[i] > self._under_trained_alpha]  # type: ignore[operator]
        fraction = len(high) / len(fitted)
        if fraction <= self._under_trained_fraction:
            return None
        return {
            **chosen_layers(table, high),
            "fraction": fraction,
            "threshold": self._under_trained_fraction,
            "bound": self._under_trained_alpha,
            "message": (
                f"{len(high)} of {len(fitted)} eligible layers have α > {self._under_trained_alpha:g} "
                f"({fraction:.0%} > {self._under_trained_fraction:.0%}): " + _describe(table, high)
            ),
        }

    def _trap(self, table: LayerTable) -> dict[str, Any] | None:
        trapped = [
            i
            for i in range(len(table.name))
            if table.eligible[i] and table.num_traps[i] is not None and table.num_traps[i] > self._max_traps
        ]
        if not trapped:
            return None
        return {
            **chosen_layers(table, trapped),
            "num_traps": [table.num_traps[i] for i in trapped],
            "threshold": self._max_traps,
            "message": "correlation traps in "
            + ", ".join(f"{table.name[i]} ({table.num_traps[i]} traps)" for i in trapped)
            + f"; more than {self._max_traps} allowed per layer.",
        }

    def _rank_collapse(self, table: LayerTable) -> dict[str, Any] | None:
        collapsed, fractions = [], []
        for i in range(len(table.name)):
            loss, n = table.rank_loss[i], table.num_evals[i]
            if not table.eligible[i] or loss is None or not n:
                continue
            if loss / n > self._max_rank_loss_fraction:
                collapsed.append(i)
                fractions.append(loss / n)
        if not collapsed:
            return None
        return {
            **chosen_layers(table, collapsed),
            "rank_loss_fraction": fractions,
            "threshold": self._max_rank_loss_fraction,
            "message": "rank collapse in "
            + ", ".join(
                f"{table.name[i]} (rank_loss/num_evals = {f:.2f})"
                for i, f in zip(collapsed, fractions, strict=True)
            )
            + f" > {self._max_rank_loss_fraction:g}.",
        }

    def _diverged(
        self, trial: optuna.trial.FrozenTrial, table: LayerTable | None, first: LayerTable | None
    ) -> dict[str, Any] | None:
        return diverged_reason(
            TrialRecord(trial).losses, table, first, self._diverged_alpha, self._norm_growth
        )


def _describe(table: LayerTable, idx: list[int]) -> str:
    return ", ".join(f"{table.name[i]} (α={table.alpha[i]:.3g})" for i in idx) + "."


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4g}"


def _trim(d: OrderedDict[Any, Any]) -> None:
    while len(d) > _MAX_REMEMBERED_TRIALS:
        d.popitem(last=False)
