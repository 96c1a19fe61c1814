"""Lightning and Hugging Face Trainer callbacks run for real on CPU (extras wwtune[lightning,huggingface]),
and the three framework examples of docs/integrations.md (tests/examples/), each a scored study with a
pruned trial and the trust report."""

import logging
import math
import sys
from pathlib import Path

import lightning
import optuna
import pytest
import torch
from optuna.trial import TrialState
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import wwtune
from wwtune.integrations import huggingface as wwtune_hf
from wwtune.integrations.lightning import WWTuneCallback

sys.path.insert(0, str(Path(__file__).parent / "examples"))
optuna.logging.set_verbosity(optuna.logging.ERROR)
logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
torch.set_num_threads(1)


def teacher(n=512, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 64, generator=g)
    return x, (x @ torch.randn(64, 4, generator=g)).argmax(dim=1)


class TrainOnly(lightning.LightningModule):
    """No validation_step, no val dataloader: the case optuna-integration's callback never prunes."""

    def __init__(self, lr=0.1, log_as="train_loss"):
        super().__init__()
        self.lr, self.log_as = lr, log_as
        self.net = nn.Sequential(nn.Linear(64, 96), nn.ReLU(), nn.Linear(96, 4))

    def training_step(self, batch, batch_idx):
        loss = nn.functional.cross_entropy(self.net(batch[0]), batch[1])
        self.log(self.log_as, loss, on_step=False, on_epoch=True)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr, momentum=0.9)


def quiet_trainer(callback, epochs):
    """A CPU Trainer with ``callback`` and nothing else: no logger, checkpoints, progress bar or summary."""
    return lightning.Trainer(
        max_epochs=epochs,
        callbacks=[callback],
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )


def fit(callback, module=None, epochs=3):
    lightning.seed_everything(0, verbose=False)
    module = module or TrainOnly()
    trainer = quiet_trainer(callback, epochs)
    trainer.fit(module, train_dataloaders=DataLoader(TensorDataset(*teacher()), batch_size=64))
    return module


def test_lightning_callback_scores_each_epoch_without_a_validation_loop():
    def objective(trial):
        cb = WWTuneCallback(trial)
        fit(cb)
        return cb.finish(heldout=0.5)

    study = optuna.create_study()
    study.optimize(objective, n_trials=1)
    trial = study.trials[0]
    # issue 21: the value is the CLI's default score, log10(final training loss) + 0.5 x the α score
    final_loss = trial.user_attrs["wwtune.losses"][-1][1]
    expected = math.log10(final_loss) + 0.5 * trial.user_attrs["wwtune.score"]
    assert trial.state == TrialState.COMPLETE and trial.value == pytest.approx(expected)
    assert sorted(trial.intermediate_values) == [1, 2, 3] and trial.user_attrs["wwtune.budget"] == 3
    assert trial.user_attrs["wwtune.layers"]["name"] == ["net.0"]  # net.2 has 4 eigenvalues (< 8)
    losses = [loss for _, loss in trial.user_attrs["wwtune.losses"]]
    assert len(losses) == 3 and losses[-1] < losses[0]  # the epoch means of the logged training loss


def test_lightning_pruned_trial_keeps_its_reason():
    def objective(trial):
        cb = WWTuneCallback(trial)
        fit(cb, epochs=4)
        return cb.finish()

    study = optuna.create_study(pruner=optuna.pruners.ThresholdPruner(upper=0.0))  # prunes any score
    study.optimize(objective, n_trials=1)
    trial = study.trials[0]
    assert trial.state == TrialState.PRUNED and sorted(trial.intermediate_values) == [1]
    assert trial.user_attrs["wwtune.prune_reason"]["message"].startswith(
        "ThresholdPruner pruned the trial at step 1"
    )


def test_lightning_callback_names_the_missing_loss_metric():
    trial = optuna.create_study().ask()
    with pytest.raises(KeyError, match=r"monitor='train_loss'.*logged: \['loss'\].*self.log\('train_loss'"):
        fit(WWTuneCallback(trial), TrainOnly(log_as="loss"), epochs=1)


