"""Export of the opt and loss modules: a run's net change becomes overrides of the app's
own config keys (read from the run's composed ``.hydra/config.yaml``), in
``--format overrides`` and in the next command, where they replace the launch's own."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch
import yaml

from hotcb.hydra.export import export_config
from hotcb.hydra.module_overrides import module_overrides
from hotcb.kernel import HotKernel
from hotcb.modules.cb.module import CallbackModule
from hotcb.modules.loss import LossModule
from hotcb.modules.opt import OptModule
from hotcb.stream import CommandStream

CONFIG = {
    "optimizer": {"lr": 0.01, "momentum": 0.0},
    "loss": {"weights": {"distill": 0.5, "depth": 1.0}, "terms": {"aux": True}},
    "hotcb": {"opt": {"config_key": "optimizer"}, "loss": {"config_key": "loss"}},
}


def a_run(tmp_path: Path, *commands: dict[str, Any]) -> Path:
    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "config.yaml").write_text(yaml.safe_dump(CONFIG))
    # the app itself: export composes the next command with Hydra before printing it
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "config.yaml").write_text(yaml.safe_dump({**CONFIG, "seed": 0}))
    (run / "hotcb.launch.json").write_text(
        json.dumps(
            {
                "argv": [str(tmp_path / "train.py"), "optimizer.lr=0.3", "seed=1"],
                "cwd": str(tmp_path),
                "config_dir": str(tmp_path / "conf"),
                "config_name": "config",
                "overrides": ["optimizer.lr=0.3", "seed=1"],
            }
        )
    )
    a, b = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([{"params": [a]}, {"params": [b]}], lr=0.01, momentum=0.0)
    loss_state = json.loads(json.dumps(CONFIG["loss"]))
    modules: dict[str, Any] = {
        "cb": CallbackModule(),
        "opt": OptModule("optimizer"),
        "loss": LossModule("loss"),
    }
    kernel = HotKernel(run, poll_interval=0, register=False, modules=modules)
    stream = CommandStream(kernel.run_dir.commands)
    for step, command in enumerate(commands, 1):
        stream.append(command)
        env = {"step": step, "optimizer": optimizer, "loss_state": loss_state}
        kernel.apply(env, ["train_step_end"])
    kernel.close()
    return run


def opt(**params: Any) -> dict[str, Any]:
    return {"module": "opt", "op": "set", "id": "optimizer", "params": params}


def loss(**params: Any) -> dict[str, Any]:
    return {"module": "loss", "op": "set", "id": "loss_state", "params": params}


def test_the_net_change_as_overrides_of_the_apps_keys(tmp_path: Path) -> None:
    run = a_run(
        tmp_path,
        opt(lr=0.001),
        opt(lr_scale=0.5),  # the lr it gave: 0.0005
        opt(group=1, weight_decay=0.1),  # one group only: no single config key holds it
        opt(momentum=0.0),  # what the config has: nothing to export
        opt(group=9, lr=1.0),  # failed: nothing
        opt(clip_norm=1.0),  # hotcb's own
        loss(distill_w=0.2, terms={"aux": False}),
        loss(depth_w=1.0),  # back to what it was
    )
    assert module_overrides(run) == [  # by module name, then key
        "loss.terms.aux=false",
        "loss.weights.distill=0.2",
        "optimizer.lr=0.0005",
        "+hotcb.opt.clip_norm=1.0",
    ]
    line = export_config(run, fmt="overrides").text
    assert shlex.split(line) == module_overrides(run)  # no callbacks changed

    result = export_config(run, name="next")
    assert result.next_command is not None
    command = shlex.split(result.next_command)
    # the launch's own optimizer.lr=0.3 is replaced by the live value
    assert command[2:] == [
        "seed=1",
        *module_overrides(run),
        "+hotcb/callbacks=next",  # the app's defaults list has no hotcb/callbacks entry
    ]


def test_a_run_without_the_modules_exports_as_before(tmp_path: Path) -> None:
    run = tmp_path / "run"
    HotKernel(run, register=False).close()
    assert module_overrides(run) == []
    assert export_config(run, fmt="overrides").text == ""


REBUILD = """
import sys
from hotcb.hydra.module_overrides import import_modules
from hotcb.ledger import read_ledger
from hotcb.modules.base import op_from_entry
entries = [e for e in read_ledger(sys.argv[1]).entries if e.module in ("opt", "loss")]
before = [op_from_entry(e) for e in entries]
import_modules(["cb", "opt", "loss", "nope"])
print(before.count(None), [op_from_entry(e).to_dict() for e in entries])
"""


def test_a_fresh_process_rebuilds_their_ops_from_the_ledger(tmp_path: Path) -> None:
    # what a schedule built by the CLI from the ledger needs: plain ops of their module
    run = a_run(tmp_path, opt(lr=0.001), loss(distill_w=0.2))
    out = subprocess.run(
        [sys.executable, "-c", REBUILD, str(run / "hotcb.applied.jsonl")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    count, ops = out.split(" ", 1)
    assert count == "2"  # before: neither module's ops were known in that process
    assert ops.strip() == repr(
        [
            {"module": "opt", "op": "set", "id": "optimizer", "params": {"lr": 0.001}},
            {"module": "loss", "op": "set", "id": "loss_state", "params": {"distill_w": 0.2}},
        ]
    )
