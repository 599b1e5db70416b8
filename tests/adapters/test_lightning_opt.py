"""A real Lightning Trainer.fit with the opt module: the adapter hands the kernel the
optimizer and its LR scheduler, so a live lr lands at one step and the StepLR schedule
continues from it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

L = pytest.importorskip("lightning.pytorch")
import torch  # noqa: E402

from hotcb.adapters.lightning import HotCallbackController  # noqa: E402
from hotcb.ledger import read_ledger  # noqa: E402
from hotcb.modules.cb.module import CallbackModule  # noqa: E402
from hotcb.modules.opt import OptModule  # noqa: E402
from hotcb.stream import CommandStream  # noqa: E402
from tests.adapters.test_lightning import TinyModule, loader, quiet_trainer  # noqa: E402


class Scheduled(TinyModule):
    def configure_optimizers(self) -> Any:
        optimizer = torch.optim.SGD(self.parameters(), lr=0.1)
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=4, gamma=0.5)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }


class Probe(L.Callback):  # type: ignore[misc,name-defined]
    """Queues `opt set lr=0.02` at step 6 and records the lr after every step."""

    def __init__(self, commands: Path) -> None:
        self.commands, self.lrs = commands, {}

    def on_train_batch_start(self, trainer: Any, *rest: Any) -> None:
        if trainer.global_step == 6:
            CommandStream(self.commands).append(
                {"module": "opt", "op": "set", "id": "optimizer", "params": {"lr": 0.02}}
            )

    def on_train_batch_end(self, trainer: Any, *rest: Any) -> None:
        self.lrs[trainer.global_step] = trainer.optimizers[0].param_groups[0]["lr"]


def test_a_live_lr_under_lightning_continues_the_step_schedule(tmp_path: Path) -> None:
    run_dir = tmp_path / "hotcb"
    ctl = HotCallbackController(
        run_dir=run_dir,
        poll_interval=0,
        register=False,
        modules={"cb": CallbackModule(), "opt": OptModule("optimizer")},
    )
    probe = Probe(run_dir / "hotcb.commands.jsonl")
    trainer = quiet_trainer(tmp_path, [probe, ctl], max_steps=16)  # probe first: it queues
    trainer.fit(Scheduled(), train_dataloaders=loader())
    (entry,) = [
        e for e in read_ledger(run_dir / "hotcb.applied.jsonl").entries if e.module == "opt"
    ]
    assert entry.decision == "applied" and entry.payload["scheduler"] == "StepLR"
    at = entry.step  # the step the change landed at (its after_backward)
    assert at == 7
    for step, lr in probe.lrs.items():
        # StepLR halves every 4 scheduler steps; from `at` on it halves 0.02 instead of 0.1
        expected = (
            0.1 * 0.5 ** (step // 4) if step < at else 0.02 * 0.5 ** (step // 4 - (at - 1) // 4)
        )
        assert lr == pytest.approx(expected), step
