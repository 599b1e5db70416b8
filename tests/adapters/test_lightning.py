"""A real Lightning Trainer.fit, changed live by a real `hotcb` process mid-run."""

from __future__ import annotations

import csv as csv_module
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

L = pytest.importorskip("lightning.pytorch")
import torch  # noqa: E402

from hotcb.adapters.lightning import HotCallbackController  # noqa: E402
from hotcb.ledger import read_ledger  # noqa: E402
from tests.helpers import HEARTBEAT_CLASS, hotcb, needs_hotcb  # noqa: E402

HEARTBEAT = {"_target_": HEARTBEAT_CLASS, "every": 100}


class TinyModule(L.LightningModule):  # type: ignore[misc,name-defined]
    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1)
        )

    def training_step(self, batch: Any, batch_idx: int) -> Any:
        x, y = batch
        return torch.nn.functional.mse_loss(self.net(x), y)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        self.log("val_loss", torch.nn.functional.mse_loss(self.net(x), y))

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD(self.parameters(), lr=0.05)


def loader() -> Any:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, generator=g)
    ds = torch.utils.data.TensorDataset(x, x.sum(dim=1, keepdim=True))
    return torch.utils.data.DataLoader(ds, batch_size=4)


def quiet_trainer(tmp_path: Path, callbacks: list[Any], **kwargs: Any) -> Any:
    """A CPU Trainer with no checkpoints, progress bar or summary."""
    kwargs.setdefault("logger", False)
    return L.Trainer(
        accelerator="cpu",
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(tmp_path),
        callbacks=callbacks,
        **kwargs,
    )


class CliAtStep(L.Callback):  # type: ignore[misc,name-defined]
    """Runs a real `hotcb` command in another process when the trainer reaches a step."""

    def __init__(self, step: int, run_dir: Path, *args: str) -> None:
        self.step, self.run_dir, self.args = step, run_dir, args

    def on_train_batch_start(self, trainer: Any, *rest: Any) -> None:
        if trainer.global_step == self.step:
            hotcb("--dir", str(self.run_dir), *self.args)


@needs_hotcb
@pytest.mark.subprocess
def test_fit_with_a_live_change(tmp_path: Path) -> None:
    run_dir = tmp_path / "hotcb"
    lines: list[str] = []
    ctl = HotCallbackController(
        run_dir=run_dir,
        callbacks={
            "heartbeat": HEARTBEAT,
            "lr": {
                "_target_": "hotcb.modules.cb.callbacks.lr_monitor.LrMonitorCallback",
                "every": 10,
            },
        },
        log=lines.append,
        poll_interval=0,
    )
    csv = L.loggers.CSVLogger(str(tmp_path), name="csv", version=0)
    trainer = quiet_trainer(
        tmp_path,
        [ctl, CliAtStep(12, run_dir, "cb", "set", "heartbeat", "every=5")],
        max_steps=40,
        val_check_interval=16,
        logger=csv,
    )
    trainer.fit(TinyModule(), loader(), loader())
    entries = read_ledger(run_dir / "hotcb.applied.jsonl").entries
    live = [e for e in entries if e.source == "external"]
    # sent before the 13th step: applied during it
    assert [(e.op, e.decision, e.step) for e in live] == [("set", "applied", 13)]
    beats = [int(x.rsplit("=", 1)[1]) for x in lines if x.startswith("[heartbeat]")]
    assert beats == [15, 20, 25, 30, 35, 40]  # every 5 from the 13th step on
    lr_lines = [x.split()[1] for x in lines if x.startswith("[lr]")]
    assert lr_lines == ["step=10", "step=20", "step=30", "step=40"]
    # the same scalars reached the Lightning logger (trainer.loggers), tagged <id>/<key>
    metrics = (Path(csv.log_dir) / "metrics.csv").read_text().splitlines()
    rows = list(csv_module.DictReader(metrics))
    logged = [(int(r["step"]), float(r["lr/lr/group0"])) for r in rows if r.get("lr/lr/group0")]
    assert logged == [(10, 0.05), (20, 0.05), (30, 0.05), (40, 0.05)]
    state = json.loads((run_dir / "hotcb.state.json").read_text())
    assert state["closed"] and state["callbacks"]["heartbeat"]["params"] == {"every": 5}


def test_stop_request_stops_the_trainer(tmp_path: Path) -> None:
    src = tmp_path / "stopper.py"
    src.write_text(
        "from hotcb.requests import request_stop\n"
        "class Stopper:\n    def __init__(self, id='stop', at=7): self.id, self.at = id, at\n"
        "    def handle(self, event, env):\n"
        "        if event == 'train_step_end' and env['step'] >= self.at:\n"
        "            request_stop(env, 'enough', by=self.id)\n"
        "    def set_params(self, **kw): pass\n"
    )
    ctl = HotCallbackController(
        run_dir=tmp_path / "hotcb",
        callbacks={"stop": {"_target_": f"{src}:Stopper"}},
        log=lambda m: None,
    )
    trainer = quiet_trainer(tmp_path, [ctl], max_steps=100, limit_val_batches=0)
    trainer.fit(TinyModule(), loader())
    assert trainer.global_step == 7


def test_is_hydra_instantiable(tmp_path: Path) -> None:
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    node = {
        "_target_": "hotcb.adapters.lightning.HotCallbackController",
        "run_dir": str(tmp_path / "h"),
        "callbacks": {"heartbeat": HEARTBEAT},
    }
    with pytest.raises(Exception, match="_recursive_: false"):
        instantiate(OmegaConf.create(node))
    ctl = instantiate(OmegaConf.create({**node, "_recursive_": False}))
    assert isinstance(ctl, HotCallbackController)
    quiet_trainer(tmp_path, [ctl], max_steps=2, limit_val_batches=0).fit(TinyModule(), loader())
    state = json.loads((tmp_path / "h" / "hotcb.state.json").read_text())
    assert state["callbacks"]["heartbeat"]["params"] == {"every": 100}


@pytest.mark.subprocess
def test_importing_hotcb_does_not_import_lightning() -> None:
    code = "import sys, hotcb, hotcb.kernel, hotcb.cli; print('lightning' in sys.modules)"
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip()
        == "False"
    )
