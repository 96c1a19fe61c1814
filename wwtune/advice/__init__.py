"""More data or more tuning? An advisor grounded in layer spectra (data-free).

Given a task that honours ``params.data_fraction`` and a finished study, the advisor retrains the study's
best configuration and a typical one (the median-score trial) at several fractions of the training data
(default 1/8, 1/4, 1/2, 1) with several seeds, analyses the trained weights' spectra, and regresses the
α score, the mean α and the cross-layer spread of α (eligible layers) on ``log2(data fraction)`` by
ordinary least squares over all fractions × seeds (slope, standard error, extrapolation to 2× data).
By default every fraction gets the same number of optimisation steps (``budget_per_data=True``: an
epoch budget is scaled by 1/fraction), so the curves measure data, not training length.

Signals (all from training runs and spectra):

* **data signals** of the best configuration, per doubling of the data: the change of its mean α
  (``alpha_slope``, either sign counts: with equal steps less data typically over-fits and pushes α below
  2, with equal epochs it under-trains and pushes α up) and the change of its cross-layer α spread
  (``spread_slope``; the evidence is that less data widens the spread, so a narrowing counts). Spectra
  that still move with the amount of data mean a data-limited model; spectra that stay put mean the data
  no longer shapes what is learned.
* **tuning gap** ``tune_gain``: the typical configuration's fitted α score at 1× minus the best
  configuration's, with the standard error ``se_tune`` of that difference.

**The rule** (``DecisionRule``; defaults ``data_threshold=0.3`` α, ``spread_threshold=0.05`` α,
``z=2``, ``min_effect=0.05``):

* "more data" when a data signal is large and clear: ``|alpha_slope| >= data_threshold`` with
  ``|alpha_slope| >= z·se``, or ``-spread_slope >= spread_threshold`` with ``-spread_slope >= z·se``;
* "inconclusive" when a data signal is large but within ``z`` standard errors of 0;
* "more tuning" when the data is shown to be saturated — both data signals stay below their thresholds
  even at ``z`` standard errors (``|alpha_slope| + z·se < data_threshold`` and
  ``-spread_slope + z·se < spread_threshold``) — and the tuning gap is clear: ``tune_gain >= min_effect``
  and ``tune_gain >= z·se_tune``;
* "inconclusive" otherwise, and whenever a configuration has fewer than two fractions of usable runs.

The study's own trials are summarised beside the verdict (spread of scores, best vs median, whether the
best score was still improving over the most recent trials, parameter importances when there are
enough trials); those numbers are reported, not used by the rule. A held-out metric returned by the task
is recorded with every run for validation and is never read by the rule.

Limits: the thresholds were set on teacher–student MLPs (``benchmarks/bench_advice.py``);
the extrapolation to 2× is a straight line in log2(data); the tuning effect is in α-score units, which
track the learning rate strongly and are unreliable for badly under-trained runs (α > 6), so it says the
hyperparameters move the spectra, which is evidence about held-out quality only as far as the study's
α score is (see ``wwtune.trust``).

Example (a bundled task and a 4-trial study; about 10–30 s on one core)::

    import optuna
    from wwtune.advice import advise, format_advice
    from wwtune.objectives.digits_mlp import train

    study = optuna.create_study(direction="minimize")  # normally made by `python -m wwtune study=...`
    for lr, score in [(0.1, 0.2), (0.03, 0.5), (0.01, 1.0), (0.3, 0.4)]:
        study.enqueue_trial({"lr": lr})
        study.optimize(lambda t: (t.suggest_float("lr", 1e-3, 1.0, log=True), score)[1], n_trials=1)
    advice = advise(train, study, budget=5, seeds=(0, 1))
    print(format_advice(advice))

From the command line, on an existing study: ``python -m wwtune study=<name> mode=advise``.
"""

from wwtune.advice.glue import ADVISE_DEFAULTS, advise, format_advice, run_advice, save_advice
from wwtune.advice.rule import VERDICTS, DecisionRule, Trend, decide, fit_trend, tuning_headroom
from wwtune.advice.runs import (
    DEFAULT_FRACTIONS,
    Candidate,
    RunRecord,
    check_task,
    measure_data_curve,
    pick_candidates,
)
from wwtune.report.advice_plot import plot_advice

__all__ = [
    "ADVISE_DEFAULTS",
    "DEFAULT_FRACTIONS",
    "VERDICTS",
    "Candidate",
    "DecisionRule",
    "RunRecord",
    "Trend",
    "advise",
    "check_task",
    "decide",
    "fit_trend",
    "format_advice",
    "measure_data_curve",
    "pick_candidates",
    "plot_advice",
    "run_advice",
    "save_advice",
    "tuning_headroom",
]
