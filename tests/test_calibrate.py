"""Calibrate once (issue 21 point 5): every data-free selector ranked on the held-out metric, and the
exact override that would have picked best, in the summary and in mode=report."""

from __future__ import annotations

import logging

import optuna
from optuna.trial import TrialState, create_trial

from wwtune.calibrate import format_calibration, rank_selectors
from wwtune.outcome import calibration_text, store_trust
from wwtune.record import STUDY_BAND, STUDY_CONFIG

optuna.logging.set_verbosity(optuna.logging.WARNING)


def trial(number: int, loss: float, alphas: list[float], heldout: float):
    names = [f"l{i}" for i in range(len(alphas))]
    layers = {"step": 2, "name": names, "alpha": alphas, "num_evals": [64] * len(alphas),
              "status": ["success"] * len(alphas), "eligible": [True] * len(alphas)}  # fmt: skip
    t = create_trial(
        state=TrialState.COMPLETE,
        value=loss,
        user_attrs={"wwtune.losses": [[1, 2.0], [2, loss]], "wwtune.layers": layers,
                    "wwtune.heldout": heldout, "wwtune.score": abs(alphas[0] - 2.0)},
    )  # fmt: skip
    t.number = number
    return t


# lowest loss (#0) memorised: α far below 2, the worst held-out; #1 on the band, the best held-out;
# #2 a high loss, α above the band
TRIALS = [trial(0, 0.01, [1.2, 1.3], 0.50), trial(1, 0.02, [2.0, 2.0], 0.90), trial(2, 0.5, [3.0, 3.5], 0.7)]


def test_selectors_are_ranked_by_held_out_regret_with_known_answers():
    rows = rank_selectors(TRIALS, "maximize", (2.0, 2.0))
    by = {r["override"]: r for r in rows}
    assert by["pick=train_loss"]["trial"] == 0 and by["pick=train_loss"]["regret"] == 0.4
    assert by["score=band pick=value"]["trial"] == 1 and by["score=band pick=value"]["regret"] == 0.0
    assert [r["regret"] for r in rows] == sorted(r["regret"] for r in rows) and rows[0]["regret"] == 0.0
    assert set(by) == {"pick=train_loss", "score=band pick=value", "score=fit_band pick=value",
                       "pick=default", "score=pareto"}  # fmt: skip
    text = format_calibration(rows, 3)
    assert f"Calibration: on this task `{rows[0]['override']}` would have picked best" in text
    assert rank_selectors(TRIALS[:1], "maximize") == []  # one trial: nothing to rank


def test_the_summary_and_a_stored_study_print_the_same_calibration_line(caplog):
    study = optuna.create_study()
    study.set_user_attr(STUDY_CONFIG, {"score": {"min_evals_counted": 50}})
    study.set_user_attr(STUDY_BAND, [2.0, 2.0])
    for t in TRIALS:
        study.add_trial(t)
    with caplog.at_level(logging.INFO, logger="wwtune"):
        report = store_trust(study, "maximize")
    assert report["selectors"][0]["regret"] == 0.0
    assert not [r for r in caplog.records if r.levelno >= logging.INFO]  # the trust line is printed once
    line = calibration_text(study)
    assert "would have picked best" in line
    del report["selectors"]  # a study stored before the ranking existed: ranked again, same line
    study.set_user_attr("wwtune.trust", report)
    assert calibration_text(study) == line
