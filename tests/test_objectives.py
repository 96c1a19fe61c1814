"""The bundled tasks in objectives/: they train, are deterministic, honour data_fraction and per-layer
settings, return an in-range held-out metric, and their shipped configs name only what they accept."""

from __future__ import annotations

import fnmatch
import importlib
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf

from wwtune.objective import NullReporter, Params
from wwtune.objectives import (
    _common,
    char_lm,
    digits_cnn,
    digits_deep_cnn,
    digits_deep_mlp,
    digits_mlp,
    teacher_student,
)

torch.set_num_threads(1)

CONF = Path(__file__).resolve().parent.parent / "conf"

# Tiny versions of each task: a few budget units, small data, so the whole file stays fast.
TINY = {
    "digits_mlp": (digits_mlp, {}, 3),
    "digits_cnn": (digits_cnn, {"channels": 16}, 3),
    "char_lm": (char_lm, {"steps_per_epoch": 15, "eval_chars": 2048, "d_model": 32, "context": 32}, 3),
    "teacher_student": (teacher_student, {"n_train": 400, "n_heldout": 1000}, 4),
    "digits_deep_mlp": (digits_deep_mlp, {"opt": "adam", "lr": 3e-3}, 3),
    "digits_deep_cnn": (digits_deep_cnn, {"channels": 16, "opt": "adam", "lr": 3e-3}, 3),
}
# (low, high) of each task's held-out metric.
HELDOUT_RANGE = {
    "digits_mlp": (0.0, 1.0),
    "digits_cnn": (0.0, 1.0),
    "char_lm": (0.0, 8.0),  # bits per character; uniform guessing over 103 characters is 6.7
    "teacher_student": (0.0, 1.0),
    "digits_deep_mlp": (0.0, 1.0),
    "digits_deep_cnn": (0.0, 1.0),
}
# A held-out value each tiny run must beat: chance level (10 digits; uniform over 103 characters is
# log2(103) = 6.7 bits; the teacher's commonest of 10 classes covers 13%), so the metric's direction is right.
BEATS_CHANCE = {
    "digits_mlp": lambda v: v > 0.15,
    "digits_cnn": lambda v: v > 0.15,
    "char_lm": lambda v: v < 6.0,
    "teacher_student": lambda v: v < 0.85,
    "digits_deep_mlp": lambda v: v > 0.15,
    "digits_deep_cnn": lambda v: v > 0.15,
}
# A pattern matching one weight layer, and a dropout module, of each task's model.
FROZEN_LAYER = {
    "digits_mlp": "fc1",
    "digits_cnn": "conv2",
    "char_lm": "blocks.0.mlp.fc1",
    "teacher_student": "fc2",
    "digits_deep_mlp": "fc3",
    "digits_deep_cnn": "conv3",
}
MOVING_LAYER = {
    "digits_mlp": "fc2",
    "digits_cnn": "fc1",
    "char_lm": "head",
    "teacher_student": "fc1",
    "digits_deep_mlp": "fc2",
    "digits_deep_cnn": "fc1",
}
DROPOUT_MODULE = {
    "digits_mlp": "drop2",
    "digits_cnn": "drop1",
    "char_lm": "blocks.1.attn.drop",
    "teacher_student": "drop1",
    "digits_deep_mlp": "drop",
    "digits_deep_cnn": "drop",
}


def run(name: str, seed: int = 0, data_fraction: float = 1.0, layers=None, reporter=None):
    module, values, budget = TINY[name]
    reporter = reporter or NullReporter()
    params = Params(
        values=dict(values), layers=layers or {}, budget=budget, seed=seed, data_fraction=data_fraction
    )
    return module.train(params, reporter), reporter


@pytest.fixture(scope="module")
def first_runs():
    return {}


def cached_run(cache: dict, name: str):
    if name not in cache:
        cache[name] = run(name)
    return cache[name]


@pytest.mark.parametrize("name", sorted(TINY))
def test_trains_reports_every_unit_and_loss_falls(name, first_runs):
    out, reporter = cached_run(first_runs, name)
    steps = [step for step, _ in reporter.losses]
    # step 0: the loss before training (the reference of the study's sanity rules), equal to loss_init
    assert steps == list(range(0, TINY[name][2] + 1))
    assert reporter.losses[0][1] == pytest.approx(out["loss_init"])
    losses = [loss for _, loss in reporter.losses]
    assert all(math.isfinite(x) for x in losses)
    assert losses[-1] < 0.9 * losses[0], losses


@pytest.mark.parametrize("name", sorted(TINY))
def test_heldout_is_finite_and_in_range(name, first_runs):
    out, _ = cached_run(first_runs, name)
    low, high = HELDOUT_RANGE[name]
    assert math.isfinite(out["heldout"]) and low <= out["heldout"] <= high, out
    assert BEATS_CHANCE[name](out["heldout"]), out
    assert isinstance(out["n_train"], int) and out["n_train"] > 0


