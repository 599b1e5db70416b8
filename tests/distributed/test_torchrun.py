"""DDP under a real `torchrun --nproc_per_node=2` (gloo, CPU) beside real `hotcb` processes.

The example app trains a DistributedDataParallel model; a `hotcb cb set` sent mid-run must
be applied by both ranks at the same step, a callback that raises on rank 1 only must be
disabled on every rank and recorded with its rank, a stop asked on one rank must stop both,
and a restart in the same run dir must give every rank the same state back. `hotcb opt set`
and `hotcb loss set` too apply on both ranks at one step: they never train with different
learning rates, loss weights or gradient clipping (each rank logs its own at every step).

One two-rank run (the module's ``first_run``) takes all the live commands and ends by a stop
that only rank 1 asks for; each test asserts its part of what that run did (a torchrun launch
costs three torch processes: one for all is cheaper than one per test).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hotcb.ledger import LedgerEntry, read_ledger
from tests.ddp_log import applied, applied_once_on_both, beats
from tests.helpers import REPO, Child, external_entries, hotcb, needs_hotcb, run_state

# both tests read the one run of `first_run`: they stay on one xdist worker
pytestmark = [pytest.mark.subprocess, needs_hotcb, pytest.mark.xdist_group("torchrun")]

RANK_ONE_FAILS = """
class Boom:
    def __init__(self, id="boom"):
        self.id = id
    def handle(self, event, env):
        if event == "train_step_end" and env["rank"] == 1:
            raise RuntimeError("only rank 1 breaks")
    def set_params(self, **kw):
        pass
"""

RANK_ONE_STOPS = """
import os
from hotcb.requests import request_stop
class Stopper:
    def __init__(self, id="stopper", path=""):
        self.id, self.path = id, path
    def handle(self, event, env):
        if event == "train_step_end" and env["rank"] == 1 and os.path.exists(self.path):
            request_stop(env, "rank 1 has seen enough", by=self.id)
    def set_params(self, **kw):
        pass
"""


RANK_LOG = """
class RankLog:
    def __init__(self, id="ranklog", path=""):
        self.id, self.path, self.file = id, path, None
    def handle(self, event, env):
        if event != "train_step_end":
            return
        if self.file is None:
            self.file = open(f"{self.path}-{env['rank']}.txt", "a")
        g = env["optimizer"].param_groups
        w = env["loss_state"]["weights"]["mse"]
        # after optimizer.step(): the gradients of this step, as clipped at after_backward
        norm = sum(float(p.grad.pow(2).sum()) for x in g for p in x["params"]) ** 0.5
        self.file.write(f"{env['step']} {g[0]['lr']!r} {g[1]['lr']!r} {w!r} {norm!r}\\n")
        self.file.flush()
    def set_params(self, **kw):
        pass
    def close(self):
        if self.file is not None:
            self.file.close()
"""

#: the ``opt set`` the shared run takes: a new lr under StepLR, and clipping every group
CLIP = 1e-6

SCHEDULED_LOAD = (
    "+hotcb.schedule.s13_load_hb2={step: 13, event: train_step_end, op: load, id: hb2, "
    "target: {kind: module, path: hotcb.modules.cb.callbacks.heartbeat, "
    "symbol: HeartbeatCallback}, init: {every: 50}}"
)


def torchrun(
    spawn: Callable[..., Child], run_dir: Path, *overrides: str, home: Path | None = None
) -> Child:
    """The example app on 2 ranks (`--standalone`: its own free rendezvous port);
    ``home``: its HOTCB_HOME (else the test's)."""
    env = {"OMP_NUM_THREADS": "1", **({"HOTCB_HOME": str(home)} if home else {})}
    return spawn(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node=2",
            "--standalone",
            str(REPO / "examples" / "train.py"),
            f"hydra.run.dir={run_dir}",
            "hotcb/callbacks=[heartbeat,lr_monitor]",
            "hotcb.callbacks.lr_monitor.every=200",
            "+hotcb.sync_every=5",
            *overrides,
        ],
        cwd=run_dir.parent,
        env=env,
    )


def at_step(proc: Child, run_dir: Path, step: int) -> None:
    """Wait until the run reports ``step`` in its state file."""
    proc.wait_for(
        lambda: (run_state(run_dir).get("step") or 0) >= step,
        timeout=120,
        what=f"step {step}",
    )


def stopped_at(out: str) -> int:
    """The step both ranks stopped at (a stop is agreed at one step)."""
    stops = {int(r): int(s) for r, s in re.findall(r"\[rank (\d)\] stopping at step (\d+)", out)}
    assert set(stops) == {0, 1} and stops[0] == stops[1], out[-3000:]
    return stops[0]


@dataclass(frozen=True)
class FirstRun:
    """What the shared two-rank run left: its output, and its files as it ended (the
    restart in test_live_ops_apply_on_both_ranks_at_the_same_step rewrites them)."""

    tmp: Path
    run_dir: Path
    boom: Path
    out: str
    end: int
    state: dict[str, Any]
    entries: list[LedgerEntry]
    status: str  # the first line of `hotcb status` once it ended
    #: per rank: (step, lr of group 0, lr of group 1, loss weight mse, gradient norm)
    ranklog: dict[int, list[tuple[int, float, float, float, float]]]


