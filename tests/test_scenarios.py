"""The over-fitting scenarios (training loss lies), their data knobs, and the AdamW weight-decay options.

Scenarios: conf/objective/{digits_noisy,teacher_student_noisy,char_lm_small}.yaml. Each is trained once
at its shipped configuration (a few seconds on one core) and checked for what makes it a scenario: the
run fits its training data (low training loss) while its held-out metric is measurably worse than a
clean or less-trained run's.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf
from torch import nn

from wwtune.objective import NullReporter, Params
from wwtune.objectives import _common, char_lm, digits_mlp, teacher_student

torch.set_num_threads(1)

CONF = Path(__file__).resolve().parent.parent / "conf"


def scenario(name: str, seed: int = 0, budget: int | None = None, **values):
    """Train the scenario ``name`` as its objective config ships it (``values`` override ``fixed``)."""
    cfg = OmegaConf.to_container(OmegaConf.load(CONF / "objective" / f"{name}.yaml"))
    module = {"digits_noisy": digits_mlp, "teacher_student_noisy": teacher_student, "char_lm_small": char_lm}[
        name
    ]
    params = Params(
        values={"lr": 0.05, **cfg["fixed"], **values},
        budget=budget or cfg["budget"],
        seed=seed,
        data_fraction=cfg["data_fraction"],
    )
    reporter = NullReporter()
    return module.train(params, reporter), reporter.losses


# --------------------------------------------------------------------------------------------------
# data knobs and loss references


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 400), fraction=st.floats(0.0, 0.95), k=st.integers(2, 12), seed=st.integers(0, 99))
def test_flip_labels_changes_exactly_the_requested_number_to_another_class(n, fraction, k, seed):
    y = torch.randint(k, (n,), generator=torch.Generator().manual_seed(seed))
    out = _common.flip_labels(y, fraction, k, seed)
    assert int((out != y).sum()) == round(fraction * n)
    assert int(out.min()) >= 0 and int(out.max()) < k
    assert torch.equal(out, _common.flip_labels(y, fraction, k, seed))  # seeded


def test_flip_labels_rejects_a_bad_fraction():
    with pytest.raises(ValueError, match=r"label_noise must be in \[0, 1\) but got 1.0"):
        _common.flip_labels(torch.zeros(3, dtype=torch.int64), 1.0, 10, 0)


@pytest.mark.parametrize(
    "labels,k,expected",
    [
        ([0, 1, 2, 3] * 5, 4, math.log(4)),
        ([3] * 7, 10, 0.0),
        ([0, 0, 0, 1], 2, -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))),
    ],
)
def test_constant_predictor_loss_is_the_label_entropy(labels, k, expected):
    y = torch.tensor(labels)
    assert _common.constant_predictor_loss(y, k) == pytest.approx(expected)
    # and it is the cross-entropy of the best constant logits (the log label frequencies)
    freq = torch.bincount(y, minlength=k).double() / len(y)
    logits = torch.log(freq.clamp_min(1e-300)).expand(len(y), k)
    assert float(nn.functional.cross_entropy(logits, y)) == pytest.approx(expected, abs=1e-9)


def test_initial_loss_draws_no_random_numbers_and_is_the_untrained_loss():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 8), nn.Dropout(0.5), nn.Linear(8, 3))
    x, y = torch.randn(600, 5), torch.randint(3, (600,))
    state = torch.random.get_rng_state()
    value = _common.initial_loss(model, x, y)
    assert torch.equal(state, torch.random.get_rng_state())
    assert model.training  # mode restored
    model.eval()
    with torch.no_grad():
        assert value == pytest.approx(float(nn.functional.cross_entropy(model(x), y)), rel=1e-6)


def test_digits_label_noise_and_data_seed_reach_the_training_data(monkeypatch):
    seen = []
    monkeypatch.setattr(_common, "fit_epochs", lambda model, x, y, *a, **k: seen.append((x, y)) or 0.0)
    base = {"lr": 0.05}
    for values, seed in [({}, 0), ({"label_noise": 0.3}, 0), ({"data_seed": 5}, 0), ({"data_seed": 5}, 1)]:
        digits_mlp.train(
            Params(values={**base, **values}, budget=1, seed=seed, data_fraction=0.5), NullReporter()
        )
    (x0, y0), (x1, y1), (x5a, y5a), (x5b, y5b) = seen
    assert torch.equal(x0, x1) and int((y0 != y1).sum()) == round(0.3 * len(y0))
    assert torch.equal(x5a, x5b) and torch.equal(y5a, y5b)  # data_seed fixes the data across trial seeds
    assert not torch.equal(x0, x5a)


def test_teacher_student_data_seed_fixes_the_sample_across_trial_seeds(monkeypatch):
    seen = []
    monkeypatch.setattr(teacher_student, "fit_epochs", lambda model, x, y, *a, **k: seen.append(y) or 0.0)
    for seed in (0, 1):
        for data_seed in (None, 3):
            teacher_student.train(
                Params(values={"n_train": 200, "n_heldout": 50, "data_seed": data_seed}, budget=1, seed=seed),
                NullReporter(),
            )
    none0, fixed0, none1, fixed1 = seen
    assert torch.equal(fixed0, fixed1) and not torch.equal(none0, none1)


# --------------------------------------------------------------------------------------------------
# the scenarios: the training loss lies


@pytest.mark.slow
def test_digits_noisy_memorises_flipped_labels_and_generalises_worse():
    noisy, losses = scenario("digits_noisy", lr=0.05, momentum=0.9)
    clean, _ = scenario("digits_noisy", lr=0.05, momentum=0.9, label_noise=0.0)
    # fits the 30% wrong labels: a model predicting the true digit with the noise's own uncertainty
    # cannot go below the noise's entropy, 0.7 ln(1/0.7) + 0.3 ln(9/0.3) = 1.27 nats
    assert losses[-1][1] < 0.2
    assert noisy["loss_init"] > 2.0 and noisy["loss_trivial"] == pytest.approx(math.log(10), abs=0.05)
    assert noisy["heldout"] < clean["heldout"] - 0.1  # held-out accuracy pays for the memorised noise
    assert noisy["heldout"] < 0.85


@pytest.mark.slow
def test_teacher_student_noisy_memorises_noise_and_generalises_worse():
    noisy, losses = scenario("teacher_student_noisy", lr=0.1, momentum=0.9)
    clean, _ = scenario("teacher_student_noisy", lr=0.1, momentum=0.9, noise=0.0)
    # fits the 40% random labels: below the noise's entropy, 0.64 ln(1/0.64) + 9 × 0.04 ln(1/0.04) = 1.44
    assert losses[-1][1] < 0.2
    assert noisy["heldout"] > 0.5  # while erring on half the clean held-out labels
    assert noisy["heldout"] > clean["heldout"] + 0.1


@pytest.mark.slow
def test_char_lm_small_memorises_and_predicts_held_out_text_worse_than_unigrams():
    out, losses = scenario("char_lm_small", lr=0.01, weight_decay=0.01)
    final = losses[-1][1]
    assert final < out["loss_trivial"] - 0.5  # fits the training text far better than its unigram entropy
    unigram_bits = out["loss_trivial"] / math.log(2)
    assert out["heldout"] > unigram_bits  # held-out bits per char are worse than the unigram predictor's
    assert out["heldout"] > final / math.log(2) + 2.0


# --------------------------------------------------------------------------------------------------
# AdamW: biases and norm weights out of weight decay; lr_mult and decoupled decay


class NormNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(4, 8)
        self.ln = nn.LayerNorm(8)
        self.fc2 = nn.Linear(8, 3)


def _groups(params: Params, **kwargs):
    return {g["name"]: g for g in params.param_groups(NormNet(), **kwargs)}


def test_param_groups_keep_biases_and_norm_weights_out_of_decay_when_asked():
    params = Params(values={"lr": 0.1, "weight_decay": 0.05}, layers={"fc2": {"lr_mult": 2.0}})
    everything = _groups(params)
    assert set(everything) == {"default", "fc2"}
    assert all(g["weight_decay"] == 0.05 for g in everything.values())
    groups = _groups(params, decay_bias_and_norm=False)
    assert set(groups) == {"default", "default/no_decay", "fc2", "fc2/no_decay"}
    decayed = {id(p) for name in ("default", "fc2") for p in groups[name]["params"]}
    net_params = dict(NormNet().named_parameters())
    assert len(decayed) == 2  # fc1.weight and fc2.weight only
    assert all(p.ndim == 2 for name in ("default", "fc2") for p in groups[name]["params"])
    assert groups["default/no_decay"]["weight_decay"] == 0.0 and groups["fc2/no_decay"]["weight_decay"] == 0.0
    # fc1.bias, ln.weight, ln.bias | fc2.bias; the no-decay group keeps its layer's lr
    assert len(groups["default/no_decay"]["params"]) == 3 and len(groups["fc2/no_decay"]["params"]) == 1
    assert groups["fc2/no_decay"]["lr"] == pytest.approx(0.2)
    n_grouped = sum(len(g["params"]) for g in groups.values())
    assert n_grouped == len(net_params)


def test_norm_module_weights_are_excluded_even_when_two_dimensional():
    class Odd(nn.Module):  # a norm-type module with a 2-D parameter still counts as a norm
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, 3, bias=False)
            self.gn = nn.GroupNorm(1, 3)
            self.gn.weight = nn.Parameter(torch.ones(1, 3))

    groups = {
        g["name"]: g
        for g in Params(values={"lr": 1.0, "weight_decay": 0.1}).param_groups(
            Odd(), decay_bias_and_norm=False
        )
    }
    assert [p.shape for p in groups["default"]["params"]] == [torch.Size([3, 3])]


@pytest.mark.parametrize("follows,expected_shrink", [(True, 2 * 0.1 * 0.5), (False, 0.1 * 0.5)])
def test_lr_mult_scales_decoupled_decay_unless_told_not_to(follows, expected_shrink):
    """AdamW with a zero gradient moves a weight only by decay: w ← w (1 − group lr × group wd)."""
    net = NormNet()
    params = Params(values={"lr": 0.1, "weight_decay": 0.5}, layers={"fc2": {"lr_mult": 2.0}})
    opt = torch.optim.AdamW(params.param_groups(net, decay_follows_lr_mult=follows), lr=0.1)
    before = net.fc2.weight.detach().clone()
    for p in net.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    assert torch.allclose(net.fc2.weight, before * (1 - expected_shrink))
    groups = {g["name"]: g for g in opt.param_groups}
    assert groups["fc2"]["lr"] == pytest.approx(0.2)  # the gradient step keeps its lr_mult either way
    assert groups["default"]["weight_decay"] == pytest.approx(0.5)


def test_bundled_tasks_pass_the_decay_options_to_the_optimizer():
    model = NormNet()
    hp = {
        "lr": 0.01,
        "opt": "adamw",
        "weight_decay": 0.1,
        "decay_bias_and_norm": False,
        "decay_follows_lr_mult": False,
    }
    opt = _common.make_optimizer(Params(values={}, layers={"fc2": {"lr_mult": 4.0}}), model, hp)
    assert isinstance(opt, torch.optim.AdamW)
    groups = {g["name"]: g for g in opt.param_groups}
    assert groups["fc2"]["weight_decay"] == pytest.approx(0.025)
    assert groups["fc2/no_decay"]["weight_decay"] == 0.0
    for module in (digits_mlp, teacher_student, char_lm):
        assert module.DEFAULTS["decay_bias_and_norm"] is True  # default: the behaviour before the option
        assert module.DEFAULTS["decay_follows_lr_mult"] is True


@pytest.mark.parametrize("space", ["digits_mlp_adamw", "digits_cnn_adamw", "teacher_student_adamw"])
def test_adamw_search_spaces_fix_adamw_and_exclude_biases(space):
    from wwtune.search_space import SearchSpace

    cfg = OmegaConf.to_container(OmegaConf.load(CONF / "search_space" / f"{space}.yaml"))
    values, _ = SearchSpace.from_config(cfg).split({})
    assert values["opt"] == "adamw" and values["decay_bias_and_norm"] is False
    assert "momentum" not in cfg["params"]
