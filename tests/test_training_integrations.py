"""The Lightning and Hugging Face callbacks of TempBalance and EarlyFreezing (one step per epoch)."""

import logging
import math
import sys
from pathlib import Path

import lightning
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from wwtune.integrations import huggingface_training as hf
from wwtune.integrations.lightning_training import EarlyFreezingCallback, TempBalanceCallback
from wwtune.training import param_groups_per_layer

sys.path.insert(0, str(Path(__file__).parent / "examples"))
logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
torch.set_num_threads(1)


class Deep(lightning.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(
            *[m for _ in range(4) for m in (nn.Linear(64, 64), nn.ReLU())], nn.Linear(64, 4)
        )

    def training_step(self, batch, batch_idx):
        return nn.functional.cross_entropy(self.net(batch[0]), batch[1])

    def configure_optimizers(self):
        opt = torch.optim.SGD(param_groups_per_layer(self), lr=0.05, momentum=0.9)
        return {"optimizer": opt, "lr_scheduler": torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=3)}


def _data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 64, generator=g)
    return DataLoader(TensorDataset(x, (x @ torch.randn(64, 4, generator=g)).argmax(1)), batch_size=64)


def test_lightning_callbacks_step_each_epoch():
    lightning.seed_everything(0, verbose=False)
    module = Deep()
    balance = TempBalanceCallback(map="sqrt")
    freeze = EarlyFreezingCallback(warmup=1, window=1, tolerance=math.inf)
    trainer = lightning.Trainer(
        max_epochs=3,
        callbacks=[balance, freeze],
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, train_dataloaders=_data())
    assert balance.balance.layers == ["net.2", "net.4", "net.6"]
    assert [h["step"] for h in balance.balance.history] == [1, 2, 3]
    assert sum(balance.balance.factors.values()) == pytest.approx(3.0)  # sqrt map: mean-preserving
    assert freeze.freezing.budget == 3  # the Trainer's max_epochs
    assert freeze.freezing.frozen == {"net.0": 2, "net.2": 2, "net.4": 2, "net.6": 2}
    assert not module.net[0].weight.requires_grad and module.net[8].weight.requires_grad
    assert 0 < freeze.freezing.saved_share < 1


def _hf_trainer(tmp_path, callbacks, epochs=2):
    import huggingface_example as ex
    from transformers import PrinterCallback, Trainer, TrainingArguments

    model = ex.model_init()
    args = TrainingArguments(
        output_dir=str(tmp_path),
        num_train_epochs=epochs,
        per_device_train_batch_size=64,
        save_strategy="no",
        report_to=[],
        disable_tqdm=True,
        use_cpu=True,
        logging_strategy="no",
    )
    opt = torch.optim.AdamW(param_groups_per_layer(model), lr=1e-3)
    trainer = Trainer(
        model=model, args=args, train_dataset=ex.train, optimizers=(opt, None), callbacks=callbacks
    )
    trainer.remove_callback(PrinterCallback)
    return trainer, model


def test_hf_callbacks_step_each_epoch(tmp_path):
    balance = hf.TempBalanceCallback()
    freeze = hf.EarlyFreezingCallback(warmup=0, window=1, tolerance=math.inf)
    trainer, model = _hf_trainer(tmp_path, [balance, freeze])
    trainer.train()
    assert len(balance.balance.history) == 2 and len(balance.balance.layers) >= 4
    assert set(balance.balance.factors) == set(balance.balance.layers)
    assert freeze.freezing.budget == 2
    assert set(freeze.freezing.frozen.values()) == {1}
    assert freeze.freezing.layers[-1] not in freeze.freezing.frozen  # the classifier keeps training
    assert not model.bert.encoder.layer[0].attention.self.query.weight.requires_grad


def test_hf_callbacks_every_k_steps(tmp_path):
    balance = hf.TempBalanceCallback(every_steps=4)
    freeze = hf.EarlyFreezingCallback(every_steps=4, tolerance=0.0)
    trainer, _ = _hf_trainer(tmp_path, [balance, freeze])
    trainer.train()  # 512 examples / 64 = 8 steps per epoch, 2 epochs
    assert len(balance.balance.history) == 4
    assert freeze.freezing.budget == 4 and freeze.freezing.steps == 4


def test_hf_callback_bad_every_steps():
    with pytest.raises(ValueError, match="every_steps must be a positive integer or None but got 0"):
        hf.TempBalanceCallback(every_steps=0)
