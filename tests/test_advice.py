"""Tests of the data-vs-tuning advisor (wwtune.advice): statistics, rule, wiring, outputs."""

from __future__ import annotations

import json
import math

import numpy as np
import optuna
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from wwtune.advice import (
    Candidate,
    DecisionRule,
    Trend,
    advise,
    check_task,
    decide,
    fit_trend,
    format_advice,
    pick_candidates,
    plot_advice,
    save_advice,
    tuning_headroom,
)
from wwtune.objective import Params, Reporter, task

torch.set_num_threads(1)
optuna.logging.set_verbosity(optuna.logging.WARNING)


# ------------------------------------------------------------------------------------------------ trends
@settings(max_examples=60, deadline=None)
@given(a=st.floats(-5, 5), b=st.floats(-3, 3), seeds=st.integers(2, 4))
def test_fit_trend_recovers_an_exact_line(a, b, seeds):
    x = np.repeat(np.log2([0.125, 0.25, 0.5, 1.0]), seeds)
    tr = fit_trend(x, a + b * x)
    assert tr.slope == pytest.approx(b, abs=1e-9)
    assert tr.intercept == pytest.approx(a, abs=1e-9)
    assert tr.at_2x == pytest.approx(a + b, abs=1e-9)
    assert tr.se_slope == pytest.approx(0.0, abs=1e-6)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), b=st.floats(-1, 1), sigma=st.floats(0.01, 0.5))
def test_fit_trend_standard_errors_match_numpy(seed, b, sigma):
    rng = np.random.default_rng(seed)
    x = np.repeat(np.log2([0.125, 0.25, 0.5, 1.0]), 3)
    y = 1.0 + b * x + rng.normal(0, sigma, x.size)
    tr = fit_trend(x, y)
    coef, cov = np.polyfit(x, y, 1, cov=True)  # numpy scales cov by residual variance / (n - 2)
    assert tr.slope == pytest.approx(coef[0], rel=1e-9, abs=1e-12)
    assert tr.se_slope == pytest.approx(math.sqrt(cov[0, 0]), rel=1e-6)
    assert tr.se_intercept == pytest.approx(math.sqrt(cov[1, 1]), rel=1e-6)


def test_fit_trend_slope_se_covers_the_truth_about_95_percent():
    rng = np.random.default_rng(0)
    x = np.repeat(np.log2([0.125, 0.25, 0.5, 1.0]), 4)
    hits = 0
    for _ in range(400):
        tr = fit_trend(x, 0.5 * x + rng.normal(0, 0.2, x.size))
        hits += abs(tr.slope - 0.5) <= 2.145 * tr.se_slope  # t(0.975, 14 dof)
    assert 0.90 <= hits / 400 <= 0.99