def rank_rows(base: Path, rank: int) -> list[tuple[int, float, float, float, float]]:
    out = []
    for line in Path(f"{base}-{rank}.txt").read_text().splitlines():
        step, lr0, lr1, weight, norm = line.split()
        out.append((int(step), float(lr0), float(lr1), float(weight), float(norm)))
    return out


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FirstRun]:
    """A two-rank run that takes a live set, a live load of a callback that raises on rank 1
    only, and, once the set shows at its new cadence, a live load of a callback that asks
    rank 1 (only) to stop."""
    tmp = tmp_path_factory.mktemp("torchrun")
    home = tmp / "hotcb_home"  # the per-test isolation fixture comes after this one
    env = {"HOTCB_HOME": str(home)}
    run_dir = tmp / "ddp"
    boom = tmp / "boom.py"
    boom.write_text(RANK_ONE_FAILS)
    stopper = tmp / "stopper.py"
    stopper.write_text(RANK_ONE_STOPS)
    release = tmp / "rank-1-stops"  # the stopper asks while this exists (not on a restart)
    release.touch()
    ranklog = tmp / "ranklog.py"
    ranklog.write_text(RANK_LOG)
    rank_base = tmp / "ranklog"
    children: list[Child] = []

    def spawn(argv: list[str], **kwargs: Any) -> Child:
        children.append(Child(argv, **kwargs))
        return children[-1]

    def cli(*args: str) -> str:
        return hotcb("--dir", str(run_dir), *args, env=env).stdout

    try:
        # the run lasts until the test has seen what it needs
        proc = torchrun(
            spawn,
            run_dir,
            "steps=100000",
            "step_sleep=0.002",
            "hotcb.callbacks.heartbeat.every=100",
            f"+hotcb.callbacks.ranklog._target_='{ranklog}:RankLog'",
            f"+hotcb.callbacks.ranklog.path='{rank_base}'",
            "scheduler=step",
            # a scheduled op (from the config both ranks compose) applies on each rank at
            # its step, 13, which is not a sync point (sync_every=5): no communication
            SCHEDULED_LOAD,
            home=home,
        )
        at_step(proc, run_dir, 210)  # heartbeats at 100 and 200, lr_monitor at 200
        # each waits for the run's answer: on a loaded machine two ranks take a while
        cli("cb", "set", "heartbeat", "every=30", "--timeout", "60")
        cli("cb", "load", "boom", "--file", str(boom), "--symbol", "Boom", "--wait", "60")
        cli("opt", "set", "lr=0.05", f"clip_norm={CLIP}", "--timeout", "60")
        cli("loss", "set", "mse_w=2.0", "--timeout", "60")
        proc.wait_for(lambda: len(external_entries(run_dir)) == 4, what="the commands applied")
        applied = [e.step for e in external_entries(run_dir)]
        # beats at the new cadence, and 50+ steps of the new lr, weight and clipping
        at_step(proc, run_dir, max(applied[0] + 100, applied[-1] + 60))
        cli(
            "cb",
            "load",
            "stopper",
            "--file",
            str(stopper),
            "--symbol",
            "Stopper",
            "--init",
            f"path={release}",
            "--wait",
            "60",
        )
        out = proc.finish()  # would hang (and fail) if only rank 1 left the loop
        yield FirstRun(
            tmp=tmp,
            run_dir=run_dir,
            boom=boom,
            out=out,
            end=stopped_at(out),
            state=run_state(run_dir),
            entries=read_ledger(run_dir / "hotcb.applied.jsonl").entries,
            status=cli("status").splitlines()[0],
            ranklog={rank: rank_rows(rank_base, rank) for rank in (0, 1)},
        )
    finally:
        for child in children:
            child.kill()


