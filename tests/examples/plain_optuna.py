"""wwtune from a plain Optuna objective: α-scored study, a pruned trial with its reason, the trust report."""

import optuna
import torch
from torch import nn

import wwtune

g = torch.Generator().manual_seed(0)
x = torch.randn(1536, 64, generator=g)
y = (x @ torch.randn(64, 4, generator=g)).argmax(dim=1)  # labels of a random linear teacher
x_train, y_train, x_test, y_test = x[:1024], y[:1024], x[1024:], y[1024:]


def objective(trial: optuna.Trial) -> float:
    lr = trial.suggest_float("lr", 1e-3, 0.2, log=True)
    torch.manual_seed(trial.number)
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 4))
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    bridge = wwtune.TrialBridge(trial, budget=6)  # budget: the number of report steps (epochs here)
    for epoch in range(1, 7):
        for i in range(0, 1024, 64):
            loss = nn.functional.cross_entropy(model(x_train[i : i + 64]), y_train[i : i + 64])
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            train_loss = nn.functional.cross_entropy(model(x_train), y_train).item()
        bridge.report(epoch, model, train_loss)  # analyses the weights; may raise optuna.TrialPruned
    with torch.no_grad():
        accuracy = (model(x_test).argmax(dim=1) == y_test).float().mean().item()
    return bridge.finish(heldout=accuracy)  # the α score; the accuracy is stored beside it, not optimised


def main(n_trials: int = 16) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # failed trials: reasons printed below, no tracebacks
    pruner = wwtune.AlphaPruner()  # layer rules: under-trained, traps, rank collapse, divergence
    study = optuna.create_study(pruner=pruner, sampler=optuna.samplers.TPESampler(seed=0))
    # catch: a trial failing a sanity rule (NaN loss, loss not falling) is recorded FAIL, the study goes on
    study.optimize(objective, n_trials=n_trials, catch=(wwtune.TrialFailed,))
    print(f"best trial #{study.best_trial.number}: score {study.best_value:.3f}, {study.best_params}")
    for t in study.trials:
        if t.state == optuna.trial.TrialState.PRUNED:
            print(f"trial #{t.number} pruned: {t.user_attrs['wwtune.prune_reason']['message']}")
        if t.state == optuna.trial.TrialState.FAIL:
            print(f"trial #{t.number} failed: {t.user_attrs['wwtune.fail_reason']}")
    report = wwtune.store_trust(study, heldout_direction="maximize")  # α score vs held-out accuracy
    print(wwtune.format_trust(report))
    return study


if __name__ == "__main__":
    main()