class StepLogged(TrainOnly):
    """Logs as Lightning's docs teach (``self.log("train_loss", loss)``), ``on_epoch`` as given; keeps each
    batch's loss and size, and can turn the loss to NaN from an epoch on (a diverging run)."""

    def __init__(self, lr=0.1, on_epoch=None, nan_from_epoch=None):
        super().__init__(lr=lr)
        self.on_epoch, self.nan_from_epoch, self.batches = on_epoch, nan_from_epoch, []

    def training_step(self, batch, batch_idx):
        loss = nn.functional.cross_entropy(self.net(batch[0]), batch[1])
        if self.nan_from_epoch is not None and self.current_epoch + 1 >= self.nan_from_epoch:
            loss = loss * float("nan")
        self.batches.append((self.current_epoch + 1, loss.item(), len(batch[0])))
        kwargs = {} if self.on_epoch is None else {"on_epoch": self.on_epoch}
        self.log("train_loss", loss, **kwargs)
        return loss


def fit_batches(callback, module, epochs=3):
    """fit() on 500 samples in batches of 64 (the last batch has 52): a mean differs from the last batch."""
    lightning.seed_everything(0, verbose=False)
    trainer = quiet_trainer(callback, epochs)
    x, y = teacher(500)
    trainer.fit(module, train_dataloaders=DataLoader(TensorDataset(x, y), batch_size=64))
    return trainer


def test_lightning_callback_reads_the_epoch_mean_of_the_training_loss():
    def objective(trial):
        cb = WWTuneCallback(trial)
        fit_batches(cb, module)
        return cb.finish()

    module = StepLogged(on_epoch=True)  # Lightning keeps train_loss_step and train_loss_epoch
    study = optuna.create_study()
    study.optimize(objective, n_trials=1)
    stored = [loss for _, loss in study.trials[0].user_attrs["wwtune.losses"]]
    for epoch, loss in enumerate(stored, start=1):
        batches = [(loss, n) for e, loss, n in module.batches if e == epoch]
        mean = sum(loss * n for loss, n in batches) / sum(n for _, n in batches)
        assert loss == pytest.approx(mean, rel=1e-5) and loss != pytest.approx(batches[-1][0], rel=1e-3)


def test_lightning_callback_refuses_a_loss_logged_per_step_only():
    trial = optuna.create_study().ask()
    with pytest.raises(ValueError, match=r"'train_loss' is logged per step only .*on_epoch=True"):
        fit_batches(WWTuneCallback(trial), StepLogged(), epochs=1)


def test_lightning_defaults_keep_the_study_going_as_the_cli_does():
    def objective(trial):
        cb = WWTuneCallback(trial)
        trainer = fit_batches(cb, modules[trial.number], epochs=3)
        assert cb.finish() == cb.finish()  # finish runs once
        return cb.finish() if trainer.current_epoch else float("nan")

    # a run that does not learn (lr 0): infeasible; a diverging one: stopped at epoch 2, infeasible, worst
    modules = [StepLogged(lr=0.0, on_epoch=True), StepLogged(on_epoch=True, nan_from_epoch=2)]
    study = optuna.create_study()
    study.optimize(objective, n_trials=2)  # no catch=: neither ends the study
    flat, diverged = study.trials
    assert flat.state == diverged.state == TrialState.COMPLETE
    assert "did not fall" in flat.user_attrs["wwtune.infeasible_reason"]
    assert diverged.value == float("inf") and diverged.user_attrs["wwtune.infeasible_reason"].startswith(
        "diverged: training loss became nan at step 2"
    )
    assert max(e for e, _, _ in modules[1].batches) == 2  # training stopped at the diverged epoch
    assert flat.system_attrs["constraints"] == diverged.system_attrs["constraints"] == [1.0]