@pytest.mark.parametrize("name", sorted(TINY))
def test_same_seed_same_run_other_seed_differs(name, first_runs):
    out, reporter = cached_run(first_runs, name)
    again, reporter_again = run(name, seed=0)
    assert again == out
    assert reporter_again.losses == reporter.losses
    _, other = run(name, seed=1)
    assert other.losses != reporter.losses


@pytest.mark.parametrize("name", sorted(TINY))
def test_data_fraction_shrinks_training_set(name, first_runs):
    full, _ = cached_run(first_runs, name)
    module, values, _ = TINY[name]
    # only the data is built for this check: the training run itself is covered above
    quarter = full["n_train"] * 0.25
    if name == "teacher_student":
        hp = _common.resolve_hparams(Params(values=values), module.DEFAULTS, name)
        x, y, x_held, _ = module.make_data(hp, 0, 0.25)
        assert len(x) == len(y) == _common.subset_size(hp["n_train"], 0.25)
        assert len(x_held) == hp["n_heldout"]
    else:
        out, _ = run(name, data_fraction=0.25)
        assert out["n_train"] == pytest.approx(quarter, abs=1)
        assert out["n_train"] < full["n_train"]


class Snapshots(NullReporter):
    """Keeps a copy of every parameter and each dropout module's p at every report."""

    def __init__(self) -> None:
        super().__init__()
        self.weights: list[dict[str, torch.Tensor]] = []
        self.dropout: dict[str, float] = {}

    def report(self, step, model, loss):
        super().report(step, model, loss)
        self.weights.append({k: v.detach().clone() for k, v in model.named_parameters()})
        self.dropout = {n: m.p for n, m in model.named_modules() if isinstance(m, torch.nn.Dropout)}


@pytest.mark.parametrize("name", sorted(TINY))
def test_per_layer_lr_mult_and_dropout_reach_the_model(name):
    frozen, moving, drop = FROZEN_LAYER[name], MOVING_LAYER[name], DROPOUT_MODULE[name]
    reporter = Snapshots()
    run(name, layers={frozen: {"lr_mult": 0.0}, drop: {"dropout": 0.25}}, reporter=reporter)
    first, last = reporter.weights[0], reporter.weights[-1]
    assert torch.equal(first[f"{frozen}.weight"], last[f"{frozen}.weight"]), "lr_mult=0 layer moved"
    assert not torch.equal(first[f"{moving}.weight"], last[f"{moving}.weight"])
    assert reporter.dropout[drop] == 0.25
    assert all(p == 0.0 for n, p in reporter.dropout.items() if n != drop)


@pytest.mark.parametrize("name", sorted(TINY))
def test_unknown_or_bad_hyperparameters_are_named(name):
    module = TINY[name][0]
    with pytest.raises(ValueError, match="'lrate'"):
        module.train(Params(values={"lrate": 0.1}, budget=1), NullReporter())
    with pytest.raises(ValueError, match="opt must be one of"):
        module.train(Params(values={"opt": "lbfgs"}, budget=1), NullReporter())
    with pytest.raises(ValueError, match="lr cannot be negative but got -1"):
        module.train(Params(values={"lr": -1}, budget=1), NullReporter())


def test_untuned_values_sit_between_task_defaults_and_searched_values():
    defaults = {"lr": 0.1, "momentum": 0.9, "dropout": 0.0}
    params = Params(values={"untuned": {"lr": 0.5, "dropout": 0.2}, "lr": 0.01})
    hp = _common.resolve_hparams(params, defaults, "t")
    assert hp == {"lr": 0.01, "momentum": 0.9, "dropout": 0.2}
    with pytest.raises(ValueError, match="'lrate'"):
        _common.resolve_hparams(Params(values={"untuned": {"lrate": 1}}), defaults, "t")
    with pytest.raises(ValueError, match="untuned must be a mapping"):
        _common.resolve_hparams(Params(values={"untuned": 0.1}), defaults, "t")


def test_teacher_student_rejects_bad_problem():
    with pytest.raises(ValueError, match="noise must be in"):
        teacher_student.train(Params(values={"noise": 1.5}, budget=1), NullReporter())
    with pytest.raises(ValueError, match="n_train must be a positive integer but got 0"):
        teacher_student.train(Params(values={"n_train": 0}, budget=1), NullReporter())


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31), f_small=st.floats(0.01, 1.0), f_big=st.floats(0.01, 1.0))
def test_digits_heldout_is_fixed_disjoint_and_subsets_nest(seed, f_small, f_big):
    f_small, f_big = sorted((f_small, f_big))
    small, held = _common.digits_indices(seed, f_small, 1797)
    big, held_big = _common.digits_indices(seed, f_big, 1797)
    _, held_other = _common.digits_indices(seed + 1, f_big, 1797)
    assert np.array_equal(held, held_big) and np.array_equal(held, held_other)
    assert not set(big) & set(held)
    assert np.array_equal(big[: len(small)], small)
    assert len(big) == _common.subset_size(1797 - len(held), f_big)


