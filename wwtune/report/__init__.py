"""Plots and the self-contained HTML study report (matplotlib object API on Agg; no pyplot state).

One model (an ``analyze(..., keep_evals=True)`` DataFrame):
    ``plot_esd(evals, row)``, ``plot_esd_linear(evals, row)``, ``plot_layer_alphas(df, band)``,
    ``save_model_plots(df, out_dir, band)`` (all of them into a folder: the ``wwtune analyze --plot`` call).
One study (an ``optuna.Study`` from any storage, or its ``FrozenTrial`` list; reads the user attrs of the
team contract): ``plot_score_history``, ``plot_alpha_heatmap``, ``plot_trust_scatter``,
``plot_advice(advice_dict)`` (the advisor's figure) and ``write_report(study, "studies/<name>/report.html")``.
Figures: ``save_figure(fig, path, formats)``, ``figure_data_uri(fig)``, and
``attach_figures(trial_or_study, {name: fig}, artifact_store)`` for optuna-dashboard.
"""

from wwtune.report.advice_plot import plot_advice
from wwtune.report.artifacts import attach_figures
from wwtune.report.html import render_report, write_report
from wwtune.report.plots import (
    figure_data_uri,
    plot_esd,
    plot_esd_linear,
    plot_layer_alphas,
    save_figure,
    save_model_plots,
)
from wwtune.report.study_plots import plot_alpha_heatmap, plot_score_history, plot_trust_scatter

__all__ = [
    "attach_figures",
    "figure_data_uri",
    "plot_advice",
    "plot_alpha_heatmap",
    "plot_esd",
    "plot_esd_linear",
    "plot_layer_alphas",
    "plot_score_history",
    "plot_trust_scatter",
    "render_report",
    "save_figure",
    "save_model_plots",
    "write_report",
]
