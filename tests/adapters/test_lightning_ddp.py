"""Lightning with strategy="ddp" on 2 CPU processes: the controller runs a
DistributedHotKernel on every rank, and a live `hotcb` command lands on both at one step."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.ddp_log import applied_once_on_both, beats
from tests.helpers import HOTCB, Child, needs_hotcb

pytest.importorskip("lightning.pytorch")

pytestmark = pytest.mark.subprocess

SCRIPT = """
import subprocess, sys, torch, lightning.pytorch as L
from hotcb.adapters.lightning import HotCallbackController

HOTCB, RUN_DIR = sys.argv[1], sys.argv[2]

class M(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Linear(4, 1)
    def training_step(self, batch, i):
        x, y = batch
        return torch.nn.functional.mse_loss(self.net(x), y)
    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)

class CliAtStep(L.Callback):
    def on_train_batch_start(self, trainer, *rest):
        if trainer.global_step == 32 and trainer.global_rank == 0:
            subprocess.run([HOTCB, "--dir", RUN_DIR, "cb", "set", "heartbeat", "every=10"], check=True)

def say(message):
    sys.stdout.write(f"[rank {torch.distributed.get_rank()}] {message}\\n")
    sys.stdout.flush()

x = torch.randn(2048, 4, generator=torch.Generator().manual_seed(0))
data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, x.sum(1, keepdim=True)), batch_size=8)
hot = HotCallbackController(run_dir=RUN_DIR, sync_every=5, log=say, callbacks={
    "heartbeat": {"_target_": "hotcb.modules.cb.callbacks.heartbeat.HeartbeatCallback", "every": 25}})
trainer = L.Trainer(max_steps=100, accelerator="cpu", devices=2, strategy="ddp",
                    callbacks=[hot, CliAtStep()], enable_progress_bar=False,
                    enable_checkpointing=False, logger=False, enable_model_summary=False)
trainer.fit(M(), data)
"""


@needs_hotcb
@pytest.mark.slow(14)
def test_ddp_fit_applies_a_live_change_on_both_ranks_at_one_step(
    tmp_path: Path, spawn: Callable[..., Child]
) -> None:
    script = tmp_path / "fit.py"
    script.write_text(SCRIPT)
    run_dir = tmp_path / "hot"
    assert HOTCB
    # Lightning starts rank 1 itself, on a free port it picks
    out = spawn([sys.executable, str(script), HOTCB, str(run_dir)], cwd=tmp_path).finish(300)
    # sent during step 33, applied at a sync point within 2 * sync_every steps, on both ranks
    at = applied_once_on_both(out, "set heartbeat")
    assert 33 <= at <= 45 and at % 5 == 0
    first = -(-at // 10) * 10  # the first multiple of 10 from the applied step on
    assert beats(out, 0) == beats(out, 1) == [25, *range(first, 101, 10)]
    state = json.loads((run_dir / "hotcb.state.json").read_text())
    assert state["world_size"] == 2 and state["closed"] and state["step"] == 100