@settings(max_examples=10, deadline=None)
@given(noise=st.floats(0.0, 0.9), k=st.integers(2, 6), seed=st.integers(0, 1000))
def test_teacher_student_label_noise_rate(noise, k, seed):
    hp = {**teacher_student.DEFAULTS, "n_train": 4000, "n_classes": k, "noise": noise, "n_heldout": 10}
    x, y, _, _ = teacher_student.make_data(hp, seed, 1.0)
    teacher = teacher_student.Teacher(hp["d_in"], hp["teacher_width"], k, hp["teacher_seed"])
    flipped = float((y != teacher(x)).float().mean())
    expected = noise * (1 - 1 / k)  # a replaced label lands on the right class 1/k of the time
    assert abs(flipped - expected) < 4 * math.sqrt(max(expected * (1 - expected), 1e-4) / len(y)) + 1e-3


def test_teacher_student_heldout_is_fresh_and_fixed_and_training_subsets_nest():
    hp = dict(teacher_student.DEFAULTS)
    x_half, y_half, held_a, label_a = teacher_student.make_data(hp, 0, 0.5)
    x_full, y_full, held_b, label_b = teacher_student.make_data(hp, 0, 1.0)
    x_other, _, held_c, _ = teacher_student.make_data(hp, 1, 1.0)
    assert torch.equal(x_full[: len(x_half)], x_half) and torch.equal(y_full[: len(y_half)], y_half)
    assert torch.equal(held_a, held_b) and torch.equal(held_a, held_c) and torch.equal(label_a, label_b)
    assert not torch.equal(x_full, x_other)
    # no held-out input appears among the training inputs
    assert torch.cdist(held_a[:500], x_full).min() > 1e-3


def test_char_lm_trains_only_before_the_heldout_slice(first_runs):
    out, _ = cached_run(first_runs, "char_lm")
    _, codes = char_lm.corpus()
    n_heldout = round(char_lm.HELDOUT_FRACTION * len(codes))
    assert out["n_train"] == len(codes) - n_heldout  # the training text ends where the held-out slice starts


# --- shipped configs -------------------------------------------------------------------------------


def _model_modules(module) -> list[str]:
    hp = module.DEFAULTS
    if module is digits_mlp:
        model = digits_mlp.DigitsMLP(hp["hidden"])
    elif module is digits_cnn:
        model = digits_cnn.DigitsCNN(hp["channels"])
    elif module is digits_deep_mlp:
        model = digits_deep_mlp.DeepMLP(hp["hidden"], hp["depth"])
    elif module is digits_deep_cnn:
        model = digits_deep_cnn.DeepCNN(hp["channels"])
    elif module is char_lm:
        model = char_lm.CharTransformer(
            len(char_lm.corpus()[0]), hp["context"], hp["d_model"], hp["n_heads"], hp["n_layers"]
        )
    else:
        model = teacher_student.Student(hp["d_in"], hp["student_width"], hp["n_classes"])
    return [name for name, _ in model.named_modules() if name]


OBJECTIVE_CONFIGS = sorted(p.stem for p in (CONF / "objective").glob("*.yaml"))


@pytest.mark.parametrize("config", OBJECTIVE_CONFIGS)
def test_objective_config_names_a_task_and_only_known_fixed_values(config):
    cfg = OmegaConf.to_container(OmegaConf.load(CONF / "objective" / f"{config}.yaml"))
    required = {"task", "budget", "report_every", "data_fraction", "fixed", "heldout"}
    assert required <= set(cfg) <= required | {"alpha_band", "loss_comparable"}
    if "char_lm" in cfg["task"]:  # transformer layers: every score without its own band uses [3, 4]
        assert cfg["alpha_band"] == [3.0, 4.0]
    module_name, _, fn_name = cfg["task"].partition(":")
    module = importlib.import_module(module_name)
    fn = getattr(module, fn_name)
    assert fn.supports_data_fraction is True
    assert not set(cfg["fixed"]) - set(module.DEFAULTS) - {"untuned"}
    assert not set(cfg["fixed"].get("untuned", {})) - set(module.DEFAULTS)
    # the study refuses a name that is both fixed and searched: the task's search space (the scenario's
    # own when it has one) must not clash
    own = CONF / "search_space" / f"{config}.yaml"
    task_space = CONF / "search_space" / f"{module_name.rpartition('.')[2]}.yaml"
    space = OmegaConf.load(own if own.exists() else task_space)
    assert not set(cfg["fixed"]) & set(space["params"])
    _common.resolve_hparams(Params(values=cfg["fixed"]), module.DEFAULTS, config)
    assert cfg["heldout"]["direction"] in ("minimize", "maximize")
    assert int(cfg["budget"]) >= 1 and 0 < float(cfg["data_fraction"]) <= 1