# ------------------------------------------------------------------------------------------ Hugging Face
def test_hf_hyperparameter_search_runs_without_an_eval_dataset(monkeypatch, tmp_path):
    import huggingface_example as ex
    from transformers import PrinterCallback, Trainer, TrainingArguments

    def no_evaluate(self, *a, **k):
        raise AssertionError("trainer.evaluate() was called")

    monkeypatch.setattr(Trainer, "evaluate", no_evaluate)
    args = TrainingArguments(
        output_dir=str(tmp_path),
        num_train_epochs=2,
        per_device_train_batch_size=64,
        save_strategy="no",
        report_to=[],
        disable_tqdm=True,
        use_cpu=True,
        logging_steps=3,
    )  # logs off the epoch boundary: the callback forces one there
    trainer = Trainer(model_init=ex.model_init, args=args, train_dataset=ex.train)
    trainer.remove_callback(PrinterCallback)
    cb = wwtune_hf.WWTuneCallback(trainer, heldout=ex.heldout_accuracy, min_loss_drop=None)
    best = trainer.hyperparameter_search(
        backend="optuna",
        hp_space=ex.hp_space,
        n_trials=2,
        direction="minimize",
        compute_objective=wwtune_hf.compute_objective,
    )
    trials = cb.study.trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2
    assert best.objective == min(t.value for t in trials)
    for t in trials:
        assert sorted(t.intermediate_values) == [8, 16]  # epoch ends, in optimizer steps (512 / 64 per epoch)
        assert t.user_attrs["wwtune.budget"] == 16 and t.user_attrs["wwtune.heldout"] is not None
        assert "bert.encoder.layer.0.attention.self.query" in t.user_attrs["wwtune.layers"]["name"]


@pytest.mark.parametrize("layer_rule", [False, True])
def test_hf_callback_in_an_own_objective_prunes_with_the_reason(tmp_path, layer_rule):
    import huggingface_example as ex
    from transformers import PrinterCallback, Trainer, TrainingArguments

    def objective(trial):
        cb = wwtune_hf.WWTuneCallback(trial=trial)
        args = TrainingArguments(
            output_dir=str(tmp_path),
            num_train_epochs=3,
            per_device_train_batch_size=64,
            learning_rate=1e-3,
            save_strategy="no",
            report_to=[],
            disable_tqdm=True,
            use_cpu=True,
            logging_strategy="epoch",
        )
        trainer = Trainer(model=ex.model_init(), args=args, train_dataset=ex.train, callbacks=[cb])
        trainer.remove_callback(PrinterCallback)
        trainer.train()
        return cb.finish()

    if layer_rule:  # on layer diagnostics: a strict under-trained rule (any eligible layer with α > 2),
        # after AlphaPruner's warm-up of half the budget (24 steps)
        pruner = wwtune.AlphaPruner(under_trained_alpha=2.0, under_trained_fraction=0.0)
    else:
        pruner = optuna.pruners.ThresholdPruner(upper=0.0)
    study = optuna.create_study(pruner=pruner)
    study.optimize(objective, n_trials=1)
    trial = study.trials[0]
    reason = trial.user_attrs["wwtune.prune_reason"]
    if layer_rule:
        assert trial.state == TrialState.PRUNED and sorted(trial.intermediate_values) == [8, 16]
        assert reason["rule"] == "under_trained" and reason["step"] == 16, reason
    else:
        assert trial.state == TrialState.PRUNED and sorted(trial.intermediate_values) == [8]
        assert "ThresholdPruner pruned the trial at step 8" in reason["message"]


def _hf_args(tmp_path, **kwargs):
    from transformers import TrainingArguments

    base = dict(
        output_dir=str(tmp_path),
        per_device_train_batch_size=64,
        save_strategy="no",
        report_to=[],
        disable_tqdm=True,
        use_cpu=True,
    )
    return TrainingArguments(**{**base, **kwargs})


def test_hf_callback_attached_twice_acts_once_in_hyperparameter_search(tmp_path):
    import huggingface_example as ex
    from transformers import PrinterCallback, Trainer

    args = _hf_args(tmp_path, num_train_epochs=2, logging_strategy="epoch")
    trainer = Trainer(model_init=ex.model_init, args=args, train_dataset=ex.train)
    trainer.remove_callback(PrinterCallback)
    finished = []  # the held-out metric is computed once per trial, when the trial is finished

    def heldout(model):
        finished.append(1)
        return ex.heldout_accuracy(model)

    cb = wwtune_hf.WWTuneCallback(trainer, heldout=heldout, min_loss_drop=None)
    trainer.add_callback(cb)  # the usual call, after the callback attached itself
    trainer.hyperparameter_search(
        backend="optuna", hp_space=ex.hp_space, n_trials=1, compute_objective=wwtune_hf.compute_objective
    )
    trial = cb.study.trials[0]
    assert trial.state == TrialState.COMPLETE and len(finished) == 1
    assert [step for step, _ in trial.user_attrs["wwtune.losses"]] == [8, 16]  # once per epoch end


