"""A user's own Hydra app, tuned by `hydra/sweeper=wwtune` (tests/test_hydra_sweeper.py,
docs/hydra-sweeper.md): it trains a small MLP on a random teacher's labels and returns its α score."""

import json
from pathlib import Path

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig
from torch import nn

import wwtune


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float:
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(1)
    x = torch.randn(512, 64)
    y = (x @ torch.randn(64, 4)).argmax(dim=1)
    model = nn.Sequential(nn.Linear(64, cfg.width), nn.ReLU(), nn.Linear(cfg.width, 4))
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=0.9)
    for _ in range(cfg.epochs):
        for i in range(0, 512, 64):
            loss = nn.functional.cross_entropy(model(x[i : i + 64]), y[i : i + 64])
            opt.zero_grad()
            loss.backward()
            opt.step()
    value = wwtune.score_model(model, wwtune.Score(min_evals=8))
    seen = {"lr": cfg.lr, "width": cfg.width, "epochs": cfg.epochs, "value": value}
    (Path(HydraConfig.get().runtime.output_dir) / "seen.json").write_text(json.dumps(seen))
    return value


if __name__ == "__main__":
    main()
