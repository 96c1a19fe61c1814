"""A wwtune study as Optuna's tools show it: flat, typed α per layer in ``trials_dataframe()`` and
:func:`wwtune.trials_dataframe`, infeasible trials marked the way optuna-dashboard reads them, worker
bookkeeping out of the user attrs, ``optuna.visualization`` (the ``plots`` extra), and the warning when
``report_every`` exceeds the budget."""

import warnings

import optuna
import pandas as pd
import pytest
import torch
from optuna.trial import TrialState
from optuna_dashboard._serializer import serialize_frozen_trial
from torch import nn

import wwtune

optuna.logging.set_verbosity(optuna.logging.ERROR)
torch.set_num_threads(1)


def mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 96))


def objective(trial):
    lr = trial.suggest_float("lr", 1e-3, 1.0, log=True)
    bridge = wwtune.TrialBridge(trial, budget=2)
    flat = trial.number == 1  # the loss does not fall: kept as infeasible (the default)
    for step, loss in ((1, 1.0), (2, 1.0 if flat else 0.5)):
        bridge.report(step, mlp(trial.number), loss * (1 + lr))
    return bridge.finish(heldout=0.5)


@pytest.fixture(scope="module")
def study():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(objective, n_trials=3)
    return study


def test_optuna_trials_dataframe_has_one_float_column_per_layer(study):
    df = study.trials_dataframe()
    for layer in ("0", "2"):
        assert pd.api.types.is_float_dtype(df[f"user_attrs_wwtune.alpha.{layer}"]), df.dtypes
    assert not any("wwtune.worker" in c for c in df.columns)


def test_wwtune_trials_dataframe_expands_the_record(study):
    df = wwtune.trials_dataframe(study)
    assert list(df["number"]) == [0, 1, 2] and list(df["feasible"]) == [True, False, True]
    assert "did not fall" in df.loc[1, "reason"] and df.loc[0, "reason"] == ""
    assert not {"user_attrs_wwtune.layers", "user_attrs_wwtune.losses"} & set(df.columns)
    for column in ("alpha.0", "alpha.2", "alpha_score", "train_loss", "mean_alpha", "heldout"):
        assert pd.api.types.is_float_dtype(df[column]), (column, df[column].dtype)
    layers = wwtune.record.TrialRecord(study.trials[0]).layers()
    assert df.loc[0, "alpha.0"] == pytest.approx(layers["alpha"][0])
    assert df.loc[0, "mean_alpha"] == pytest.approx(layers["alpha"].mean())  # both layers eligible
    assert df.loc[0, "alpha_score"] == study.trials[0].user_attrs["wwtune.score"]  # the value is the score's
    assert df.loc[0, "train_loss"] > 0
    assert df.sort_values("alpha.0")["number"].notna().all()  # sortable like any float column
    assert list(wwtune.trials_dataframe(optuna.create_study()).columns) == []
    with pytest.raises(TypeError, match="needs an optuna.Study but got list"):
        wwtune.trials_dataframe([])


def test_dashboard_shows_the_constraint_and_the_flat_alpha(study):
    shown = [serialize_frozen_trial(study._study_id, t, {}) for t in study.trials]
    assert [s["constraints"] for s in shown] == [[0.0], [1.0], [0.0]]  # positive: infeasible
    attrs = {a["key"]: a["value"] for a in shown[0]["user_attrs"]}
    assert float(attrs["wwtune.alpha.0"]) == study.trials[0].user_attrs["wwtune.alpha.0"]


def test_optuna_visualization_draws_a_wwtune_study(study):
    figure = optuna.visualization.plot_slice(study, params=["lr"])
    assert figure.data and optuna.visualization.is_available()


def test_report_every_beyond_the_budget_warns_and_the_final_step_is_not_pruned():
    def run(trial):
        with pytest.warns(UserWarning, match="report_every=10 exceeds budget=2: .*final step only"):
            bridge = wwtune.TrialBridge(trial, budget=2, report_every=10)
        for step in (1, 2):
            bridge.report(step, mlp(), 1.0 / step)
        return bridge.finish()

    study = optuna.create_study(pruner=optuna.pruners.ThresholdPruner(upper=0.0))  # would prune any score
    study.optimize(run, n_trials=1)
    trial = study.trials[0]
    assert trial.state == TrialState.COMPLETE and list(trial.intermediate_values) == [2]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        wwtune.TrialBridge(optuna.create_study().ask(), budget=2, report_every=2)
