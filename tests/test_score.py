import json
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wwtune.score import Score, layers_record

alphas = st.floats(min_value=1.01, max_value=12.0, allow_nan=False)


def table(alpha, num_evals=None, status=None, **extra):
    n = len(alpha)
    data = {
        "name": [f"l{i}" for i in range(n)],
        "alpha": list(alpha),
        "num_evals": list(num_evals if num_evals is not None else [64] * n),
        "status": list(status if status is not None else ["success"] * n),
    }
    data.update(extra)
    return pd.DataFrame(data)


def test_example_band_distance_is_mean_absolute_distance_to_two():
    result = Score(band=(2.0, 2.0), tie_break=0.0)(table([2.5, 1.5, 2.0]))
    assert result.value == pytest.approx((0.5 + 0.5 + 0.0) / 3)
    assert (result.n_layers, result.n_eligible, result.n_failed) == (3, 3, 0)


@given(a=alphas, lo=st.floats(1.5, 4.0), width=st.floats(0.0, 2.0))
def test_band_distance_is_zero_only_inside_band_without_tie_break(a, lo, width):
    hi = lo + width
    value = Score(band=(lo, hi), tie_break=0.0)(table([a])).value
    expected = max(lo - a, 0.0, a - hi)
    assert value == pytest.approx(expected, abs=1e-12)


@given(a=alphas, b=alphas, lo=st.floats(1.5, 4.0), width=st.floats(0.0, 2.0), tb=st.floats(1e-4, 0.1))
def test_term_is_strictly_increasing_in_distance_to_centre(a, b, lo, width, tb):
    """The tie-break orders every pair of α by closeness to the band centre, inside and outside."""
    hi = lo + width
    c = 0.5 * (lo + hi)
    score = Score(band=(lo, hi), tie_break=tb)
    va, vb = score(table([a])).value, score(table([b])).value
    if abs(abs(a - c) - abs(b - c)) > 1e-9:
        assert (va < vb) == (abs(a - c) < abs(b - c))


def test_tie_break_separates_points_inside_band():
    score = Score(band=(3.0, 4.0))
    inside_centre, inside_edge = score(table([3.5])).value, score(table([3.9])).value
    outside = score(table([4.2])).value
    assert 0 == inside_centre < inside_edge < outside


@given(a=st.lists(alphas, min_size=1, max_size=6), n=st.lists(st.integers(50, 5000), min_size=6, max_size=6))
def test_num_evals_weights_give_weighted_mean(a, n):
    n = n[: len(a)]
    s = Score(kind="mean_alpha", weights="num_evals")
    assert s(table(a, n)).value == pytest.approx(float(np.average(a, weights=n)))
    assert Score(kind="mean_alpha")(table(a, n)).value == pytest.approx(float(np.mean(a)))


@given(a=st.lists(alphas, min_size=1, max_size=5), small=st.lists(alphas, min_size=1, max_size=3))
def test_ineligible_layers_do_not_change_the_score(a, small):
    s = Score(kind="mean_alpha", min_evals=50)
    full = table(a + small, [64] * len(a) + [49] * len(small))
    result = s(full)
    assert result.value == pytest.approx(float(np.mean(a)))
    assert result.n_eligible == len(a)
    record = layers_record(full, s, step=3)
    assert record["eligible"] == [True] * len(a) + [False] * len(small)


@pytest.mark.parametrize(
    "bad_alpha,status", [(-1.0, "failed"), (1.7, "failed"), (float("nan"), "success"), (0.9, "success")]
)
def test_failed_fit_is_penalised_not_read_as_small_alpha(bad_alpha, status):
    s = Score(band=(2.0, 2.0), failed_penalty=4.0, tie_break=0.0)
    result = s(table([2.0, bad_alpha], status=["success", status]))
    assert result.n_failed == 1
    assert result.value == pytest.approx(2.0)  # (0 + 4) / 2
    mean = Score(kind="mean_alpha", failed_penalty=8.0)(table([2.0, bad_alpha], status=["success", status]))
    assert mean.value == pytest.approx(5.0)  # a failed fit can never lower a mean-α score


def test_failed_fit_scores_worse_than_any_plausible_alpha():
    s = Score()
    failed = s(table([-1.0], status=["failed"])).value
    for a in np.linspace(1.05, 5.9, 50):
        assert s(table([a])).value < failed


def test_mean_alpha_weighted_uses_alpha_hat_column():
    layers = table([2.0, 3.0], alpha_weighted=[1.0, 2.0])
    assert Score(kind="mean_alpha_weighted")(layers).value == pytest.approx(1.5)


def test_no_eligible_layer_is_unscorable_with_reason():
    result = Score(min_evals=50)(table([2.0, 2.1], [10, 32]))
    assert result.value is None
    assert "min_evals=50" in result.reason and "[10, 32]" in result.reason


def test_heldout_kind_and_direction():
    s = Score(kind="heldout", heldout_direction="maximize")
    assert s.direction == "maximize"
    assert s(table([2.0]), heldout=0.93).value == 0.93
    assert s(table([2.0])).value is None and "heldout" in s(table([2.0])).reason
    assert Score().direction == "minimize"


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"kind": "smallest_alpha"}, "Score kind must be one of"),
        ({"band": (4.0, 3.0)}, "lower edge cannot exceed"),
        ({"band": (2.0,)}, "two finite numbers"),
        ({"min_evals": 0}, "min_evals must be a positive integer but got 0"),
        ({"weights": "size"}, r"weights must be one of \['uniform', 'num_evals'\] but got 'size'"),
        ({"failed_penalty": -1.0}, "failed_penalty cannot be negative"),
        ({"tie_break": -0.1}, "tie_break cannot be negative"),
    ],
)
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Score(**kwargs)


def test_from_config_rejects_unknown_keys():
    with pytest.raises(ValueError, match="min_eval"):
        Score.from_config({"kind": "band_distance", "min_eval": 10})
    assert Score.from_config({"kind": "band_distance", "band": [3, 4]}).band == (3.0, 4.0)


def test_layers_record_is_json_serialisable_and_columnar():
    layers = table(
        [2.0, -1.0],
        [64, 10],
        ["success", "failed"],
        warning=["", "failed"],
        lambda_max=[np.float64(3.0), float("inf")],
        log_norm=[0.1, 0.2],
        rank_loss=[np.int64(0), 1],
    )
    record = layers_record(layers, Score(), step=5)
    text = json.dumps(record, allow_nan=False)
    back = json.loads(text)
    assert back["step"] == 5 and back["name"] == ["l0", "l1"]
    assert back["eligible"] == [True, False]
    assert back["lambda_max"] == [3.0, None]
    assert back["num_traps"] is None
    columns = ("alpha", "num_evals", "warning", "status", "log_norm", "rank_loss")
    assert all(len(back[k]) == 2 for k in columns)


def test_describe_states_eligibility_rule():
    assert "num_evals >= 50" in Score().describe()
    assert math.isclose(Score(band=[3, 4]).band[1], 4.0)


@settings(max_examples=30)
@given(a=st.lists(alphas, min_size=2, max_size=6))
def test_permuting_layers_does_not_change_score(a):
    s = Score(band=(3.0, 4.0))
    assert s(table(a)).value == pytest.approx(s(table(a[::-1])).value)
