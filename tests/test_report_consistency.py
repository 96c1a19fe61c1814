"""The report says one thing (issue 21 point 7): every label names the score or pick it shows, in the
summary's words; one outlier does not flatten the score history; the α legend agrees with the table."""

from __future__ import annotations

import optuna
import pandas as pd
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from wwtune.cli import compose
from wwtune.factories import make_score
from wwtune.outcome import write_best_params
from wwtune.record import STUDY_BAND, STUDY_CONFIG
from wwtune.report import render_report
from wwtune.report.html import _layer_table
from wwtune.report.plots import plot_layer_alphas
from wwtune.report.study_plots import plot_score_history, plot_trust_scatter
from wwtune.search_space import SearchSpace

optuna.logging.set_verbosity(optuna.logging.WARNING)


def study_with(values, heldouts=None, config=None):
    study = optuna.create_study()
    if config is not None:
        study.set_user_attr(STUDY_CONFIG, config)
    study.set_user_attr(STUDY_BAND, [2.0, 2.0])
    for i, v in enumerate(values):
        layers = {"step": 2, "name": ["fc1", "fc2"], "alpha": [1.95, 2.0 + 0.1 * i],
                  "num_evals": [64, 64], "eligible": [True, True],
                  "warning": ["over-trained", ""], "status": ["success", "success"]}  # fmt: skip
        attrs = {"wwtune.losses": [[1, 2.0], [2, 0.1 + 0.01 * i]], "wwtune.layers": layers}
        if heldouts is not None:
            attrs["wwtune.heldout"] = heldouts[i]
            attrs["wwtune.score"] = abs(2.0 - v)
        lr = {"lr": FloatDistribution(1e-3, 1.0)}
        t = create_trial(
            state=TrialState.COMPLETE, value=v, params={"lr": 0.1}, distributions=lr, user_attrs=attrs
        )
        study.add_trial(t)
    return study


def test_one_outlier_does_not_flatten_the_score_history():
    values = [0.1, 0.2, 0.15, 0.12, 0.18, 57.0, 0.11]
    fig = plot_score_history(
        study_with(values), score_label="score: log10(training loss) + 0.5 × band distance"
    )
    ax = fig.axes[0]
    assert ax.get_ylim()[1] < 1.0  # the outlier (57) is off the scale, drawn at the edge
    assert any(c.get_gid() == "off_scale" for c in ax.collections)
    assert "off the scale (1)" in [t.get_text() for t in ax.get_legend().get_texts()]
    assert ax.get_ylabel().startswith("score: log10(training loss)")


def test_the_trust_scatter_stars_the_returned_trial_and_names_the_score():
    study = study_with([0.5, 0.1, 0.3], heldouts=[0.9, 0.5, 0.7])
    fig = plot_trust_scatter(study, score_label="score: log10(training loss) + 0.5 × band distance", pick=0)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "returned by the pick rule (#0)" in labels and not any("α score" in x for x in labels)
    assert ax.get_xlabel().startswith("score: log10(training loss)")
    default = plot_trust_scatter(study).axes[0]  # no pick given: the lowest score, said so
    assert "lowest α score (#1)" in [t.get_text() for t in default.get_legend().get_texts()]


def test_the_alpha_legend_and_the_layer_table_agree_on_an_on_target_layer():
    df = pd.DataFrame({"name": ["fc1"], "alpha": [1.95], "num_evals": [64], "eligible": [True],
                       "warning": ["over-trained"]})  # fmt: skip
    legend = [t.get_text() for t in plot_layer_alphas(df, (2.0, 2.0)).axes[0].get_legend().get_texts()]
    assert any(x.startswith("no warning, or on target") for x in legend)
    table = _layer_table(df, (2.0, 2.0))  # the template's table: rows of cells
    cells = [cell["text"] for row in table["rows"] for cell in row["cells"]]
    assert "on target (within 0.1 of the band)" in cells and "over-trained" not in cells


def test_the_summary_box_names_the_score_rule_and_the_pick(tmp_path):
    cfg = compose([f"study.studies_dir={tmp_path}"])
    study = study_with([-1.79, -1.5, -1.2, -1.0], config=cfg)
    write_best_params(
        study, SearchSpace.from_config(cfg["search_space"]), cfg, make_score(cfg["score"], cfg["objective"])
    )
    page = render_report(study)
    assert "0 = on target" not in page  # the old box explained a band distance beside a score of −1.79
    assert "score = log10(final training loss) + 0.5 x B" in page
    assert "returned trial (the pick)" in page and "pick.kind=loss_group" in page
