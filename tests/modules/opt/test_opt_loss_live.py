"""A real training process (the example app, on a copy) beside real `hotcb` processes:
`hotcb opt set lr=...` changes every param group at one step and the cosine schedule
continues from the new value, a bad value is refused by the CLI (or failed by the run,
optimizer unchanged), a live loss weight changes the logged loss from that step on, and
`hotcb export-config` prints a next command whose run starts with the changed lr.

The live changes go through real `hotcb` processes; the refusals, `opt show` and the
exports through the same CLI in this process (CliRunner: the command surface, without a
process start each)."""

from __future__ import annotations

import contextlib
import json
import math
import os
import shlex
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from hotcb.cli import cli
from hotcb.ledger import LedgerEntry, read_ledger
from tests.helpers import REPO, Child, hotcb, needs_hotcb, run_state, stop_gate

pytestmark = [pytest.mark.subprocess, needs_hotcb]

STEPS = 100_000  # the cosine's T_max: the run ends when the test releases its gate


def hotcb_here(*args: str, ok: bool = True, cwd: Path | None = None) -> Result:
    """`hotcb ARGS` in this process (CliRunner); exit 0, or 1 (a user error) if not ``ok``."""
    with contextlib.chdir(cwd or os.getcwd()):
        result = CliRunner().invoke(cli, list(args), prog_name="hotcb")
    assert result.exit_code == (0 if ok else 1), result.output
    return result


def entry(run_dir: Path, module: str, decision: str) -> LedgerEntry | None:
    found = [
        e
        for e in read_ledger(run_dir / "hotcb.applied.jsonl").entries
        if e.module == module and e.decision == decision and e.source == "external"
    ]
    return found[-1] if found else None


def metrics(run_dir: Path) -> dict[int, dict[str, Any]]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    rows = [json.loads(x) for x in lines if x.strip()]
    return {r["step"]: r for r in rows if r["event"] == "train_step_end"}


def cosine(step: int) -> float:
    """The unchanged run's lr after `step` scheduler steps (lr 0.01, eta_min 0)."""
    return 0.01 * (1 + math.cos(math.pi * step / STEPS)) / 2


@pytest.mark.slow(9)
def test_live_lr_and_loss_weight_and_the_next_run(
    tmp_path: Path, spawn: Callable[..., Child]
) -> None:
    app = tmp_path / "app"
    shutil.copytree(REPO / "examples", app / "examples")
    shutil.copytree(REPO / "conf", app / "conf")
    gate = stop_gate(tmp_path)
    train = spawn(
        [
            sys.executable,
            "examples/train.py",
            "hotcb/callbacks=[jsonl_logger]",
            "hotcb.callbacks.jsonl_logger.every=1",
            "+hotcb.callbacks.jsonl_logger.keys=[mse]",
            "scheduler=cosine",
            f"steps={STEPS}",
            "step_sleep=0.002",
            *gate.overrides,
        ],
        cwd=app,
    )
    run_dir = Path(train.wait_line("hotcb run dir: ").split(": ", 1)[1].strip())
    at = ["--dir", str(run_dir)]
    train.wait_for(
        lambda: len(run_state(run_dir).get("optimizer", {}).get("groups") or []) == 2,
        what="the optimizer's two groups in the state",
    )

    # refused by the CLI from the state the run wrote: nothing is queued (the other
    # refusals: tests/cli/test_opt_loss_commands.py)
    refused = hotcb_here(*at, "opt", "set", "group=2", "lr=0.1", ok=False)
    assert refused.stderr == (
        "hotcb: error: group=2 does not exist: the optimizer has 2 param group(s), 0..1; "
        "nothing was queued\n"
    )
    commands = run_dir / "hotcb.commands.jsonl"
    assert not commands.exists() or commands.read_text() == ""

    # forced past the CLI: failed in the run, the optimizer unchanged (the lr curve below)
    forced = hotcb_here(*at, "opt", "set", "--force", "group=2", "lr=0.1", ok=False)
    assert " failed at step " in forced.stderr  # the run's answer, and exit 1
    failed = train.wait_for(lambda: entry(run_dir, "opt", "failed"), what="the failed op")
    assert "group=2 does not exist" in (failed.error or "")
    assert "group=2 does not exist" in forced.stderr

    queued = json.loads(hotcb(*at, "opt", "set", "lr=0.002", "--json").stdout)
    assert queued["queued"]["params"] == {"lr": 0.002}
    lr_set = train.wait_for(lambda: entry(run_dir, "opt", "applied"), what="the lr change")
    assert lr_set.payload["groups"] == [{"lr": 0.002}, {"lr": 0.002}]  # every group, one step
    hotcb(*at, "loss", "set", "mse_w=3.0")
    weight_set = train.wait_for(lambda: entry(run_dir, "loss", "applied"), what="the weight")
    assert weight_set.payload["set"] == {"weights.mse": 3.0}
    train.wait_for(lambda: max(metrics(run_dir), default=0) > weight_set.step + 20)
    shown = json.loads(hotcb_here(*at, "opt", "show", "--json").stdout)
    assert shown["groups"][0]["lr"] == shown["groups"][1]["lr"] < 0.002  # decaying from it
    # exported from the live run (all its changes are in); the next run, as printed, starts
    # while this one ends (the gate is released: it stops at its first step)
    overrides = shlex.split(hotcb_here(*at, "export-config", "--format", "overrides").stdout)
    assert "optimizer.lr=0.002" in overrides and "loss.weights.mse=3.0" in overrides
    exported = json.loads(hotcb_here(*at, "export-config", "--json", cwd=app).stdout)
    command = shlex.split(exported["next_command"])
    assert "optimizer.lr=0.002" in command and command[:2] == ["python", "examples/train.py"]
    gate.release()
    nxt = tmp_path / "next"
    next_run = spawn([sys.executable, *command[1:], f"hydra.run.dir={nxt}"], cwd=app)
    train.finish()

    rows = metrics(run_dir)
    assert lr_set.step is not None and weight_set.step is not None
    before = [t for t in rows if t < lr_set.step]
    after = [t for t in rows if t > lr_set.step]
    assert before and len(after) > 20
    for t in before:  # the cosine as configured (the failed op changed nothing)
        assert rows[t]["lr"] == pytest.approx(cosine(t), rel=1e-9)
    scale = rows[after[0]]["lr"] / cosine(after[0])
    assert scale * cosine(lr_set.step) == pytest.approx(0.002, rel=1e-3)  # jumps to 0.002
    for t in after:  # and the cosine continues from there, scaled
        assert rows[t]["lr"] / cosine(t) == pytest.approx(scale, rel=1e-9)
    for t, row in rows.items():  # the loss reads the weight from the next step on
        weight = 3.0 if t > weight_set.step else 1.0
        assert row["loss"] == pytest.approx(weight * row["mse"], rel=1e-5), t

    next_run.finish()
    state = run_state(nxt)
    assert [g["lr"] for g in state["optimizer"]["initial"]] == [0.002, 0.002]
    assert state["loss"]["initial"]["weights"]["mse"] == 3.0
