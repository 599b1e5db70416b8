"""A real transformers Trainer.train on a tiny GPT-2 (random init, no download), changed
live by a real `hotcb` process mid-run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

transformers = pytest.importorskip("transformers")
import torch  # noqa: E402

from hotcb.adapters.hf import HotHFCallback  # noqa: E402
from hotcb.ledger import read_ledger  # noqa: E402
from tests.helpers import HEARTBEAT_CLASS, hotcb, needs_hotcb  # noqa: E402

HEARTBEAT = {"_target_": HEARTBEAT_CLASS, "every": 100}


class Tokens(torch.utils.data.Dataset):  # type: ignore[type-arg]
    def __init__(self, n: int = 64) -> None:
        g = torch.Generator().manual_seed(0)
        self.ids = torch.randint(0, 64, (n, 16), generator=g)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"input_ids": self.ids[i], "labels": self.ids[i]}


def trainer(tmp_path: Path, callbacks: list[Any], max_steps: int) -> Any:
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=64, n_positions=16, n_embd=16, n_layer=1, n_head=2)
    model = transformers.GPT2LMHeadModel(config)
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "out"),
        max_steps=max_steps,
        per_device_train_batch_size=4,
        logging_steps=1,
        report_to=[],
        save_strategy="no",
        use_cpu=True,
        disable_tqdm=True,
        learning_rate=1e-3,
        eval_strategy="steps",
        eval_steps=10,
        per_device_eval_batch_size=8,
    )
    return transformers.Trainer(
        model=model, args=args, train_dataset=Tokens(), eval_dataset=Tokens(16), callbacks=callbacks
    )


class CliAtStep(transformers.TrainerCallback):  # type: ignore[misc]
    def __init__(self, step: int, run_dir: Path, *args: str) -> None:
        self.step, self.run_dir, self.args = step, run_dir, args

    def on_step_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        if state.global_step == self.step:
            hotcb("--dir", str(self.run_dir), *self.args)


@needs_hotcb
@pytest.mark.subprocess
def test_train_with_a_live_change(tmp_path: Path) -> None:
    run_dir = tmp_path / "hotcb"
    lines: list[str] = []
    cb = HotHFCallback(
        run_dir=run_dir,
        log=lines.append,
        poll_interval=0,
        callbacks={
            "heartbeat": HEARTBEAT,
            "grads": {
                "_target_": "hotcb.modules.cb.callbacks.grad_stats.GradStatsCallback",
                "every": 10,
            },
            "jsonl": {
                "_target_": "hotcb.modules.cb.callbacks.jsonl_logger.JsonlLoggerCallback",
                "every": 5,
            },
        },
    )
    trainer(
        tmp_path, [cb, CliAtStep(8, run_dir, "cb", "set", "heartbeat", "every=4")], max_steps=20
    ).train()
    live = [
        e for e in read_ledger(run_dir / "hotcb.applied.jsonl").entries if e.source == "external"
    ]
    assert [(e.op, e.decision, e.step) for e in live] == [
        ("set", "applied", 9)
    ]  # during the 9th step
    beats = [int(x.rsplit("=", 1)[1]) for x in lines if x.startswith("[heartbeat]")]
    assert beats == [12, 16, 20]
    assert [x.split()[1] for x in lines if x.startswith("[grads]")] == ["step=10", "step=20"]
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in rows if r["event"] == "train_step_end"]
    assert steps == [5, 10, 15, 20] and all(
        isinstance(r["loss"], float) for r in rows if "loss" in r
    )
    assert any(r["event"] == "val_end" for r in rows)
    assert json.loads((run_dir / "hotcb.state.json").read_text())["closed"] is True


def test_stop_request_ends_training(tmp_path: Path) -> None:
    src = tmp_path / "stopper.py"
    src.write_text(
        "from hotcb.requests import request_stop\n"
        "class Stopper:\n    def __init__(self, id='stop'): self.id = id\n"
        "    def handle(self, event, env):\n"
        "        if event == 'train_step_end' and env['step'] >= 6:\n"
        "            request_stop(env, 'enough', by=self.id)\n"
        "    def set_params(self, **kw): pass\n"
    )
    cb = HotHFCallback(
        run_dir=tmp_path / "hotcb",
        log=lambda m: None,
        callbacks={"stop": {"_target_": f"{src}:Stopper"}},
    )
    t = trainer(tmp_path, [cb], max_steps=50)
    t.train()
    assert t.state.global_step == 6