def test_hf_own_objective_callbacks_list_three_epochs_no_eval_set(tmp_path):
    """A 3-epoch fine-tune with no eval set: Trainer(callbacks=[cb]) (and add_callback again) works, acts
    once, and the small loss drop of a short run does not end the trial (the short-run rule)."""
    import huggingface_example as ex
    from transformers import PrinterCallback, Trainer

    def objective(trial):
        cb = wwtune_hf.WWTuneCallback(trial=trial)
        args = _hf_args(tmp_path, num_train_epochs=3, learning_rate=3e-4, logging_strategy="epoch")
        trainer = Trainer(model=ex.model_init(), args=args, train_dataset=ex.train, callbacks=[cb])
        trainer.add_callback(cb)
        trainer.remove_callback(PrinterCallback)
        trainer.train()
        value = cb.finish(heldout=ex.heldout_accuracy(trainer.model))
        assert cb.finish() == value
        return value

    study = optuna.create_study()
    study.optimize(objective, n_trials=1)  # the defaults: no catch= needed
    trial = study.trials[0]
    losses = trial.user_attrs["wwtune.losses"]
    assert trial.state == TrialState.COMPLETE and [step for step, _ in losses] == [8, 16, 24]
    drop = (losses[0][1] - losses[-1][1]) / losses[0][1]
    assert 0 < drop < 0.1, losses  # below the fixed 10%, yet feasible: it fell at every epoch
    assert trial.user_attrs["wwtune.constraint"] == [0.0]
    assert "short run (3 loss values < 5)" in trial.user_attrs["wwtune.loss_rule"]


def test_hf_callback_without_trial_or_trainer_names_both_ways():
    with pytest.raises(ValueError, match=r"WWTuneCallback\(trial=trial\) in Trainer\(callbacks=\[cb\]\)"):
        wwtune_hf.WWTuneCallback()


def test_compute_objective_reads_the_score_and_names_what_is_missing():
    assert wwtune_hf.compute_objective({"wwtune_score": 0.25, "eval_loss": 3.0}) == 0.25
    with pytest.raises(KeyError, match=r"no 'wwtune_score' in the metrics \['eval_loss'\]"):
        wwtune_hf.compute_objective({"eval_loss": 3.0})


# ---------------------------------------------------------------------------------- the README examples
def _check_example(study, capsys):
    out = capsys.readouterr().out
    states = [t.state for t in study.trials]
    assert TrialState.COMPLETE in states and TrialState.PRUNED in states
    pruned = [t for t in study.trials if t.state == TrialState.PRUNED]
    assert all(t.user_attrs["wwtune.prune_reason"]["message"] in out for t in pruned)
    assert f"best trial #{study.best_trial.number}: score {study.best_value:.3f}" in out
    assert "Trust in the α score:" in out and study.user_attrs["wwtune.trust"]["n"] >= 2
    return out


@pytest.mark.slow
def test_readme_plain_optuna_example(capsys):
    import plain_optuna

    _check_example(plain_optuna.main(), capsys)


@pytest.mark.slow
def test_readme_lightning_example(capsys):
    import lightning_example

    _check_example(lightning_example.main(n_trials=6), capsys)


@pytest.mark.slow
def test_readme_huggingface_example(capsys):
    import huggingface_example

    _check_example(huggingface_example.main(n_trials=5), capsys)


@pytest.mark.parametrize("name", ["plain_optuna", "lightning_example", "huggingface_example"])
def test_readme_shows_each_example_file_verbatim(name):
    readme = (Path(__file__).parents[1] / "docs" / "integrations.md").read_text()  # the guide's page
    code = (Path(__file__).parent / "examples" / f"{name}.py").read_text().rstrip()
    assert f"tests/examples/{name}.py verbatim" in readme
    assert f"```python\n{code}\n```" in readme
