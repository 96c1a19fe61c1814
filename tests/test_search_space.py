import optuna
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from wwtune.search_space import SearchSpace, SearchSpaceError

optuna.logging.set_verbosity(optuna.logging.WARNING)


def dist(spec):
    return SearchSpace({"x": spec}).dimensions[0].distribution


@pytest.mark.parametrize(
    "text,expected",
    [
        ("tag(log, interval(1e-4, 1e-1))", FloatDistribution(1e-4, 1e-1, log=True)),
        ("interval(0, 0.5)", FloatDistribution(0.0, 0.5)),
        ("tag(int, interval(2, 10))", IntDistribution(2, 10)),
        ("tag(log, int, interval(2, 64))", IntDistribution(2, 64, log=True)),
        ("range(1, 9, 2)", IntDistribution(1, 9, step=2)),
        ("range(1, 10, 2)", IntDistribution(1, 9, step=2)),
        ("range(0.1, 0.5, 0.1)", FloatDistribution(0.1, 0.5, step=0.1)),
        ("choice(sgd, adam)", CategoricalDistribution(["sgd", "adam"])),
        ("choice(64, 128)", CategoricalDistribution([64, 128])),
        ("32,64", CategoricalDistribution([32, 64])),
    ],
)
def test_sweeper_strings_parse_with_hydra_grammar(text, expected):
    assert dist(text) == expected


def test_dict_form_matches_string_form():
    assert dist({"type": "float", "low": 1e-4, "high": 1e-1, "log": True}) == dist(
        "tag(log, interval(1e-4, 1e-1))"
    )
    assert dist({"type": "int", "low": 1, "high": 9, "step": 2}) == dist("range(1, 9, 2)")
    assert dist({"type": "categorical", "choices": ["sgd", "adam"]}) == dist("choice(sgd, adam)")


@settings(max_examples=40, deadline=None)
@given(low=st.floats(1e-6, 1.0), ratio=st.floats(1.0, 1e4), log=st.booleans(), seed=st.integers(0, 2**16))
def test_suggested_floats_stay_inside_bounds(low, ratio, log, seed):
    high = low * ratio
    space = SearchSpace({"lr": {"type": "float", "low": low, "high": high, "log": log}})
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    values, _ = space.suggest(study.ask())
    assert low <= values["lr"] <= high


@settings(max_examples=40, deadline=None)
@given(low=st.integers(-20, 20), span=st.integers(0, 30), step=st.integers(1, 7), seed=st.integers(0, 999))
def test_int_steps_land_on_the_grid(low, span, step, seed):
    space = SearchSpace({"n": f"range({low}, {low + span}, {step})"})
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    values, _ = space.suggest(study.ask())
    assert (values["n"] - low) % step == 0 and low <= values["n"] <= low + span
    last = low + span // step * step  # the distribution's high, on the grid
    if last == low:
        with pytest.raises(SearchSpaceError, match="empty"):
            space.grid()
    else:  # a sweep string's grid stops one step before high, as hydra-optuna-sweeper's
        assert space.grid()["n"] == list(range(low, last, step))
    as_dict = SearchSpace({"n": {"type": "int", "low": low, "high": low + span, "step": step}})
    assert as_dict.grid()["n"] == list(range(low, low + span + 1, step))  # the dict form keeps both ends


def test_conditional_parameter_only_when_condition_holds():
    space = SearchSpace(
        {
            "opt": "choice(sgd, adam)",
            "momentum": {"type": "float", "low": 0.5, "high": 0.99, "when": {"opt": "sgd"}},
            "beta2": {"type": "float", "low": 0.9, "high": 0.999, "when": {"opt": ["adam"]}},
        }
    )
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(30):
        trial = study.ask()
        values, _ = space.suggest(trial)
        seen.add(values["opt"])
        assert ("momentum" in values) == (values["opt"] == "sgd")
        assert ("beta2" in values) == (values["opt"] == "adam")
        assert set(trial.params) == set(values)
        study.tell(trial, 0.0)
    assert seen == {"sgd", "adam"}


