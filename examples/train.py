"""A small Hydra training app with live hotcb callbacks.

    python examples/train.py 'hotcb/callbacks=[timing,heartbeat]'
    hotcb cb set heartbeat every=5        # from another terminal, while it trains
    hotcb export-config                   # afterwards: freeze the live changes

    torchrun --nproc_per_node=2 examples/train.py hydra.run.dir=runs/ddp   # DDP, gloo, CPU
    python examples/train.py -m lr=0.1,0.01                                  # a sweep

A torch MLP learns a synthetic regression task on the CPU. The loop emits
``train_begin``, ``after_backward`` and ``train_step_end`` (every step), ``val_end``
(every ``val_every`` steps) and ``train_end``, and stops early when a callback asks
(``hotcb.requests.stop_requested``); the env carries ``step``, ``epoch``, ``loss``, ``model``,
``optimizer``, ``scheduler``, ``loss_state`` (``cfg.loss``, which the loss reads),
``total_steps``, ``log``, ``rank`` and ``run_dir``. ``hotcb opt set lr=1e-3`` and
``hotcb loss set l1_w=0.5`` change the optimizer and the loss live (docs/opt-loss.md).
Ctrl-C stops it cleanly (exit code 130):
the ledger and the state are complete and ``hotcb export-config`` still works.

Under ``torchrun`` it trains with DistributedDataParallel on the gloo backend, and the
kernel is a ``DistributedHotKernel``: every rank applies each live command at the same
step (``hotcb.sync_every``). Give ``hydra.run.dir`` explicitly so every rank agrees on it.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Any

import hydra
from omegaconf import DictConfig

from hotcb.kernel import HotKernel
from hotcb.requests import stop_requested

log = logging.getLogger(__name__)


def init_distributed() -> tuple[int, int]:
    """Join the torchrun process group (gloo, CPU) if launched by torchrun."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 0, 1
    import torch.distributed as dist

    dist.init_process_group("gloo")
    return dist.get_rank(), dist.get_world_size()


def sink(rank: int, world_size: int) -> Any:
    prefix = f"[rank {rank}] " if world_size > 1 else ""

    def say(message: str) -> None:
        sys.stdout.write(f"{prefix}{message}\n")  # one write: ranks share the terminal
        sys.stdout.flush()

    return say


def make_scheduler(cfg: DictConfig, optimizer: Any) -> Any:
    """``scheduler=step``: halve the lr every 50 steps; ``cosine``: anneal over the run."""
    import torch

    if cfg.scheduler == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=50, gamma=0.5)
    if cfg.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.steps)
    return None


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    # torch is imported by the job that trains, not at the top: `--cfg job`, `--help` and a
    # multirun's launcher process (joblib, submitit) never pay for it
    import torch

    rank, world_size = init_distributed()
    say = sink(rank, world_size)
    torch.manual_seed(cfg.seed)
    net = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1))
    model: torch.nn.Module = net
    if world_size > 1:
        model = torch.nn.parallel.DistributedDataParallel(net)
    # two param groups (hidden layer, head): `hotcb opt set group=1 lr=...` changes one
    groups = [{"params": net[0].parameters()}, {"params": net[2].parameters()}]
    optimizer = torch.optim.SGD(groups, **cfg.optimizer)
    scheduler = make_scheduler(cfg, optimizer)
    weights = cfg.loss.weights  # the loss reads them at every step: `hotcb loss set` moves them
    w_true = torch.randn(16, 1)
    x_val = torch.randn(256, 16)
    y_val = x_val @ w_true
    data = torch.Generator().manual_seed(cfg.seed + 1 + rank)  # each rank its own shard

    kernel = HotKernel.from_config(cfg)
    if rank == 0:
        say(f"hotcb run dir: {kernel.run_dir.path}")
    env: dict[str, Any] = {
        "step": 0,
        "epoch": 0,
        "model": model,
        "optimizer": optimizer,
        "scheduler": scheduler,
        "loss_state": cfg.loss,
        "total_steps": cfg.steps,
        "log": say,
        "rank": rank,
        "run_dir": str(kernel.run_dir.path),
    }
    steps_per_epoch = 100
    interrupted = False
    try:
        kernel.apply(env, ["train_begin"])
        for step in range(1, cfg.steps + 1):
            x = torch.randn(cfg.batch_size, 16, generator=data)
            y = x @ w_true + 0.01 * torch.randn(cfg.batch_size, 1, generator=data)
            optimizer.zero_grad(set_to_none=True)
            out = model(x)
            mse = torch.nn.functional.mse_loss(out, y)
            loss = weights.mse * mse
            if weights.l1:
                loss = loss + weights.l1 * torch.nn.functional.l1_loss(out, y)
            loss.backward()
            env["step"], env["epoch"] = step, (step - 1) // steps_per_epoch
            env["loss"], env["mse"] = loss.item(), mse.item()
            kernel.apply(env, ["after_backward"])  # gradients present (grad_stats, skip)
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            kernel.apply(env, ["train_step_end"])
            if step % cfg.val_every == 0:
                with torch.no_grad():
                    env["val_loss"] = torch.nn.functional.mse_loss(net(x_val), y_val).item()
                if rank == 0:
                    say(f"step {step}: loss {env['loss']:.4f} val_loss {env['val_loss']:.4f}")
                kernel.apply(env, ["val_end"])
            reason = stop_requested(env)
            if reason:
                say(f"stopping at step {step}: {reason}")
                break
            if cfg.step_sleep:
                time.sleep(cfg.step_sleep)
        kernel.apply(env, ["train_end"])
    except KeyboardInterrupt:
        interrupted = True
        say(f"interrupted at step {env['step']}; closing hotcb")
    finally:
        kernel.close()
        if world_size > 1:
            import torch.distributed as dist

            dist.destroy_process_group()
    if interrupted:
        sys.exit(130)


if __name__ == "__main__":
    main()
