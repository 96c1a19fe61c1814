"""wwtune.training: TempBalance (known α → known factors, skip rules, exact composition with a cosine
schedule, group mapping) and EarlyFreezing (warm-up, front-to-back, last layer, frozen weights, FLOPs)."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from wwtune.spectral.powerlaw import fit_hill, fit_power_law
from wwtune.training import EarlyFreezing, TempBalance, balance_factors, layer_alphas, param_groups_per_layer


def _mlp(n: int = 5, width: int = 64, seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(*[nn.Linear(width, width) for _ in range(n)])


def _with_spectrum(layer: nn.Linear, evals: np.ndarray, seed: int = 0) -> None:
    """Set ``layer.weight`` (square) to a matrix whose WᵀW has exactly ``evals``."""
    n = layer.weight.shape[0]
    rng = np.random.default_rng(seed)
    u, _ = np.linalg.qr(rng.standard_normal((n, n)))
    v, _ = np.linalg.qr(rng.standard_normal((n, n)))
    w = u @ np.diag(np.sqrt(evals)) @ v.T
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(w))


def _pareto(alpha: float, n: int = 64) -> np.ndarray:
    """Quantiles of a Pareto density ∝ λ^(-alpha), λ ≥ 1: a spectrum whose Hill α is close to ``alpha``."""
    q = (np.arange(n) + 0.5) / n
    return (1.0 - q) ** (-1.0 / (alpha - 1.0))


# ------------------------------------------------------------------------------------------ factors
def test_linear_map_known_answers():
    assert balance_factors({"a": 2.0, "b": 3.0, "c": 4.0}) == {"a": 0.5, "b": 1.0, "c": 1.5}
    f = balance_factors({"a": 2.0, "b": 4.0, "c": 2.5}, ratio=(0.6, 1.4))
    assert f["a"] == 0.6 and f["b"] == 1.4 and f["c"] == pytest.approx(0.6 + 0.25 * 0.8)


def test_mean_preserving_maps_known_answers():
    assert balance_factors({"a": 1.0, "b": 4.0}, map="sqrt") == pytest.approx({"a": 2 / 3, "b": 4 / 3})
    assert balance_factors({"a": 2.0, "b": 8.0}, map="log2") == pytest.approx({"a": 0.5, "b": 1.5})
    f = balance_factors({"a": 2.0, "b": 3.0, "c": 5.0}, map="linear_mean")
    assert np.mean(list(f.values())) == pytest.approx(1.0)
    assert f["a"] < f["b"] < f["c"]


def test_equal_or_failed_alphas_give_factor_one():
    assert balance_factors({"a": 3.0, "b": 3.0}) == {"a": 1.0, "b": 1.0}
    f = balance_factors({"a": 2.0, "b": math.nan, "c": 4.0})
    assert f == {"a": 0.5, "b": 1.0, "c": 1.5}
    assert balance_factors({"a": math.nan}, map="sqrt") == {"a": 1.0}


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(1.05, 30.0), min_size=2, max_size=12),
    st.sampled_from(["linear_mean", "sqrt", "log2"]),
)
def test_maps_are_monotone_and_mean_preserving(alphas, how):
    d = {str(i): a for i, a in enumerate(alphas)}
    f = balance_factors(d, map=how)
    if how == "linear_mean" and max(alphas) == min(alphas):
        assert set(f.values()) == {1.0}
        return
    assert np.mean(list(f.values())) == pytest.approx(1.0)
    order = sorted(d, key=d.get)
    assert all(f[a] <= f[b] + 1e-12 for a, b in zip(order, order[1:], strict=False))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(1.05, 30.0), min_size=2, max_size=12, unique=True))
def test_linear_map_spans_the_ratio(alphas):
    f = balance_factors({str(i): a for i, a in enumerate(alphas)}, ratio=(0.6, 1.4))
    assert min(f.values()) == pytest.approx(0.6) and max(f.values()) == pytest.approx(1.4)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"map": "cubic"}, "map must be one of"),
        ({"ratio": (1.5, 0.5)}, "ratio must be"),
        ({"ratio": 3}, "ratio"),
    ],
)
def test_bad_map_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        balance_factors({"a": 2.0}, **kwargs)


# ------------------------------------------------------------------------------------------ α of layers
def test_known_spectra_give_known_alphas_and_factors():
    model = _mlp(5)
    targets = {"1": 2.0, "2": 3.0, "3": 4.5}
    for name, a in targets.items():
        _with_spectrum(model[int(name)], _pareto(a), seed=int(name))
    opt = torch.optim.SGD(param_groups_per_layer(model), lr=0.1)
    tb = TempBalance(model, opt, map="linear")
    factors = tb.step()
    for name, a in targets.items():
        expected = fit_hill(_pareto(a)).alpha
        assert tb.alphas[name] == pytest.approx(expected, rel=1e-6)
        assert tb.alphas[name] == pytest.approx(a, rel=0.2)
    assert factors["1"] == 0.5 and factors["3"] == 1.5 and 0.5 < factors["2"] < 1.5
    assert tb.history[-1]["factors"] == factors


def test_power_law_estimator_is_wwtunes_fit():
    model = _mlp(3)
    _with_spectrum(model[1], _pareto(3.0))
    got = layer_alphas(model, ["1"], estimator="power_law")
    assert got["1"] == pytest.approx(fit_power_law(_pareto(3.0)).alpha, rel=1e-6)
    with pytest.raises(ValueError, match="estimator must be one of"):
        layer_alphas(model, ["1"], estimator="ks")


def test_nan_weights_keep_factor_one():
    model = _mlp(5)
    opt = torch.optim.SGD(param_groups_per_layer(model), lr=0.1)
    tb = TempBalance(model, opt)
    with torch.no_grad():
        model[2].weight[0, 0] = float("nan")
    f = tb.step()
    assert math.isnan(tb.alphas["2"]) and f["2"] == 1.0


# ------------------------------------------------------------------------------------------ skip rules
def _mixed_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(64, 64),  # 0: first
        nn.Linear(64, 64),  # 1
        nn.Linear(64, 40),  # 2: 40 eigenvalues < 50
        nn.Linear(40, 64),  # 3: 40
        nn.Linear(64, 64),  # 4
        nn.Embedding(100, 64),  # 5: not a default layer type
        nn.Linear(64, 64),  # 6: last
    )


@pytest.mark.parametrize(
    ("kwargs", "layers"),
    [
        ({}, ["1", "4"]),
        ({"skip_first_last": False}, ["0", "1", "4", "6"]),
        ({"min_evals": 1}, ["1", "2", "3", "4"]),
        ({"min_evals": 1, "skip_first_last": False}, ["0", "1", "2", "3", "4", "6"]),
        ({"layer_types": ["dense", "embedding"], "min_evals": 1}, ["1", "2", "3", "4", "5"]),
    ],
)
def test_skip_rules(kwargs, layers):
    model = _mixed_model()
    opt = torch.optim.SGD(param_groups_per_layer(model, layer_types=["dense", "embedding"]), lr=0.1)
    tb = TempBalance(model, opt, **kwargs)
    assert tb.layers == layers
    assert set(tb.step()) == set(layers)


# ------------------------------------------------------------------------------------------ composition
def _train_lrs(balance: bool, eta_min: float, epochs: int = 6) -> tuple[list, list, list]:
    """(group lrs seen by the scheduler, lrs used inside optimizer.step per layer, factors) of a run."""
    model = _mlp(5, seed=1)
    opt = torch.optim.SGD(param_groups_per_layer(model), lr=0.2, momentum=0.9)
    tb = TempBalance(model, opt) if balance else None
    used: list[dict[str, float]] = []
    opt.register_step_pre_hook(lambda o, a, k: used.append({g["name"]: g["lr"] for g in o.param_groups}))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs, eta_min=eta_min)
    x = torch.randn(32, 64, generator=torch.Generator().manual_seed(0))
    seen, factors = [], []
    for _ in range(epochs):
        for _ in range(2):
            opt.zero_grad()
            model(x).pow(2).mean().backward()
            opt.step()
        sched.step()
        factors.append(tb.step() if tb else {})
        seen.append([g["lr"] for g in opt.param_groups])
    return seen, used, factors


@pytest.mark.parametrize("eta_min", [0.0, 0.01])
def test_composes_exactly_with_cosine(eta_min):
    plain_seen, plain_used, _ = _train_lrs(False, eta_min)
    seen, used, factors = _train_lrs(True, eta_min)
    assert seen == plain_seen  # the scheduler's own values are untouched: never compounded
    for i, (u, p) in enumerate(zip(used, plain_used, strict=True)):
        f = factors[i // 2 - 1] if i >= 2 else {}
        for name, lr in p.items():
            assert u[name] == lr * f.get(name, 1.0)  # exactly cosine(t) × factor(t)
    assert any(f != 1.0 for f in factors[-1].values())


def test_effective_lrs_and_remove():
    model = _mlp(5)
    opt = torch.optim.SGD(param_groups_per_layer(model), lr=0.1)
    tb = TempBalance(model, opt)
    f = tb.step()
    assert tb.effective_lrs() == {n: 0.1 * f[n] for n in tb.layers}
    tb.remove()
    used = []
    opt.register_step_pre_hook(lambda o, a, k: used.append([g["lr"] for g in o.param_groups]))
    opt.step()
    assert used == [[0.1] * len(opt.param_groups)]


# ------------------------------------------------------------------------------------------ groups
def test_one_group_for_two_layers_is_an_error_naming_the_helper():
    model = _mlp(5)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match=r"'1' and '2'.*wwtune.training.param_groups_per_layer"):
        TempBalance(model, opt)


def test_param_groups_per_layer_splits_existing_groups():
    model = _mlp(3)
    decay = [p for p in model.parameters() if p.ndim == 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    groups = param_groups_per_layer(
        model,
        [{"params": decay, "name": "decay", "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
    )
    assert [g["name"] for g in groups] == ["decay/0", "decay/1", "decay/2", "0", "1", "2"]
    assert [g["weight_decay"] for g in groups] == [0.1] * 3 + [0.0] * 3
    opt = torch.optim.SGD(groups, lr=0.1)
    tb = TempBalance(model, opt, skip_first_last=False)
    f = tb.step()
    # weight and bias groups of one layer both get its factor
    tb._apply(opt, (), {})  # noqa: SLF001 - the pre-hook, called directly
    assert [g["lr"] for g in opt.param_groups] == [0.1 * f[n] for n in ("0", "1", "2")] * 2
    tb._restore(opt, (), {})  # noqa: SLF001
    with pytest.raises(ValueError, match="groups must be optimizer param-group dicts"):
        param_groups_per_layer(model, [[1, 2]])


def test_bad_arguments():
    model = _mlp(5)
    opt = torch.optim.SGD(param_groups_per_layer(model), lr=0.1)
    with pytest.raises(TypeError, match="optimizer must be"):
        TempBalance(model, "sgd")
    with pytest.raises(ValueError, match="layer_types must be one of"):
        TempBalance(model, opt, layer_types=["linear"])
    with pytest.raises(ValueError, match="min_evals must be an integer"):
        TempBalance(model, opt, min_evals=0)
    with pytest.raises(ValueError, match="budget must be an integer ≥ 1 but got 0"):
        EarlyFreezing(model, budget=0)
    with pytest.raises(ValueError, match="tolerance must be a number"):
        EarlyFreezing(model, budget=4, tolerance=-1)


# ------------------------------------------------------------------------------------------ freezing
def _sgd_epochs(model: nn.Module, opt: torch.optim.Optimizer, steps: int = 3) -> None:
    x = torch.randn(16, model[0].in_features, generator=torch.Generator().manual_seed(1))
    for _ in range(steps):
        opt.zero_grad()
        model(x).pow(2).mean().backward()
        opt.step()


def test_stable_layers_freeze_after_warmup_and_never_the_last():
    model = _mlp(4)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=0.1)
    ef = EarlyFreezing(model, budget=8, tolerance=math.inf)
    for t in range(1, 9):
        _sgd_epochs(model, opt)
        frozen = ef.step()
        assert frozen == ([] if t != 5 else ["0", "1", "2"])
    assert ef.frozen == {"0": 5, "1": 5, "2": 5}  # warm-up 4 = budget // 2, then all but the last
    assert all(p.requires_grad for p in model[3].parameters())
    assert not any(p.requires_grad for m in model[:3] for p in m.parameters())


def test_frozen_weights_stop_changing():
    model = _mlp(3)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=0.1)
    ef = EarlyFreezing(model, budget=2, warmup=0, window=1, tolerance=math.inf)
    _sgd_epochs(model, opt)
    assert ef.step() == ["0", "1"]
    before = [p.detach().clone() for p in model.parameters()]
    _sgd_epochs(model, opt)
    after = list(model.parameters())
    assert all(torch.equal(b, a) for b, a in zip(before[:4], after[:4], strict=True))
    assert not torch.equal(before[4], after[4])  # the last layer still trains


def test_freezing_goes_front_to_back():
    model = _mlp(4)
    ef = EarlyFreezing(model, budget=6, warmup=1, window=2, tolerance=0.05)
    rng = np.random.default_rng(0)
    for t in range(6):
        # layer 1's spectrum alternates between two tails; layers 0 and 2 never change
        _with_spectrum(model[1], _pareto(2.0 if t % 2 else 5.0), seed=int(rng.integers(100)))
        ef.step()
    assert ef.frozen == {"0": 2}  # 2 is stable but waits behind 1; 3 is the last layer


def test_small_layers_follow_the_next_judged_layer():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 16, 3), nn.Conv2d(16, 16, 3), nn.Flatten(), nn.Linear(16 * 16, 10))
    ef = EarlyFreezing(model, budget=2, warmup=0, window=1, tolerance=math.inf)
    assert ef.step() == ["0", "1"]  # conv 0 has 9 eigenvalues: frozen with conv 1, not judged


def _count_backward(model: nn.Module, x: torch.Tensor) -> int:
    out = model(x)
    with FlopCounterMode(display=False) as counter:
        out.pow(2).mean().backward()
    return counter.get_total_flops()


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_counted_backward_flops_match_torchs_flop_counter(kind):
    torch.manual_seed(0)
    if kind == "mlp":
        model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
        x = torch.randn(16, 64)
    else:
        model = nn.Sequential(
            nn.Conv2d(3, 64, 3, padding=1), nn.Conv2d(64, 64, 3), nn.Flatten(), nn.Linear(64 * 36, 10)
        )
        x = torch.randn(4, 3, 8, 8)
    ef = EarlyFreezing(model, budget=2, warmup=0, window=1, tolerance=math.inf)
    assert ef.saved_share == 0.0
    full = _count_backward(model, x)
    assert ef.backward_flops == {"total": full, "spent": full}
    ef.step()  # freezes all but the last layer
    partial = _count_backward(model, x)
    assert ef.backward_flops == {"total": 2 * full, "spent": full + partial}
    assert ef.saved_share == pytest.approx(1 - (full + partial) / (2 * full))
    assert 0 < partial < full
    if kind == "mlp":  # remove(): the counting hooks come off, the frozen layers stay frozen
        ef.remove()
        model(x).sum().backward()
        assert ef.backward_flops == {"total": 2 * full, "spent": full + partial}
        assert not model[0].weight.requires_grad and model[4].weight.requires_grad


def test_state_is_json_safe():
    import json

    model = _mlp(5)
    opt = torch.optim.SGD(param_groups_per_layer(model), lr=0.1)
    tb, ef = TempBalance(model, opt), EarlyFreezing(model, budget=2, warmup=0, window=1)
    tb.step(), ef.step()
    state = json.loads(json.dumps({"tb": tb.state(), "ef": ef.state()}))
    assert state["tb"]["history"][0]["factors"] == tb.factors
    assert state["ef"]["frozen"] == ef.frozen


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_model():
    model = _mlp(5).cuda()
    opt = torch.optim.SGD(param_groups_per_layer(model), lr=0.1)
    tb = TempBalance(model, opt)
    cpu = layer_alphas(model.cpu(), tb.layers)
    model.cuda()
    tb.step()
    assert tb.alphas == pytest.approx(cpu, rel=1e-6)
    ef = EarlyFreezing(model, budget=2, warmup=0, window=1, tolerance=math.inf)
    model(torch.randn(8, 64, device="cuda")).sum().backward()
    assert ef.step() == ["0", "1", "2", "3"]