def test_per_layer_settings_and_constants():
    space = SearchSpace(
        params={"lr": 0.1, "width": "64"},
        layers={
            "fc1": {"lr_mult": {"type": "float", "low": 0.5, "high": 2.0, "log": True}, "weight_decay": 0.0},
            "drop*": {"dropout": "interval(0, 0.5)"},
        },
    )
    assert space.names == ["fc1/lr_mult", "drop*/dropout"]
    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1)).ask()
    values, layers = space.suggest(trial)
    assert values == {"lr": 0.1, "width": 64}
    assert set(layers) == {"fc1", "drop*"} and layers["fc1"]["weight_decay"] == 0.0
    assert 0.5 <= layers["fc1"]["lr_mult"] <= 2.0 and 0 <= layers["drop*"]["dropout"] <= 0.5
    assert space.split(trial.params) == (values, layers)


def test_layer_condition_can_refer_to_global():
    space = SearchSpace(
        {"opt": "choice(sgd, adam)"},
        {"fc1": {"lr_mult": {"type": "float", "low": 0.5, "high": 2, "when": {"opt": "sgd"}}}},
    )
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    for _ in range(10):
        values, layers = space.suggest(study.ask())
        assert ("fc1" in layers) == (values["opt"] == "sgd")


@pytest.mark.parametrize(
    "params,layers,match",
    [
        (
            {"lr": {"type": "flaot", "low": 0, "high": 1}},
            {},
            r"type must be one of \['float', 'int', 'categorical'\]",
        ),
        ({"lr": {"type": "float", "low": 1, "high": 0}}, {}, "'low' cannot exceed 'high'"),
        ({"lr": {"type": "float", "low": 0, "high": 1, "log": True}}, {}, "log range needs low > 0"),
        ({"lr": {"type": "float", "low": 0, "hgh": 1}}, {}, r"unknown key\(s\) \['hgh'\]"),
        ({"n": {"type": "int", "low": 0.5, "high": 3}}, {}, "must be an integer"),
        ({"c": {"type": "categorical", "choices": []}}, {}, "non-empty list"),
        ({"m": {"type": "float", "low": 0, "high": 1, "when": {"opt": "sgd"}}}, {}, "refers to 'opt'"),
        ({"lr": "tag(lgo, interval(1e-3, 1))"}, {}, r"unknown tag\(s\) \['lgo'\]"),
        ({"lr": "interval(1e-3"}, {}, "cannot parse"),
        ({}, {"fc1": {"lr_multiplier": 2.0}}, "unknown per-layer setting 'lr_multiplier'"),
        (
            {"lr": {"type": "float", "low": 0.1, "high": 1, "log": True, "step": 0.1}},
            {},
            "cannot be combined",
        ),
    ],
)
def test_bad_entries_fail_with_named_message(params, layers, match):
    with pytest.raises(SearchSpaceError, match=match):
        SearchSpace(params, layers)


def test_from_config_rejects_unknown_sections():
    with pytest.raises(SearchSpaceError, match="layer"):
        SearchSpace.from_config({"params": {}, "layer": {}})


def test_grid_needs_discrete_dimensions():
    assert SearchSpace({"a": "choice(1, 2)", "b": "range(0.1, 0.3, 0.1)"}).grid() == {
        "a": [1, 2],
        "b": [0.1, 0.2],  # as hydra-optuna-sweeper's grid: one step before high
    }
    with pytest.raises(SearchSpaceError, match="grid sampler needs discrete values but 'lr'"):
        SearchSpace({"lr": "interval(0, 1)"}).grid()


def _examples(obj):
    import inspect
    import textwrap

    doc = inspect.getdoc(obj)
    block = doc.split(".. code-block:: python", 1)[1].split("\nArgs:", 1)[0]
    return textwrap.dedent(block)


def test_docstring_examples_run(tmp_path, monkeypatch):
    from wwtune.score import Score
    from wwtune.storage import make_storage

    monkeypatch.chdir(tmp_path)
    for obj in (SearchSpace, Score, make_storage):
        code = _examples(obj)
        assert "import" in code
        exec(compile(code, f"<{obj.__name__} example>", "exec"), {})
