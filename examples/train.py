"""A small Hydra training app with live hotcb callbacks.

    python examples/train.py 'hotcb/callbacks=[timing,heartbeat]'
    hotcb cb set heartbeat every=5        # from another terminal, while it trains
    hotcb export-config                   # afterwards: freeze the live changes

A torch MLP learns a synthetic regression task on the CPU. The loop emits
``train_begin``, ``after_backward`` and ``train_step_end`` (every step), ``val_end``
(every ``val_every`` steps) and ``train_end``, and stops early when a callback asks
(``hotcb.requests.stop_requested``); the env carries ``step``, ``epoch``, ``loss``, ``model``,
``optimizer``, ``log`` and ``run_dir``. Ctrl-C stops it cleanly (exit code 130): the
ledger and the state are complete and ``hotcb export-config`` still works.
"""

from __future__ import annotations

import logging
import sys
import time

import hydra
import torch
from omegaconf import DictConfig

from hotcb.kernel import HotKernel

log = logging.getLogger(__name__)


def say(message: str) -> None:
    print(message, flush=True)


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    torch.manual_seed(cfg.seed)
    model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr)
    w_true = torch.randn(16, 1)
    x_val = torch.randn(256, 16)
    y_val = x_val @ w_true

    kernel = HotKernel.from_config(cfg)
    say(f"hotcb run dir: {kernel.run_dir.path}")
    env = {
        "step": 0,
        "epoch": 0,
        "model": model,
        "optimizer": optimizer,
        "log": say,
        "run_dir": str(kernel.run_dir.path),
    }
    steps_per_epoch = 100
    interrupted = False
    try:
        kernel.apply(env, ["train_begin"])
        for step in range(1, cfg.steps + 1):
            x = torch.randn(cfg.batch_size, 16)
            y = x @ w_true + 0.01 * torch.randn(cfg.batch_size, 1)
            optimizer.zero_grad(set_to_none=True)
            loss = torch.nn.functional.mse_loss(model(x), y)
            loss.backward()
            optimizer.step()
            env["step"], env["epoch"], env["loss"] = (
                step,
                (step - 1) // steps_per_epoch,
                loss.item(),
            )
            kernel.apply(env, ["train_step_end"])
            if step % cfg.val_every == 0:
                with torch.no_grad():
                    env["val_loss"] = torch.nn.functional.mse_loss(model(x_val), y_val).item()
                say(f"step {step}: loss {env['loss']:.4f} val_loss {env['val_loss']:.4f}")
                kernel.apply(env, ["val_end"])
            if cfg.step_sleep:
                time.sleep(cfg.step_sleep)
        kernel.apply(env, ["train_end"])
    except KeyboardInterrupt:
        interrupted = True
        say(f"interrupted at step {env['step']}; closing hotcb")
    finally:
        kernel.close()
    if interrupted:
        sys.exit(130)


if __name__ == "__main__":
    main()
