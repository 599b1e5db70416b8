"""HF Trainer under `torchrun --nproc_per_node=2` (gloo, CPU): the callback runs a
DistributedHotKernel on every process, and a live `hotcb` command lands on both at one step."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.ddp_log import applied_once_on_both, beats
from tests.helpers import HOTCB, Child, needs_hotcb

pytest.importorskip("transformers")

pytestmark = pytest.mark.subprocess

SCRIPT = """
import subprocess, sys, torch, transformers
from hotcb.adapters.hf import HotHFCallback

HOTCB, RUN_DIR = sys.argv[1], sys.argv[2]

class Tokens(torch.utils.data.Dataset):
    def __init__(self, n=2048):
        self.ids = torch.randint(0, 64, (n, 16), generator=torch.Generator().manual_seed(0))
    def __len__(self):
        return len(self.ids)
    def __getitem__(self, i):
        return {"input_ids": self.ids[i], "labels": self.ids[i]}

class CliAtStep(transformers.TrainerCallback):
    def on_step_begin(self, args, state, control, **kw):
        if state.global_step == 22 and state.is_world_process_zero:
            subprocess.run([HOTCB, "--dir", RUN_DIR, "cb", "set", "heartbeat", "every=10"], check=True)

def say(message):
    sys.stdout.write(f"[rank {torch.distributed.get_rank()}] {message}\\n")
    sys.stdout.flush()

model = transformers.GPT2LMHeadModel(transformers.GPT2Config(
    vocab_size=64, n_positions=16, n_embd=16, n_layer=1, n_head=2))
hot = HotHFCallback(run_dir=RUN_DIR, sync_every=5, log=say, callbacks={
    "heartbeat": {"_target_": "hotcb.modules.cb.callbacks.heartbeat.HeartbeatCallback", "every": 20}})
args = transformers.TrainingArguments(
    output_dir="out", max_steps=80, per_device_train_batch_size=4, report_to=[],
    save_strategy="no", use_cpu=True, disable_tqdm=True, logging_steps=10)
transformers.Trainer(model=model, args=args, train_dataset=Tokens(), callbacks=[hot, CliAtStep()]).train()
"""


@needs_hotcb
@pytest.mark.slow(12)
def test_ddp_train_applies_a_live_change_on_both_processes_at_one_step(
    tmp_path: Path, spawn: Callable[..., Child]
) -> None:
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    run_dir = tmp_path / "hot"
    assert HOTCB
    proc = spawn(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            str(script),
            HOTCB,
            str(run_dir),
        ],
        cwd=tmp_path,
        env={"OMP_NUM_THREADS": "1"},
    )
    out = proc.finish(timeout=300)
    # sent during step 23, applied at a sync point within 2 * sync_every steps, on both
    at = applied_once_on_both(out, "set heartbeat")
    assert 23 <= at <= 35 and at % 5 == 0
    first = -(-at // 10) * 10
    assert beats(out, 0) == beats(out, 1) == [20, *range(first, 81, 10)]
    state = json.loads((run_dir / "hotcb.state.json").read_text())
    assert state["world_size"] == 2 and state["closed"] and state["step"] == 80
