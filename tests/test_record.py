"""The stored record (wwtune.record): one best-trial rule, one failed-fit rule, one JSON conversion."""

import json
import math

import numpy as np
import optuna
import pandas as pd
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from wwtune import ranking, record
from wwtune.cli import compose
from wwtune.factories import make_score
from wwtune.outcome import summary_text, write_best_params
from wwtune.report import render_report
from wwtune.search_space import SearchSpace

optuna.logging.set_verbosity(optuna.logging.WARNING)

LR = {"lr": optuna.distributions.FloatDistribution(1e-3, 1.0, log=True)}


def _study_whose_optuna_best_is_infeasible() -> optuna.Study:
    """Trial 0 has the lowest score but was kept as infeasible (``wwtune.constraint`` > 0, no Optuna
    constraint: a study from Optuna < 5 or from another tool); the best feasible trial is #2."""
    study = optuna.create_study(direction="minimize", study_name="s")
    for value, violated, lr in ((0.05, True, 0.5), (0.3, False, 0.1), (0.2, False, 0.03)):
        study.add_trial(
            optuna.trial.create_trial(
                params={"lr": lr},
                distributions=LR,
                value=value,
                user_attrs={record.CONSTRAINT: [1.0 if violated else 0.0], record.HELDOUT: 0.9},
            )
        )
    return study


def test_report_summary_and_best_params_name_the_same_best_feasible_trial(tmp_path):
    study = _study_whose_optuna_best_is_infeasible()
    assert study.best_trial.number == 0  # Optuna's own rule ignores wwtune's feasibility
    assert ranking.best_trial(study).number == 2
    cfg = compose(["study=quickstart", f"study.studies_dir={tmp_path}", "study.name=s"])
    assert "Returned trial #2 (the pick): score 0.2" in summary_text(study, cfg)
    path = write_best_params(
        study, SearchSpace.from_config(cfg["search_space"]), cfg, make_score(cfg["score"], cfg["objective"])
    )
    assert yaml.safe_load(path.read_text())["trial"] == 2
    page = render_report(study)
    assert "Best parameters (trial #2)" in page and "#0</td>" not in page.split('id="params"')[0]


def test_best_trial_breaks_ties_by_number_and_follows_the_direction():
    trials = [
        optuna.trial.create_trial(params={"lr": 0.1}, distributions=LR, value=v) for v in (0.4, 0.2, 0.2, 0.9)
    ]
    for i, t in enumerate(trials):
        t.number = i
    assert ranking.best_trial(trials).number == 1
    assert ranking.best_trial(trials, "maximize").number == 3
    nonfinite = optuna.trial.create_trial(params={"lr": 0.1}, distributions=LR, value=-math.inf)
    nonfinite.number = 4
    assert ranking.best_trial([*trials, nonfinite]).number == 1  # -inf is no score
    assert ranking.best_trial([]) is None


@given(
    st.lists(
        st.tuples(
            st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.none()),
            st.sampled_from(["success", "failed", None]),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_failed_fit_rule_is_one_rule_for_tables_and_rows(rows):
    df = pd.DataFrame({"alpha": [a for a, _ in rows], "status": [s for _, s in rows]})
    mask = record.failed_fits(df)
    for (alpha, status), failed in zip(rows, mask, strict=True):
        expected = status == "failed" or alpha is None or not math.isfinite(alpha) or alpha <= 1.0
        assert failed == expected == record.fit_failed(alpha, status)
    alphas = record.alpha_values(df)
    assert np.array_equal(np.isnan(alphas), mask)


def test_json_safe_makes_any_record_storable():
    value = {
        1: np.float32(2.5),
        "nan": float("nan"),
        "inf": np.float64(math.inf),
        "t": (np.int64(3), np.bool_(True)),
        "obj": object,
    }
    safe = record.json_safe(value)
    assert safe == {"1": 2.5, "nan": None, "inf": None, "t": [3, True], "obj": str(object)}
    json.dumps(safe, allow_nan=False)


def test_atomic_write_leaves_only_the_finished_file(tmp_path):
    out = record.atomic_write_text(tmp_path / "sub" / "a.txt", "one")
    record.atomic_write_text(out, "two")
    assert out.read_text() == "two" and sorted(p.name for p in out.parent.iterdir()) == ["a.txt"]

    def broken(tmp):
        tmp.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        record.atomic_write(out, broken)
    assert out.read_text() == "two" and sorted(p.name for p in out.parent.iterdir()) == ["a.txt"]


def test_studies_dir_is_resolved_once():
    assert record.studies_dir({"name": "a"}) == "studies"
    study = {"name": "a", "studies_dir": "/x"}
    assert record.report_path(study) == record.study_folder(study) / "report.html"
    assert str(record.best_params_path(study)) == "/x/a/best_params.yaml"
    # the 0.1 form (the whole config) still finds the folder, with a DeprecationWarning
    with pytest.warns(DeprecationWarning, match=r"pass the config's study section \(config.study\)"):
        assert str(record.best_params_path({"study": study})) == "/x/a/best_params.yaml"
    assert record.spectra_path("/x/a", 3).as_posix() == "/x/a/spectra/trial3.npz"
    with pytest.raises(ValueError, match="plain folder name"):
        record.study_dir("/x", "../up")