@pytest.mark.slow(20)
def test_live_ops_apply_on_both_ranks_at_the_same_step(
    first_run: FirstRun, spawn: Callable[..., Child]
) -> None:
    run_dir, out, end = first_run.run_dir, first_run.out, first_run.end

    # both ranks applied the set at the same step, a sync point (a multiple of 5)
    at = applied_once_on_both(out, "set heartbeat")
    assert at >= 210 and at % 5 == 0
    # ... and both ranks' heartbeat changed cadence there
    for rank in (0, 1):
        before = [s for s in beats(out, rank) if s < at]
        after = [s for s in beats(out, rank) if s > at]
        assert before == list(range(100, at, 100))
        assert after == list(range(at + 30 - at % 30, end + 1, 30))
    assert beats(out, 0) == beats(out, 1)
    # lr_monitor logs: rank-zero-only, so rank 1 never runs it
    assert re.findall(r"\[rank 0\] \[lr_monitor\] step=(\d+)", out) == [
        str(s) for s in range(200, end + 1, 200)
    ]
    assert "[rank 1] [lr_monitor]" not in out

    # the file callback loaded on both ranks from rank 0's bytes; it raised on rank 1 only
    assert applied(out, 0, "load boom") == applied(out, 1, "load boom")
    entries = first_run.entries
    external = [e for e in entries if e.source == "external"]
    assert [(e.op, e.id, e.decision) for e in external] == [
        ("set", "heartbeat", "applied"),
        ("load", "boom", "applied"),
        ("set", "optimizer", "applied"),
        ("set", "loss_state", "applied"),
        ("load", "stopper", "applied"),
    ]
    assert all(e.payload["world_size"] == 2 for e in external)
    failures = [e for e in entries if e.id == "boom" and e.op == "disable"]
    assert len(failures) == 1
    assert failures[0].source == "auto" and failures[0].payload["rank"] == 1
    assert "rank 1: RuntimeError: only rank 1 breaks" in (failures[0].error or "")
    state = first_run.state
    assert state["world_size"] == 2 and state["closed"] and state["step"] == end
    assert state["callbacks"]["boom"]["enabled"] is False  # disabled on every rank
    assert state["callbacks"]["boom"]["error"].startswith("rank 1: RuntimeError: only rank 1")
    assert "world size 2" in first_run.status
    assert state["callbacks"]["heartbeat"]["params"] == {"every": 30}

    # a restart in the same dir: both ranks rebuild the same set (boom from captured bytes)
    first_run.boom.unlink()  # only the captured source remains
    (first_run.tmp / "rank-1-stops").unlink()  # the stopper is rebuilt too: inert this time
    out = torchrun(spawn, run_dir, "steps=60", "hotcb.callbacks.heartbeat.every=100").finish()
    assert beats(out, 0) == beats(out, 1) == [30, 60]  # every=30 survived the restart
    assert "load boom failed" not in out  # rank 1 had no file: it got rank 0's bytes
    state = run_state(run_dir)
    assert state["callbacks"]["boom"]["enabled"] is False and state["step"] == 60
    assert state["callbacks"]["heartbeat"]["params"] == {"every": 30}


@pytest.mark.slow(1)
def test_a_stop_asked_on_one_rank_stops_both_at_the_same_step(first_run: FirstRun) -> None:
    # the run of `first_run` ended only because rank 1's stopper asked (steps=100000)
    out = first_run.out
    end = stopped_at(out)  # both ranks stopped, at one step
    assert "rank 1 has seen enough" in out
    assert "[rank 0] stopping at step" in out and "[rank 1] stopping at step" in out
    assert applied_once_on_both(out, "load stopper") <= end  # loaded live on both ranks
    state: dict[str, Any] = first_run.state
    assert state["closed"] and state["step"] == end


@pytest.mark.slow(1)
def test_a_scheduled_op_applies_on_both_ranks_at_its_step(first_run: FirstRun) -> None:
    out, end = first_run.out, first_run.end
    # hb2 was loaded by the schedule at step 13 on each rank: both beat every 50 from there
    assert beats(out, 0, "hb2") == beats(out, 1, "hb2") == list(range(50, end + 1, 50))
    replayed = [e for e in first_run.entries if e.source == "schedule"]
    assert [(e.step, e.event, e.op, e.id) for e in replayed] == [
        (13, "train_step_end", "load", "hb2")
    ]


@pytest.mark.slow(1)
def test_both_ranks_change_lr_loss_weight_and_clipping_at_the_same_step(
    first_run: FirstRun,
) -> None:
    out = first_run.out
    lr_at = applied_once_on_both(out, "set optimizer")
    weight_at = applied_once_on_both(out, "set loss_state")
    assert lr_at % 5 == 0 and weight_at % 5 == 0  # at sync points
    rank0, rank1 = first_run.ranklog[0], first_run.ranklog[1]
    common = min(len(rank0), len(rank1))
    assert common > max(lr_at, weight_at) + 50
    # equal lr and weight on both ranks, every step
    assert [r[:4] for r in rank0[:common]] == [r[:4] for r in rank1[:common]]
    by_step = {r[0]: r for r in rank0}
    # StepLR halves every 50 steps; from the set on it decays from 0.05
    assert by_step[lr_at - 1][1:3] == (0.01 * 0.5 ** ((lr_at - 1) // 50),) * 2
    # set at after_backward of lr_at, before that step's scheduler.step()
    halvings = (lr_at + 1) // 50 - (lr_at - 1) // 50
    assert by_step[lr_at + 1][1] == pytest.approx(0.05 * 0.5**halvings)
    assert by_step[weight_at - 1][3] == 1.0 and by_step[weight_at][3] == 2.0
    # gradients clipped on both ranks from that after_backward on (each group to CLIP)
    for rows in (rank0, rank1):
        assert max(r[4] for r in rows if r[0] < lr_at) > 10 * CLIP
        clipped = [r[4] for r in rows[:common] if r[0] >= lr_at]
        assert clipped and max(clipped) <= 2**0.5 * CLIP * (1 + 1e-3)
    sets = [e for e in first_run.entries if e.source == "external" and e.op == "set"]
    assert [(e.module, e.decision, e.payload["world_size"]) for e in sets] == [
        ("cb", "applied", 2),
        ("opt", "applied", 2),
        ("loss", "applied", 2),
    ]
