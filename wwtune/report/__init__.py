"""Plots and the self-contained HTML study report (matplotlib object API on Agg; no pyplot state)."""

from wwtune.report.artifacts import attach_figures
from wwtune.report.html import render_report, write_report
from wwtune.report.plots import (
    figure_data_uri,
    plot_advice,
    plot_alpha_heatmap,
    plot_esd,
    plot_esd_linear,
    plot_layer_alphas,
    plot_score_history,
    plot_trust_scatter,
    save_figure,
    save_model_plots,
)

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