def test_fit_trend_rejects_bad_input():
    with pytest.raises(ValueError, match="2 distinct x"):
        fit_trend([0.0, 0.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="finite"):
        fit_trend([0.0, 1.0], [1.0, float("nan")])
    with pytest.raises(ValueError, match="equal length"):
        fit_trend([0.0, 1.0], [1.0])
    tr = fit_trend([-1.0, 0.0], [2.0, 1.0])  # no residual degrees of freedom
    assert tr.slope == -1.0 and math.isinf(tr.se_slope)


# ------------------------------------------------------------------------------------------------ rule
def _trend(slope: float, intercept: float, se: float) -> Trend:
    return Trend(slope, intercept, se, se, intercept + slope, se, 8, 4, se)


@pytest.mark.parametrize(
    ("alpha_slope", "se_alpha", "spread_slope", "se_spread", "tune_gap", "expected"),
    [
        (-0.5, 0.05, 0.0, 0.01, 0.0, "more data"),  # mean α moves strongly with data
        (0.5, 0.05, 0.0, 0.01, 3.0, "more data"),  # either sign of the α change counts
        (0.05, 0.02, -0.2, 0.05, 3.0, "more data"),  # the cross-layer spread narrows clearly
        (0.05, 0.02, 0.2, 0.05, 1.0, "more tuning"),  # a widening spread is no data signal
        (0.05, 0.02, -0.01, 0.01, 1.0, "more tuning"),  # data-saturated, clear tuning gap
        (0.05, 0.02, -0.01, 0.01, 0.01, "inconclusive"),  # saturated, no tuning gap
        (0.5, 0.3, 0.0, 0.01, 1.0, "inconclusive"),  # large but noisy α change
        (0.05, 0.02, -0.2, 0.2, 1.0, "inconclusive"),  # large but noisy narrowing
        (0.01, 0.47, 0.1, 0.44, 3.0, "inconclusive"),  # small but noisy: saturation is not shown
        (0.2, 0.06, 0.0, 0.01, 3.0, "inconclusive"),  # below the threshold, but not at +2 SE
    ],
)
def test_decide_known_cases(alpha_slope, se_alpha, spread_slope, se_spread, tune_gap, expected):
    se_tune = 0.1
    out = decide(
        _trend(alpha_slope, 2.5, se_alpha),
        _trend(spread_slope, 0.3, se_spread),
        _trend(0.0, 0.5, se_tune / math.sqrt(2)),
        _trend(0.0, 0.5 + tune_gap, se_tune / math.sqrt(2)),
        DecisionRule(),
    )
    assert out["verdict"] == expected, out["reason"]
    assert out["alpha_slope"] == alpha_slope and out["spread_slope"] == spread_slope
    assert out["tune_gain"] == pytest.approx(tune_gap) and out["se_tune"] == pytest.approx(se_tune)
    assert f"{alpha_slope:+.3f}" in out["reason"] and f"{spread_slope:+.3f}" in out["reason"]


def test_decide_without_trends_is_inconclusive():
    out = decide(None, None, None, _trend(0, 1, 0.1))
    assert out["verdict"] == "inconclusive" and "best" in out["reason"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"data_threshold": 0.0}, "data_threshold must be positive"),
        ({"spread_threshold": float("inf")}, "spread_threshold must be positive and finite but got inf"),
        ({"z": -1.0}, "z must be positive"),
        ({"min_effect": -1.0}, "min_effect cannot be negative but got -1.0"),
    ],
)
def test_rule_validates_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DecisionRule(**kwargs)


# ------------------------------------------------------------------------------------------------ study side
def _study(values: list[float], params: list[dict] | None = None) -> optuna.Study:
    study = optuna.create_study(direction="minimize")
    dists = {
        "lr": optuna.distributions.FloatDistribution(1e-3, 1.0, log=True),
        "wd": optuna.distributions.FloatDistribution(0.0, 1.0),
    }
    for i, v in enumerate(values):
        p = (params or [{}])[i] if params else {"lr": 10 ** (-3 + 3 * i / max(1, len(values))), "wd": i / 100}
        dist = {k: dists[k] for k in p}
        study.add_trial(optuna.trial.create_trial(params=p, distributions=dist, value=v))
    return study


def test_pick_candidates_best_and_median():
    study = _study([0.9, 0.1, 0.5, 0.7, 0.3])
    best, typical = pick_candidates(study)
    assert best.study_score == 0.1 and best.trial_number == 1
    assert typical.study_score == 0.5 and typical.trial_number == 2
    assert set(best.values) == {"lr", "wd"}


def test_pick_candidates_needs_two_trials_and_minimize():
    with pytest.raises(ValueError, match="at least 2 complete trials"):
        pick_candidates(_study([0.3]))
    with pytest.raises(ValueError, match="minimise"):
        pick_candidates(optuna.create_study(direction="maximize"))


def test_tuning_headroom_numbers_and_guarded_importances():
    study = _study([0.9, 0.8, 0.7, 0.75, 0.2, 0.6])
    h = tuning_headroom(study)
    assert h["n_complete"] == 6 and h["best"] == 0.2
    assert h["median"] == pytest.approx(np.median([0.9, 0.8, 0.7, 0.75, 0.2, 0.6]))
    assert h["best_vs_median"] == pytest.approx(h["median"] - 0.2)
    assert h["still_improving"] is True and h["recent_gain"] == pytest.approx(0.7 - 0.2)  # last 2 trials
    assert h["importances"] is None and "at least 10" in h["importances_note"]
    big = tuning_headroom(_study(list(np.linspace(1, 0.1, 12))))
    assert set(big["importances"]) == {"lr", "wd"}
    assert sum(big["importances"].values()) == pytest.approx(1.0)
    flat = tuning_headroom(_study([0.1, 0.5, 0.6, 0.7]))
    assert flat["still_improving"] is False and flat["recent_gain"] == 0.0
    with pytest.raises(ValueError, match="recent must be in"):
        tuning_headroom(study, recent=1.5)


