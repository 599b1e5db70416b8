"""Lightning + hotcb: a tiny LightningModule on synthetic data, with live callbacks.

    pip install 'hydra-hotcb[lightning]'
    python examples/lightning_train.py --steps 2000
    hotcb cb set heartbeat every=50          # from another terminal, while it trains
    hotcb cb load grads --path hotcb.modules.cb.callbacks.grad_stats --symbol GradStatsCallback

The run dir is ``lightning_logs/version_N/hotcb`` (the trainer's log dir; or ``--run-dir``).
"""

from __future__ import annotations

import argparse
from typing import Any

import lightning.pytorch as L
import torch

from hotcb.adapters.lightning import HotCallbackController


class Regressor(L.LightningModule):
    def __init__(self, lr: float = 0.01) -> None:
        super().__init__()
        self.lr = lr
        self.net = torch.nn.Sequential(
            torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1)
        )

    def training_step(self, batch: Any, batch_idx: int) -> Any:
        x, y = batch
        return torch.nn.functional.mse_loss(self.net(x), y)

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD(self.parameters(), lr=self.lr, momentum=0.9)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--run-dir", default=None)
    args = parser.parse_args()
    torch.manual_seed(0)
    x = torch.randn(4096, 16)
    data = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x, x.sum(1, keepdim=True)), batch_size=32
    )
    hot = HotCallbackController(
        run_dir=args.run_dir,
        callbacks={
            "heartbeat": {
                "_target_": "hotcb.modules.cb.callbacks.heartbeat.HeartbeatCallback",
                "every": 100,
            },
            "lr_monitor": {
                "_target_": "hotcb.modules.cb.callbacks.lr_monitor.LrMonitorCallback",
                "every": 100,
            },
        },
    )
    trainer = L.Trainer(
        max_steps=args.steps,
        accelerator="cpu",
        callbacks=[hot],
        enable_progress_bar=False,
        enable_checkpointing=False,
    )
    trainer.fit(Regressor(), data)


if __name__ == "__main__":
    main()
