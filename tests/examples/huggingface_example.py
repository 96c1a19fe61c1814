"""wwtune with Trainer.hyperparameter_search(backend="optuna") and no eval dataset: α-scored study, a
pruned trial with its reason, the trust report. A tiny randomly initialised BERT; nothing is downloaded."""

import logging
import tempfile

import optuna
import torch
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    PrinterCallback,
    Trainer,
    TrainingArguments,
)

import wwtune
from wwtune.integrations.huggingface import WWTuneCallback, compute_objective

g = torch.Generator().manual_seed(0)
tokens = torch.randint(3, 64, (768, 16), generator=g)
labels = (tokens < 20).sum(dim=1).gt(3).long()  # a sequence task: are more than 3 tokens "small"?


class Sequences(torch.utils.data.Dataset):
    def __init__(self, ids: torch.Tensor, y: torch.Tensor) -> None:
        self.ids, self.y = ids, y

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict:
        return {"input_ids": self.ids[i], "attention_mask": torch.ones_like(self.ids[i]), "labels": self.y[i]}


train = Sequences(tokens[:512], labels[:512])
test_ids, test_labels = tokens[512:], labels[512:]


def model_init(trial=None):
    torch.manual_seed(0 if trial is None else trial.number)
    config = BertConfig(
        vocab_size=64,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        max_position_embeddings=32,
        num_labels=2,
    )
    return BertForSequenceClassification(config)


def hp_space(trial: optuna.Trial) -> dict:
    return {"learning_rate": trial.suggest_float("learning_rate", 1e-4, 3e-2, log=True)}


def heldout_accuracy(model) -> float:
    model.eval()
    with torch.no_grad():
        logits = model(input_ids=test_ids, attention_mask=torch.ones_like(test_ids)).logits
    return (logits.argmax(dim=1) == test_labels).float().mean().item()


def main(n_trials: int = 10) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    logging.getLogger("transformers").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            output_dir=out,
            num_train_epochs=4,
            per_device_train_batch_size=32,
            save_strategy="no",
            report_to=[],
            disable_tqdm=True,
            use_cpu=True,
            logging_strategy="epoch",
        )
        trainer = Trainer(model_init=model_init, args=args, train_dataset=train)  # no eval_dataset
        trainer.remove_callback(PrinterCallback)  # no per-epoch log lines
        # attaches itself to the trainer; the task's loss falls slowly, so a 5% drop is the sanity bar
        wwtune_cb = WWTuneCallback(trainer, heldout=heldout_accuracy, min_loss_drop=0.05)
        pruner = wwtune.AlphaPruner(wrapped=optuna.pruners.MedianPruner(n_startup_trials=3))
        best = trainer.hyperparameter_search(
            backend="optuna",
            hp_space=hp_space,
            n_trials=n_trials,
            direction="minimize",
            compute_objective=compute_objective,
            pruner=pruner,
            sampler=optuna.samplers.TPESampler(seed=0),
            catch=(wwtune.TrialFailed,),
        )
    study = wwtune_cb.study
    print(f"best trial #{best.run_id}: score {best.objective:.3f}, {best.hyperparameters}")
    for t in study.trials:
        if t.state == optuna.trial.TrialState.PRUNED:
            print(f"trial #{t.number} pruned: {t.user_attrs['wwtune.prune_reason']['message']}")
        if t.state == optuna.trial.TrialState.FAIL:
            print(f"trial #{t.number} failed: {t.user_attrs['wwtune.fail_reason']}")
    print(wwtune.format_trust(wwtune.store_trust(study, heldout_direction="maximize")))
    return study


if __name__ == "__main__":
    main()