# ------------------------------------------------------------------------------------------------ wiring
class _Toy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(4, 4)


def _fake_analyze(model: nn.Module) -> pd.DataFrame:
    """α per layer is read from attributes the toy task set: a known answer for every run."""
    a = model.planted_alpha
    return pd.DataFrame(
        {
            "name": ["l1", "l2", "small"],
            "alpha": [a - 0.1, a + 0.1, 9.0],
            "num_evals": [64, 64, 4],
            "status": ["success"] * 3,
        }
    )


def _toy_task(data_slope: float, lr_effect: float, heldout_offset: float = 0.0):
    """mean α = 2 + lr_effect·|log10(lr/0.1)| − data_slope·log2(fraction) + seed jitter."""

    @task(supports_data_fraction=True)
    def train(params: Params, reporter: Reporter) -> dict:
        model = _Toy()
        jitter = 0.01 * ((params.seed * 7919) % 5 - 2)
        model.planted_alpha = (
            2.0
            + lr_effect * abs(math.log10(params["lr"] / 0.1))
            - data_slope * math.log2(params.data_fraction)
            + jitter
        )
        model.seen_budget = params.budget
        reporter.report(params.budget, model, 1.0)
        train.calls.append((params.data_fraction, params.budget, params.seed))
        return {"heldout": heldout_offset + params.data_fraction}

    train.calls = []
    return train


def _toy_candidates() -> tuple[Candidate, Candidate]:
    return Candidate("best", {"lr": 0.1}), Candidate("typical", {"lr": 0.001})


@pytest.mark.parametrize(
    ("data_slope", "lr_effect", "expected"),
    [
        (0.6, 0.05, "more data"),
        (0.0, 0.8, "more tuning"),
        (0.0, 0.0, "inconclusive"),
    ],
)
def test_advise_known_verdicts_on_a_planted_task(data_slope, lr_effect, expected):
    train = _toy_task(data_slope, lr_effect)
    adv = advise(train, candidates=_toy_candidates(), budget=3, analyze_fn=_fake_analyze)
    assert adv["verdict"] == expected, adv["reason"]
    assert adv["decision"]["alpha_slope"] == pytest.approx(-data_slope, abs=0.02)
    assert adv["decision"]["spread_slope"] == pytest.approx(0.0, abs=1e-9)
    assert adv["trends"]["best"]["spread"]["intercept"] == pytest.approx(0.1)  # "small" layer ineligible
    assert len(adv["runs"]) == 16 and adv["n_failed_runs"] == 0
    json.dumps(adv, allow_nan=False)


def test_advise_gives_every_fraction_the_same_steps_and_scales_available_data():
    train = _toy_task(0.6, 0.0)
    advise(train, candidates=_toy_candidates(), budget=3, analyze_fn=_fake_analyze, available_fraction=0.5)
    by_fraction = {f: b for f, b, _ in train.calls}
    assert by_fraction == {0.0625: 24, 0.125: 12, 0.25: 6, 0.5: 3}
    train.calls.clear()
    advise(train, candidates=_toy_candidates(), budget=3, analyze_fn=_fake_analyze, budget_per_data=False)
    assert {b for _, b, _ in train.calls} == {3}


def test_advise_never_reads_heldout():
    a = advise(_toy_task(0.6, 0.0, 0.0), candidates=_toy_candidates(), budget=2, analyze_fn=_fake_analyze)
    b = advise(_toy_task(0.6, 0.0, 100.0), candidates=_toy_candidates(), budget=2, analyze_fn=_fake_analyze)
    assert a["decision"] == b["decision"] and a["verdict"] == b["verdict"]
    assert {r["heldout"] for r in b["runs"]} != {r["heldout"] for r in a["runs"]}  # recorded, not used


def test_task_without_the_data_fraction_knob_gets_a_clear_message():
    def train(params, reporter):
        return None

    with pytest.raises(ValueError, match="supports_data_fraction=True"):
        check_task(train)
    with pytest.raises(ValueError, match="does not declare it"):
        advise(train, candidates=_toy_candidates(), budget=1)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"fractions": [1.0]}, "at least 2 distinct values"),
        ({"fractions": [0.5, 2.0]}, r"in \(0, 1\]"),
        ({"seeds": [0]}, "at least 2 distinct seeds"),
        ({"available_fraction": 0.0}, "available_fraction"),
        ({"budget": 0}, "budget must be a positive integer"),
    ],
)
def test_advise_validates_arguments(kwargs, match):
    args = {"candidates": _toy_candidates(), "budget": 1, "analyze_fn": _fake_analyze, **kwargs}
    with pytest.raises(ValueError, match=match):
        advise(_toy_task(0.1, 0.1), **args)


