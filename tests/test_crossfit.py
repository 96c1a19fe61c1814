"""Tests of the cross-fitted advisor (wwtune.crossfit) on planted tasks with known answers, and of the
re-split contract of the bundled tasks (wwtune.objective.Split, objectives._common.split_indices)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from wwtune.advice import Candidate, advise, format_advice, save_advice
from wwtune.advice.crossfit import SplitRun, advise_crossfit, summarise_runs
from wwtune.objective import UNSEEN_LOSS, Params, Reporter, Split, task
from wwtune.objectives._common import split_indices

torch.set_num_threads(1)


class _Toy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(4, 4)


def _fake_analyze(model: nn.Module) -> pd.DataFrame:
    return pd.DataFrame(
        {"name": ["l1", "l2"], "alpha": [3.0, 3.2], "num_evals": [64, 64], "status": ["success"] * 2}
    )


def _planted(b: float, c: float, lr_effect: float, noise: float = 0.002):
    """unseen loss = 0.1 + b·n^−c + lr_effect·|log10(lr / 0.01)| + noise, n = data used / data one has."""

    @task(supports_data_fraction=True, supports_resplit=True)
    def train(params: Params, reporter: Reporter) -> dict:
        model = _Toy()
        reporter.report(1, model, 1.0)
        train.calls.append(params)
        if params.split is None:
            return {"heldout": 0.0}
        n = params.split.fraction * params.data_fraction / 0.5
        jitter = noise * np.random.default_rng([params.seed, params.split.seed, int(1e6 * n)]).normal()
        loss = 0.1 + b * n**-c + lr_effect * abs(math.log10(params["lr"] / 0.01)) + jitter
        return {"heldout": 123.0, UNSEEN_LOSS: loss}

    train.calls = []
    return train


def _cands(current_lr: float = 0.1) -> list[Candidate]:
    return [
        Candidate("current", {"lr": current_lr}),
        Candidate("alt", {"lr": 0.01}),
        Candidate("other", {"lr": 1.0}),
    ]


@pytest.mark.parametrize(
    ("b", "lr_effect", "expected"),
    [
        (0.2, 0.0, "more data"),  # steep curve, configurations equal: 2× data gains ≈ 0.2 (1 − 2^−0.5)
        (0.001, 0.05, "more tuning"),  # flat curve, lr 0.01 beats the current 0.1 by 0.05
        (0.05, 0.005, "more data"),  # data ≈ 0.015 vs tuning 0.005
        (0.005, 0.05, "more tuning"),
    ],
)
def test_known_verdicts_on_planted_curves(b, lr_effect, expected):
    train = _planted(b, 0.5, lr_effect)
    adv = advise(train, candidates=_cands(), budget=2, available_fraction=0.5, analyze_fn=_fake_analyze)
    assert adv["method"] == "cross-fitted learning curve"
    assert adv["verdict"] == expected, adv["reason"]
    assert adv["data_gain"]["estimate"] == pytest.approx(b * (1 - 2**-0.5), abs=0.01)
    expected_tune = lr_effect  # |log10(0.1/0.01)| = 1
    assert adv["tuning_gain"]["estimate"] == pytest.approx(expected_tune, abs=0.005)
    if lr_effect > 0:
        assert adv["tuning_gain"]["chosen"] == "alt" and set(adv["tuning_gain"]["picks"]) == {"alt"}
    json.dumps(adv, allow_nan=False)


def test_verdict_flips_when_the_planted_gains_flip():
    a = advise(_planted(0.2, 0.5, 0.001), candidates=_cands(), budget=1, analyze_fn=_fake_analyze)
    b = advise(_planted(0.001, 0.5, 0.2), candidates=_cands(), budget=1, analyze_fn=_fake_analyze)
    assert (a["verdict"], b["verdict"]) == ("more data", "more tuning")


def test_runs_design_cost_and_heldout_never_read():
    train = _planted(0.1, 0.5, 0.01)
    adv = advise(train, candidates=_cands(), budget=3, available_fraction=0.5, analyze_fn=_fake_analyze)
    # 4 splits × 4 fractions for the current best, 4 splits at 3/4 for each other candidate
    assert adv["n_runs"] == 16 + 2 * 4 and adv["run_equivalents"] == pytest.approx(4 * 1.625 + 2 * 4 * 0.75)
    assert {p.budget for p in train.calls} == {3}  # equal epochs at every fraction
    assert {p.data_fraction for p in train.calls} == {0.5}
    assert {(p.split.seed, p.seed) for p in train.calls} == {(k, k) for k in range(4)}
    assert all(r["heldout"] == 123.0 for r in adv["runs"])
    other = advise(
        _planted(0.1, 0.5, 0.01),
        candidates=_cands(),
        budget=3,
        available_fraction=0.5,
        analyze_fn=_fake_analyze,
    )
    assert other["verdict"] == adv["verdict"] and other["data_gain"] == adv["data_gain"]


def test_current_best_is_kept_when_nothing_beats_it():
    adv = advise(
        _planted(0.001, 0.5, 0.05), candidates=_cands(current_lr=0.01), budget=1, analyze_fn=_fake_analyze
    )
    assert adv["tuning_gain"]["estimate"] == 0.0 and set(adv["tuning_gain"]["picks"]) == {"current"}


def test_summarise_runs_re_decides_stored_runs():
    adv = advise(_planted(0.05, 0.5, 0.02), candidates=_cands(), budget=1, analyze_fn=_fake_analyze)
    runs = [SplitRun(**r) for r in adv["runs"]]
    again = summarise_runs(runs, "current", ["current", "alt", "other"], "alt", [0.125, 0.25, 0.5, 0.75])
    assert again["verdict"] == adv["verdict"] and again["data_gain"] == adv["data_gain"]
    diff = summarise_runs(
        runs, "current", ["current", "alt", "other"], None, [0.125, 0.25, 0.5, 0.75], compare="difference"
    )
    assert diff["decision"]["compare"] == "difference" and "data − tuning" in diff["reason"]


def test_task_without_resplit_gets_spectral_only_advice_with_a_message():
    @task(supports_data_fraction=True)
    def train(params, reporter):
        model = _Toy()
        reporter.report(1, model, 1.0)

    adv = advise(train, candidates=_cands()[:2], budget=1, analyze_fn=_fake_analyze)
    assert adv["method"] == "spectral only"
    assert "does not declare supports_resplit=True" in adv["note"] and adv["reason"].startswith(
        "spectral only"
    )
    assert "spectral only" in format_advice(adv)
    with pytest.raises(ValueError, match="supports_resplit"):
        advise(train, candidates=_cands()[:2], budget=1, analyze_fn=_fake_analyze, method="crossfit")


def test_task_that_forgets_unseen_loss_gets_a_clear_error():
    @task(supports_data_fraction=True, supports_resplit=True)
    def train(params, reporter):
        reporter.report(1, _Toy(), 1.0)
        return {"heldout": 0.5}

    with pytest.raises(ValueError, match="returned no 'unseen_loss'"):
        advise(train, candidates=_cands(), budget=1, analyze_fn=_fake_analyze)


def test_crossfit_validates_arguments():
    train = _planted(0.1, 0.5, 0.0)
    with pytest.raises(ValueError, match="at least 3 distinct values in \\(0, 1\\)"):
        advise_crossfit(train, _cands(), budget=1, curve_fractions=[0.5, 1.0, 0.25])
    with pytest.raises(ValueError, match="splits must be an integer of at least 2"):
        advise_crossfit(train, _cands(), budget=1, splits=1)
    with pytest.raises(ValueError, match="Unknown crossfit option"):
        advise(train, candidates=_cands(), budget=1, crossfit={"split": 3})
    with pytest.raises(ValueError, match="Split.fraction must be in"):
        Split(0, 1.0)
    with pytest.raises(TypeError, match="split must be None or"):
        Params(split=0.5)


def test_save_advice_and_plot_for_the_crossfit_advice(tmp_path):
    from wwtune.report import plot_advice

    adv = advise(_planted(0.1, 0.5, 0.02), candidates=_cands(), budget=1, analyze_fn=_fake_analyze)
    paths = save_advice(adv, tmp_path)
    assert json.loads(paths["json"].read_text())["verdict"] == adv["verdict"]
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(plot_advice(adv).axes) >= 3
    text = format_advice(adv)
    assert "2× data" in text and "more tuning" in text and "training runs" in text
    assert "2× data" in adv["summary"] and "spectral witness" in adv["summary"]  # the report's paragraph


def test_split_indices_disjoint_nested_and_seeded():
    tr, un = split_indices(100, Split(3, 0.75))
    assert len(tr) == 75 and len(un) == 25 and not set(tr) & set(un) and set(tr) | set(un) == set(range(100))
    small, _ = split_indices(100, Split(3, 0.25))
    assert set(small) <= set(tr)  # fractions of one seed nest
    assert set(split_indices(100, Split(4, 0.75))[0]) != set(tr)
    assert len(split_indices(3, Split(0, 0.01))[0]) == 1 and len(split_indices(3, Split(0, 0.99))[1]) == 1


@pytest.mark.parametrize("module", ["teacher_student", "digits_mlp", "digits_cnn", "char_lm"])
def test_bundled_tasks_honour_the_split(module):
    import importlib

    from wwtune.objective import NullReporter

    fn = importlib.import_module(f"wwtune.objectives.{module}").train
    assert fn.supports_resplit
    fixed = {
        "teacher_student": {"n_train": 200, "n_heldout": 50, "student_width": 16},
        "digits_mlp": {"hidden": 16},
        "digits_cnn": {"channels": 4},
        "char_lm": {"d_model": 16, "n_heads": 2, "n_layers": 1, "steps_per_epoch": 2, "eval_chars": 512},
    }[module]
    plain = fn(Params(fixed, budget=1, data_fraction=0.5), NullReporter())
    split = fn(Params(fixed, budget=1, data_fraction=0.5, split=Split(1, 0.5)), NullReporter())
    assert UNSEEN_LOSS not in plain and 0.0 <= split[UNSEEN_LOSS] < 10.0
    assert split["n_train"] < plain["n_train"]
    assert split["n_train"] == pytest.approx(plain["n_train"] / 2, rel=0.2)
