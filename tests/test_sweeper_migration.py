"""hydra-optuna-sweeper users moving over: their syntax's meaning, and one-line messages for its configs."""

import re
import warnings

import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from torch import nn

from wwtune import cli
from wwtune.objective import Params
from wwtune.search_space import SearchSpace, SearchSpaceError
from wwtune.sweeper_migration import check_overrides, check_sweeper_node


def dist(text):
    return SearchSpace({"x": text}).dimensions[0].distribution


def test_int_cast_of_an_interval_is_an_integer_range():
    assert dist("int(interval(-5, 5))") == IntDistribution(-5, 5)
    assert dist("tag(log, int(interval(1, 100)))") == IntDistribution(1, 100, log=True)
    assert dist("interval(-5, 5)") == FloatDistribution(-5.0, 5.0)  # without the cast: floats, as the sweeper


def test_shuffled_range_keeps_pythons_end_exclusive_values():
    assert dist("shuffle(range(-5, 5))") == CategoricalDistribution(list(range(-5, 5)))
    assert dist("shuffle(range(0, 1, 0.25))") == CategoricalDistribution([0.0, 0.25, 0.5, 0.75])
    with pytest.raises(SearchSpaceError, match="has no values"):
        dist("shuffle(range(3, 3))")


def test_grid_end_points_match_the_sweepers_grid():
    space = SearchSpace(
        {"x": "range(-5.5, 5.5, step=0.5)", "n": "int(interval(1, 4))", "k": "range(1, 10, 2)"}
    )
    grid = space.grid()
    assert len(grid["x"]) == 22 and grid["x"][0] == -5.5 and grid["x"][-1] == 5.0
    assert grid["n"] == [1, 2, 3]
    assert grid["k"] == [1, 3, 5, 7]  # the sweeper stops one step before high (9 after Optuna's adjustment)
    # samplers other than the grid still draw from the whole range, the sweeper's distribution
    assert space.dimensions[0].distribution == FloatDistribution(-5.5, 5.5, step=0.5)
    # wwtune's own dict form keeps both ends
    assert SearchSpace({"x": {"type": "float", "low": -5.5, "high": 5.5, "step": 0.5}}).grid()["x"][-1] == 5.5
    with pytest.raises(SearchSpaceError, match="grid of 'n' is empty"):
        SearchSpace({"n": "range(2, 3, 5)"}).grid()


def _error(capsys, *args):
    code = cli.main(list(args))
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.startswith("wwtune:")]
    assert len(lines) == 1, err
    return lines[0]


def _converted(message):
    return re.findall(r"'(\+\+search_space\.params\.[^']+)'", message)


def test_selecting_the_sweeper_on_the_command_line_names_the_equivalent(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    line = _error(capsys, "hydra/sweeper=optuna", "study=quickstart")
    assert "hydra-optuna-sweeper" in line and "search_space.params" in line
    line = _error(capsys, "hydra.sweeper.n_trials=5", "study=quickstart")
    assert "use study.n_trials" in line
    line = _error(capsys, "hydra.sweeper.params.lr=tag(log, interval(1e-3, 0.1))", "study=quickstart")
    assert _converted(line) == ['++search_space.params.lr="tag(log, interval(1e-3, 0.1))"']


def test_sweep_syntax_in_multirun_overrides_gets_the_converted_line(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    line = _error(capsys, "-m", "x=interval(-5.0, 5.0)", "study=quickstart")
    assert _converted(line) == ['++search_space.params.x="interval(-5.0, 5.0)"']
    assert 'search_space: {params: {x: "interval(-5.0, 5.0)"}}' in line
    line = _error(capsys, "-m", "model.lr=choice(0.1, 0.01)", "study=quickstart")
    assert _converted(line) == ['++search_space.params.lr="choice(0.1, 0.01)"']
    # Hydra's own multirun over wwtune's sections (several workers, several studies) stays allowed
    assert check_overrides(["-m", "worker_id=0,1", "hydra/launcher=joblib"]) is None
    assert check_overrides(["-m", "study.seed=0,1"]) is None


def test_the_converted_line_composes_to_the_same_search_space(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    message = check_overrides(["-m", "x=range(-5.5, 5.5, step=0.5)", "y=int(interval(1, 4))"])
    cfg = cli.compose(["study=quickstart", *_converted(message)])
    dims = {d.name: d for d in SearchSpace.from_config(cfg["search_space"]).dimensions}
    assert dims["x"].distribution == FloatDistribution(-5.5, 5.5, step=0.5)
    assert dims["y"].distribution == IntDistribution(1, 4)


SWEEPER_STUDY = """\
# @package _global_
defaults:
  - override /hydra/sweeper: optuna
  - override /hydra/sweeper/sampler: random
study:
  name: moved
hydra:
  sweeper:
    direction: maximize
    n_trials: 20
    params:
      x: range(-5.5, 5.5, step=0.5)
      y: choice(-5, 0, 5)
"""

PARAMS_ONLY = """\
# @package _global_
study:
  name: moved2
hydra:
  sweeper:
    params:
      lr: tag(log, interval(1e-3, 0.1))
"""


@pytest.mark.parametrize("multirun", [False, True])
def test_a_sweeper_config_fails_with_one_line_instead_of_running(capsys, tmp_path, monkeypatch, multirun):
    (tmp_path / "conf" / "study").mkdir(parents=True)
    (tmp_path / "conf" / "study" / "moved.yaml").write_text(SWEEPER_STUDY)
    (tmp_path / "conf" / "study" / "moved2.yaml").write_text(PARAMS_ONLY)
    monkeypatch.chdir(tmp_path)
    m = ["-m"] if multirun else []
    line = _error(capsys, *m, "study=moved")
    assert 'search_space: {params: {x: "range(-5.5, 5.5, step=0.5)", y: "choice(-5, 0, 5)"}}' in line
    assert "n_trials → study.n_trials" in line and "direction → study.direction" in line
    assert "sampler → sampler=random" in line
    # hydra.sweeper.params without selecting the sweeper was silently ignored (the shipped space ran)
    line = _error(capsys, *m, "study=moved2")
    assert _converted(line) == ['++search_space.params.lr="tag(log, interval(1e-3, 0.1))"']
    assert not (tmp_path / "studies" / "moved2" / "journal.log").exists()


def test_no_message_for_a_plain_hydra_sweeper_node():
    assert (
        check_sweeper_node(
            {
                "_target_": "hydra._internal.core_plugins.basic_sweeper.BasicSweeper",
                "max_batch_size": None,
                "params": None,
            }
        )
        is None
    )


def test_a_per_layer_pattern_matching_no_module_warns_with_the_module_names():
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Dropout(0.1), nn.Linear(8, 2))
    params = Params(values={"lr": 0.1}, layers={"fc1": {"lr_mult": 2.0}, "2": {"dropout": 0.2}})
    with pytest.warns(UserWarning, match=r"pattern .fc1. .* matches no module.*\['0', '1', '2', '3'\]"):
        params.param_groups(model)
    with pytest.warns(UserWarning, match=r"pattern 'fc1'"):
        params.apply_dropout(model)
    fine = Params(values={"lr": 0.1}, layers={"0": {"lr_mult": 2.0}, "2": {"dropout": 0.2}})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fine.param_groups(model)
        assert fine.apply_dropout(model) == {"2": 0.2}