def test_diverged_runs_are_recorded_and_left_out():
    @task(supports_data_fraction=True)
    def train(params, reporter):
        model = _Toy()
        model.planted_alpha = 2.0 - 0.6 * math.log2(params.data_fraction)
        reporter.report(1, model, float("nan") if params.data_fraction == 0.25 and params.seed == 0 else 1.0)

    adv = advise(train, candidates=_toy_candidates(), budget=1, analyze_fn=_fake_analyze)
    failed = [r for r in adv["runs"] if r["status"] == "failed"]
    assert len(failed) == 2 and all("diverged" in r["reason"] for r in failed)
    assert adv["trends"]["best"]["score"]["n"] == 7
    assert adv["verdict"] == "more data"


def test_save_advice_writes_json_png_and_user_attr(tmp_path):
    study = _study([0.5, 0.2, 0.9])
    train = _toy_task(0.6, 0.05)
    adv = advise(train, study, budget=1, analyze_fn=_fake_analyze)
    assert adv["study"]["n_complete"] == 3 and adv["candidates"]["best"]["trial_number"] == 1
    paths = save_advice(adv, tmp_path / "s", study=study)
    loaded = json.loads(paths["json"].read_text())
    assert loaded["verdict"] == adv["verdict"] == study.user_attrs["wwtune.advice"]["verdict"]
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and paths["png"].stat().st_size > 10_000
    text = format_advice(adv)
    assert adv["verdict"].upper() in text and "per doubling of the data" in text and "importances" in text


def _cli_cfg(tmp_path, **advise_block):
    return {
        "study": {"name": "adv", "studies_dir": str(tmp_path)},
        "storage": {"kind": "journal"},
        "objective": {
            "task": "wwtune.objectives.teacher_student:train",
            "budget": 2,
            "data_fraction": 1.0,
            "fixed": {"n_train": 256, "n_heldout": 200, "student_width": 64},
            "heldout": {"name": "error", "direction": "minimize"},
        },
        "search_space": {"params": {"lr": {"type": "float", "low": 1e-3, "high": 0.5, "log": True}}},
        "score": {"kind": "band_distance", "band": [2, 2], "min_evals_counted": 50},
        "analysis": {"min_evals_analysed": 8},
        "advise": advise_block,
    }


def test_run_advice_end_to_end_on_a_bundled_task(tmp_path):
    from wwtune.advice import VERDICTS, run_advice

    study = _study([0.4, 0.2, 0.6], [{"lr": 0.05}, {"lr": 0.1}, {"lr": 0.002}])
    adv = run_advice(_cli_cfg(tmp_path, fractions=[0.5, 1.0], seeds=[0, 1]), study=study)
    assert adv["verdict"] in VERDICTS
    assert (tmp_path / "adv" / "advice.json").exists() and (tmp_path / "adv" / "advice.png").exists()
    assert study.user_attrs["wwtune.advice"]["verdict"] == adv["verdict"]
    assert adv["candidates"]["best"]["values"] == {"lr": 0.1}
    assert all(r["heldout"] is not None for r in adv["runs"])  # recorded for validation
    assert adv["method"] == "cross-fitted learning curve"  # the bundled tasks can re-split
    spectral = run_advice(_cli_cfg(tmp_path, method="spectral", fractions=[0.5, 1.0]), study=study)
    assert spectral["method"] == "spectral only" and spectral["verdict"] in VERDICTS
    with pytest.raises(ValueError, match="method must be one of"):
        run_advice(_cli_cfg(tmp_path, method="guess"), study=study)
    unknown = r"Unknown key\(s\) in 'advise': 'fraction' \(did you mean 'fractions'\?\)"
    with pytest.raises(ValueError, match=unknown):
        run_advice(_cli_cfg(tmp_path, fraction=[0.5]), study=study)
    with pytest.raises(ValueError, match=r"advise.seeds must hold at least 2 distinct seeds but got \[3, 3"):
        run_advice(_cli_cfg(tmp_path, seeds=[3, 3]), study=study)


