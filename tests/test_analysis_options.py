"""One analysis-options object: AnalysisOptions is declared and validated once, and analyze, compare, both
command lines, the bridge and the study's ``analysis`` section all pass it."""

import argparse
import dataclasses

import optuna
import pandas as pd
import pytest
import torch
from torch import nn

import wwtune
from wwtune.bridge import TrialBridge
from wwtune.cli_common import add_analysis_options, analysis_options
from wwtune.schema import analysis_keys
from wwtune.spectral import analyze as spectral_analyze
from wwtune.spectral.analyze import OPTION_NAMES, AnalysisOptions


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(120, 60), nn.ReLU(), nn.Linear(60, 30), nn.ReLU(), nn.Linear(30, 10))


def test_defaults_and_normalised_values():
    opts = AnalysisOptions()
    assert (opts.min_evals, opts.max_evals, opts.fit, opts.dtype) == (8, 20_000, "power_law", "float64")
    assert opts.device == torch.device("cpu") or opts.device.type == "cuda"
    mixed = AnalysisOptions(layers=["0", 4], layer_types="dense")
    assert mixed.layers == ["0", 4] and mixed.layer_patterns == ["0"] and mixed.layer_ids == [4]
    assert mixed.layer_types == ["dense"] and mixed.torch_dtype == torch.float64


@pytest.mark.parametrize(
    "changes, error, message",
    [
        ({"min_evals": 0}, ValueError, "min_evals cannot be less than 1 but got 0"),
        ({"min_evals": 9, "max_evals": 8}, ValueError, "max_evals cannot be less than min_evals"),
        ({"fit": "ols"}, ValueError, "fit must be one of \\['power_law', 'hill', .*\\] but got 'ols'"),
        ({"dtype": "float16"}, ValueError, "dtype must be one of"),
        ({"layer_types": ["lstm"]}, ValueError, "layer_types must be among"),
        ({"mp_fit": "yes"}, TypeError, "mp_fit must be True or False but got 'yes'"),
        ({"seed": 1.5}, TypeError, "seed must be an integer but got 1.5"),
        ({"layers": []}, TypeError, "layers must be a pattern string"),
        ({"min_evalz": 3}, TypeError, "unexpected keyword argument 'min_evalz'.*did you mean 'min_evals'"),
    ],
)
def test_bad_values_fail_once_naming_the_value(changes, error, message):
    with pytest.raises(error, match=message):
        AnalysisOptions.of(**changes)


def test_replace_validates_the_copy_again():
    opts = AnalysisOptions(min_evals=20)
    assert dataclasses.replace(opts, keep_evals=True).keep_evals
    with pytest.raises(ValueError, match="max_evals cannot be less than min_evals"):
        dataclasses.replace(opts, max_evals=10)
    assert AnalysisOptions.of(opts) is opts and AnalysisOptions.of(opts, seed=3).seed == 3


def test_analyze_takes_the_options_object_or_the_names():
    model = _model()
    by_object = spectral_analyze(model, AnalysisOptions(min_evals=20, layers="0"))
    by_name = wwtune.analyze(model, min_evals=20, layers="0")
    pd.testing.assert_frame_equal(by_object, by_name)
    assert list(by_object["name"]) == ["0"]
    over = spectral_analyze(model, AnalysisOptions(min_evals=20), min_evals=40)  # names change the object
    assert list(over["name"]) == ["0"]


def test_the_maths_draws_nothing():
    with pytest.raises(TypeError, match=r"unexpected keyword argument 'plot' \(an option of wwtune.analyze"):
        spectral_analyze(_model(), plot=True)


def test_compare_takes_the_same_object():
    model = _model()
    df = wwtune.compare(model, model, AnalysisOptions(layers="2"))
    assert list(df["name"]) == ["2"] and list(df["verdict"]) == ["unchanged"]
    with pytest.raises(TypeError, match="unexpected keyword argument 'nonsense'"):
        wwtune.compare(model, model, nonsense=1)


def test_both_command_lines_build_it_from_one_helper():
    parser = argparse.ArgumentParser()
    add_analysis_options(parser)
    args = parser.parse_args(["--min-evals", "20", "--fit", "hill", "--layers", "fc*"])
    opts = analysis_options(args, keep_evals=True)
    assert isinstance(opts, AnalysisOptions)
    assert (opts.min_evals, opts.fit, opts.layers, opts.keep_evals) == (20, "hill", ["fc*"], True)


def test_the_bridge_validates_its_options_once():
    study = optuna.create_study()
    trial = study.ask()
    bridge = TrialBridge(trial, budget=2, analysis_kwargs={"min_evals": 20})
    assert isinstance(bridge.options, AnalysisOptions) and bridge.options.min_evals == 20
    given = AnalysisOptions(max_evals=500)
    assert TrialBridge(study.ask(), budget=2, analysis_kwargs=given).options is given
    with pytest.raises(ValueError, match="fit must be one of"):
        TrialBridge(study.ask(), budget=2, analysis_kwargs={"fit": "ols"})


def test_the_config_section_keys_are_the_fields():
    """A new field of AnalysisOptions is a new ``analysis`` key without another edit."""
    assert set(analysis_keys()) == {"min_evals_analysed", *OPTION_NAMES} - {"min_evals", "keep_evals"}
