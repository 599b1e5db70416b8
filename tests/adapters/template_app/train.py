"""A tiny app of the lightning-hydra-template's shape (configs/ with a `callbacks` group
instantiated into the Trainer), on synthetic data. Its callbacks/default.yaml has the one
line hotcb needs (`- hotcb`); nothing else in it knows hotcb."""

from __future__ import annotations

import time
from typing import Any

import hydra
import lightning.pytorch as L
import torch
from omegaconf import DictConfig


class Tiny(L.LightningModule):
    def __init__(self, sleep: float = 0.0) -> None:
        super().__init__()
        self.sleep = sleep
        self.net = torch.nn.Linear(4, 1)

    def training_step(self, batch: Any, batch_idx: int) -> Any:
        if self.sleep:
            time.sleep(self.sleep)
        x, y = batch
        return torch.nn.functional.mse_loss(self.net(x), y)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self.log("val/flat", 1.0)  # never improves: EarlyStopping counts every check

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD(self.parameters(), lr=0.01, momentum=0.9)


def loader(n: int) -> Any:
    x = torch.randn(n, 4, generator=torch.Generator().manual_seed(0))
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, x.sum(1, keepdim=True)))


@hydra.main(config_path="configs", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> None:
    callbacks = [hydra.utils.instantiate(node) for node in (cfg.get("callbacks") or {}).values()]
    logger = hydra.utils.instantiate(cfg.logger)
    trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=logger)
    trainer.fit(Tiny(cfg.sleep), loader(cfg.batches), loader(1))


if __name__ == "__main__":
    main()