def test_advice_dict_feeds_the_report_plot():
    adv = advise(_toy_task(0.6, 0.05), candidates=_toy_candidates(), budget=1, analyze_fn=_fake_analyze)
    assert adv["data_fraction"] == [0.125, 0.25, 0.5, 1.0] and len(adv["score"]) == 4
    fig = plot_advice(adv)
    assert len(fig.axes) == 3  # the advisor's dict gets its three panels: score, mean α, spread
    lines = {ln.get_gid(): ln for ax in fig.axes for ln in ax.lines if ln.get_gid()}
    for config in ("best", "typical"):
        for panel, attr in enumerate(("score", "mean_alpha", "spread")):
            trend = adv["trends"][config][attr]
            x, y = lines[f"trend_{config}_{attr}"].get_data()
            assert lines[f"trend_{config}_{attr}"].axes is fig.axes[panel]
            assert np.allclose(y, trend["intercept"] + trend["slope"] * np.asarray(x))
            assert x[0] == pytest.approx(math.log2(min(adv["settings"]["fractions"]))) and x[-1] == 0.0
    # the same dict without the advisor's keys is drawn as one curve of its stored scores
    curve = {k: adv[k] for k in ("data_fraction", "score", "score_err", "tuning_headroom")}
    one = plot_advice(curve)
    line = [ln for ln in one.axes[0].lines if ln.get_gid() == "score_vs_data"][0]
    assert len(one.axes) == 1 and np.allclose(line.get_ydata(), adv["score"])


def test_infeasible_trials_are_never_candidates():
    study = _study([0.9, 0.5, 0.7])
    dist = {"lr": optuna.distributions.FloatDistribution(1e-3, 1.0, log=True)}
    study.add_trial(
        optuna.trial.create_trial(
            params={"lr": 0.5}, distributions=dist, value=0.01, user_attrs={"wwtune.constraint": [1.0]}
        )
    )
    best, typical = pick_candidates(study)
    assert best.study_score == 0.5 and typical.study_score == 0.7
    assert tuning_headroom(study)["n_complete"] == 3


def test_runs_with_non_finite_weights_fail_even_when_the_loss_is_finite():
    @task(supports_data_fraction=True)
    def train(params, reporter):
        model = _Toy()
        model.planted_alpha = 2.0
        if params.seed == 1:
            with torch.no_grad():
                model.fc1.weight[0, 0] = float("inf")
        reporter.report(1, model, 0.5)

    recs = advise(train, candidates=_toy_candidates(), budget=1, analyze_fn=_fake_analyze)["runs"]
    bad = [r for r in recs if r["status"] == "failed"]
    assert len(bad) == 8 and all(r["seed"] == 1 and "NaN/Inf" in r["reason"] for r in bad)


@pytest.mark.parametrize("kind", ["fit_band", "pareto", "train_loss"])
def test_run_advice_works_with_the_fit_scores(tmp_path, kind):
    """mode=advise on a study optimised by a fit score: candidates by the study's value (for pareto its
    band distance), the retraining runs compared by their α score."""
    from wwtune.advice import VERDICTS, run_advice

    directions = ["minimize", "minimize"] if kind == "pareto" else ["minimize"]
    study = optuna.create_study(directions=directions)
    dist = {"lr": optuna.distributions.FloatDistribution(1e-3, 0.5, log=True)}
    for lr, v in ((0.05, 0.4), (0.1, 0.2), (0.002, 0.6)):
        values = [1.0, v] if kind == "pareto" else [v]
        study.add_trial(optuna.trial.create_trial(params={"lr": lr}, distributions=dist, values=values))
    cfg = _cli_cfg(tmp_path, fractions=[0.5, 1.0], seeds=[0, 1])
    cfg["score"] = {"kind": kind, "band": None, "min_evals_counted": 50}
    adv = run_advice(cfg, study=study)
    assert adv["verdict"] in VERDICTS and adv["candidates"]["best"]["values"] == {"lr": 0.1}
    # every retraining run trained; the learning-curve runs also carry their α score (the spectral witness;
    # the tuning-gain "eval" runs are compared on the unseen part of the training data, not by α)
    assert adv["runs"] and all(r["status"] == "ok" for r in adv["runs"])
    assert all(r["score"] is not None for r in adv["runs"] if r["role"] == "curve")
