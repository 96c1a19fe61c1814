"""End to end: a study that searches ``balance: {none, tempbalance}`` and ``freeze: {none, early}`` on a
deep digits task; what the helpers did is stored in each trial and shown in the report."""

import os
import subprocess
import sys

import optuna
import pytest
from optuna.storages.journal import JournalFileBackend, JournalStorage
from optuna.trial import TrialState

from wwtune.objective import NullReporter, Params
from wwtune.objectives import char_lm, digits_deep_cnn, digits_deep_mlp
from wwtune.report.training_plots import training_of

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@pytest.mark.slow
def test_study_searches_balance_and_freeze(tmp_path):
    study = "digits_deep_mlp"  # digits_deep_cnn: the same code path
    overrides = [
        f"study={study}",
        "study.n_trials=4",
        "study.seed=2",  # its 4 random draws cover all four (balance, freeze) pairs
        "sampler=random",
        "objective.budget=4",
        "objective.fixed.steps_per_epoch=3",
        "study.progress_bar=false",
        "sanity.min_loss_drop=null",
    ]
    run = subprocess.run(
        [sys.executable, "-m", "wwtune", *overrides],
        cwd=tmp_path,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    storage = JournalStorage(JournalFileBackend(str(tmp_path / "studies" / study / "journal.log")))
    trials = optuna.load_study(study_name=study, storage=storage).trials
    assert all(t.state == TrialState.COMPLETE for t in trials)
    assert {t.params["balance"] for t in trials} == {"none", "tempbalance"}
    assert {t.params["freeze"] for t in trials} == {"none", "early"}
    for t in trials:
        training = training_of(t) or {}
        assert ("tempbalance" in training) == (t.params["balance"] == "tempbalance")
        assert ("freezing" in training) == (t.params["freeze"] == "early")
        if "tempbalance" in training:
            assert len(training["tempbalance"]["layers"]) == 4
            assert len(training["tempbalance"]["history"]) == 4
    report = (tmp_path / "studies" / study / "report.html").read_text()
    assert "Training helpers: TempBalance and early freezing" in report
    assert "TempBalance factors" in report


@pytest.mark.parametrize("fn", [digits_deep_mlp.train, digits_deep_cnn.train])
def test_deep_tasks_have_four_balanced_layers(fn):
    out = fn(Params(values={"balance": "tempbalance", "steps_per_epoch": 1}, budget=1), NullReporter())
    assert len(out["training"]["tempbalance"]["layers"]) == 4


def test_char_lm_balances_its_transformer_layers():
    values = {"balance": "tempbalance", "freeze": "early", "steps_per_epoch": 2, "eval_chars": 512}
    out = char_lm.train(Params(values=values, budget=2), NullReporter())
    layers = out["training"]["tempbalance"]["layers"]
    assert layers[0] == "blocks.0.attn.proj" and layers[-1] == "blocks.1.mlp.fc2" and len(layers) == 7
    assert out["training"]["freezing"]["budget"] == 2


def test_helper_choices_are_checked():
    with pytest.raises(ValueError, match=r"balance must be one of \['none', 'tempbalance'\] but got 'yes'"):
        digits_deep_mlp.train(Params(values={"balance": "yes"}, budget=1), NullReporter())
    with pytest.raises(ValueError, match="balance_map must be one of"):
        digits_deep_mlp.train(Params(values={"balance_map": "cube"}, budget=1), NullReporter())


def _trial(number, training, heldout=0.9):
    from optuna.distributions import CategoricalDistribution

    t = optuna.trial.create_trial(
        value=1.0,
        params={"balance": "tempbalance"},
        distributions={"balance": CategoricalDistribution(["none", "tempbalance"])},
        user_attrs={"wwtune.result": {"training": training} if training else {}, "wwtune.heldout": heldout},
    )
    t.number = number
    return t


def test_report_section_shows_factors_and_freeze_steps():
    from wwtune.report.training_plots import training_section

    tb = {
        "map": "linear",
        "layers": ["fc2", "fc3"],
        "history": [
            {"step": 1, "factors": {"fc2": 0.5, "fc3": 1.5}},
            {"step": 2, "factors": {"fc2": 1.5, "fc3": 0.5}},
        ],
    }
    fr = {"frozen": {"fc1": 3, "fc2": 4}, "saved_share": 0.25}
    trials = [
        _trial(0, None),
        _trial(1, {"tempbalance": tb, "freezing": fr}, 0.8125),
        _trial(2, {"freezing": fr}),
    ]
    html = training_section(trials, trials[1])
    assert html.count("<tr>") == 3  # header + the two trials that used a helper
    assert "fc1 @ 3, fc2 @ 4" in html and "25%" in html and "0.50 – 1.50" in html and "0.8125" in html
    assert 'alt="TempBalance factors of trial 1"' in html
    assert training_section([_trial(0, None)], None) == ""