def _space_task(space: str) -> str:
    """The task a search-space file is for: its name, or the longest task name it starts with."""
    return max((t for t in TINY if space == t or space.startswith(t + "_")), key=len)


@pytest.mark.parametrize("space", sorted(p.stem for p in (CONF / "search_space").glob("*.yaml")))
def test_search_space_names_known_hyperparameters_and_live_layer_patterns(space):
    module = TINY[_space_task(space)][0]
    cfg = OmegaConf.to_container(OmegaConf.load(CONF / "search_space" / f"{space}.yaml"))
    assert not set(cfg["params"]) - set(module.DEFAULTS)
    # every space tunes the learning rate and weight decay; dropout too, except the deliberately narrow
    # badly-tuned scenario (the advisor's validation needs its space as it is)
    tuned = {"lr", "weight_decay"} if space.endswith("_untuned") else {"lr", "weight_decay", "dropout"}
    assert tuned <= set(cfg["params"])
    modules = _model_modules(module)
    for pattern, settings_ in cfg.get("layers", {}).items():
        assert any(fnmatch.fnmatchcase(m, pattern) for m in modules), f"{pattern!r} matches no module"
        assert set(settings_) <= {"lr_mult", "weight_decay", "dropout"}


def _scenario_error(scenario: str, seed: int = 0, **overrides) -> float:
    cfg = OmegaConf.to_container(OmegaConf.load(CONF / "objective" / f"teacher_student_{scenario}.yaml"))
    params = Params(values={**cfg["fixed"], **overrides}, budget=cfg["budget"], seed=seed)
    return teacher_student.train(params, NullReporter())["heldout"]


@pytest.mark.slow
def test_starved_scenario_gains_from_data_and_untuned_from_tuning():
    """One seed of what benchmarks/teacher_student_scenarios.md measures in full."""
    starved = _scenario_error("starved")
    assert starved - _scenario_error("starved", n_train=500) > 0.03  # doubling the data helps
    untuned = _scenario_error("untuned")
    assert untuned - _scenario_error("untuned", lr=0.01) > 0.02  # a better learning rate helps


def _trained_steps(monkeypatch, values: dict, fraction: float) -> tuple[int, dict]:
    """Minibatch steps a digits CNN run takes (forward calls in training mode) and its weights."""
    calls = []
    forward = digits_cnn.DigitsCNN.forward

    def counting(self, x):
        if self.training:
            calls.append(len(x))
        return forward(self, x)

    monkeypatch.setattr(digits_cnn.DigitsCNN, "forward", counting)
    kept = {}

    class Keep(NullReporter):
        def report(self, step, model, loss):
            kept.update({k: v.detach().clone() for k, v in model.state_dict().items()})

    params = Params(
        values={"channels": 4, "batch_size": 32, **values}, budget=2, seed=3, data_fraction=fraction
    )
    digits_cnn.train(params, Keep())
    monkeypatch.setattr(digits_cnn.DigitsCNN, "forward", forward)
    return len(calls), kept


def test_a_fixed_step_budget_does_not_grow_with_the_data(monkeypatch):
    small, _ = _trained_steps(monkeypatch, {"steps_per_epoch": 5}, 0.2)
    large, _ = _trained_steps(monkeypatch, {"steps_per_epoch": 5}, 0.8)
    assert small == large == 2 * 5  # budget 2 epochs × 5 steps, whatever the data size
    by_pass_small, _ = _trained_steps(monkeypatch, {}, 0.2)
    by_pass_large, _ = _trained_steps(monkeypatch, {}, 0.8)
    assert by_pass_large > 3 * by_pass_small  # epochs of full passes grow with the data


def test_steps_per_epoch_of_one_pass_trains_exactly_like_full_passes(monkeypatch):
    n = len(_common.digits_split(3, 0.2)[0])
    steps, weights = _trained_steps(monkeypatch, {"steps_per_epoch": math.ceil(n / 32)}, 0.2)
    same, reference = _trained_steps(monkeypatch, {}, 0.2)
    assert steps == same
    assert all(torch.equal(weights[k], reference[k]) for k in reference)


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "10"])
def test_a_bad_steps_per_epoch_is_named(bad):
    params = Params(values={"channels": 4, "steps_per_epoch": bad}, budget=1, seed=0, data_fraction=0.1)
    with pytest.raises(ValueError, match=r"steps_per_epoch must be a positive integer or None but got"):
        digits_cnn.train(params, NullReporter())
