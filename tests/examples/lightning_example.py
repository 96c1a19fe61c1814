"""wwtune with PyTorch Lightning, no validation loop: α-scored study, a pruned trial, the trust report."""

import logging

import lightning
import optuna
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import wwtune
from wwtune.integrations.lightning import WWTuneCallback

g = torch.Generator().manual_seed(0)
x = torch.randn(1536, 64, generator=g)
y = (x @ torch.randn(64, 4, generator=g)).argmax(dim=1)  # labels of a random linear teacher
train = TensorDataset(x[:1024], y[:1024])
x_test, y_test = x[1024:], y[1024:]


class Classifier(lightning.LightningModule):
    def __init__(self, lr: float) -> None:
        super().__init__()
        self.lr = lr
        self.net = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 4))

    def training_step(self, batch, batch_idx):
        xb, yb = batch
        loss = nn.functional.cross_entropy(self.net(xb), yb)
        self.log("train_loss", loss, on_step=False, on_epoch=True)  # what WWTuneCallback reads
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr, momentum=0.9)


def objective(trial: optuna.Trial) -> float:
    lightning.seed_everything(trial.number, verbose=False)
    model = Classifier(lr=trial.suggest_float("lr", 1e-3, 0.2, log=True))
    wwtune_cb = WWTuneCallback(trial)  # acts at each train-epoch end; budget = max_epochs
    trainer = lightning.Trainer(
        max_epochs=6,
        callbacks=[wwtune_cb],
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, train_dataloaders=DataLoader(train, batch_size=64))  # may raise optuna.TrialPruned
    with torch.no_grad():
        accuracy = (model.net(x_test).argmax(dim=1) == y_test).float().mean().item()
    return wwtune_cb.finish(heldout=accuracy)  # the α score; the accuracy is stored beside it


def main(n_trials: int = 12) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # failed trials: reasons printed below, no tracebacks
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)  # no "GPU available" lines per trial
    study = optuna.create_study(pruner=wwtune.AlphaPruner(), sampler=optuna.samplers.TPESampler(seed=0))
    study.optimize(objective, n_trials=n_trials, catch=(wwtune.TrialFailed,))
    print(f"best trial #{study.best_trial.number}: score {study.best_value:.3f}, {study.best_params}")
    for t in study.trials:
        if t.state == optuna.trial.TrialState.PRUNED:
            print(f"trial #{t.number} pruned: {t.user_attrs['wwtune.prune_reason']['message']}")
        if t.state == optuna.trial.TrialState.FAIL:
            print(f"trial #{t.number} failed: {t.user_attrs['wwtune.fail_reason']}")
    print(wwtune.format_trust(wwtune.store_trust(study, heldout_direction="maximize")))
    return study


if __name__ == "__main__":
    main()
