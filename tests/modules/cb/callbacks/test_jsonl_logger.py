from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from hotcb.modules.cb.callbacks.jsonl_logger import JsonlLoggerCallback


def test_writes_selected_scalars(loop: Any, tmp_path: Path) -> None:
    loop.env["run_dir"] = str(tmp_path)
    loop.env["grad_scale"] = torch.tensor(2.0)
    cb = JsonlLoggerCallback(every=2, keys=["grad_scale", "absent"])
    losses: list[float] = []
    loop.before_step = lambda lp: losses.append(lp.env["loss"])
    loop.run(cb, 4)
    cb.set_params(keys=[])
    loop.run(cb, 2)
    cb.close()
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 4, 6]
    assert rows[0] == {
        "step": 2,
        "epoch": 0,
        "event": "train_step_end",
        "loss": losses[1],
        "lr": 0.05,
        "grad_scale": 2.0,
    }
    assert "grad_scale" not in rows[2]


def test_refuses_a_path_outside_the_run_dir(tmp_path: Path) -> None:
    cb = JsonlLoggerCallback(path="../escape.jsonl")
    with pytest.raises(ValueError, match="outside the run dir"):
        cb.handle("train_step_end", {"step": 1, "run_dir": str(tmp_path / "run")})
    assert not (tmp_path / "escape.jsonl").exists()
