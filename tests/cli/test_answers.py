"""The run's answer, end to end: a real `hotcb` process waits for a real training process
to apply (or refuse) each command and says so; `--dry-run`, `--no-wait`, `hotcb undo`, a
stalled run, a run that dies while the CLI waits, and SIGTERM closing the run cleanly.

One training process serves the whole module (a HotKernel loop, no torch); the tests run
in file order on one worker and each leaves the run as the next one expects.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from hotcb.cli import cli
from hotcb.ledger import read_ledger
from tests.helpers import (
    HEARTBEAT,
    HOTCB,
    Child,
    external_entries,
    hotcb,
    needs_hotcb,
    run_state,
    wait_for,
)

# one worker runs the module in file order (one training process); started early
pytestmark = [
    pytest.mark.subprocess,
    needs_hotcb,
    pytest.mark.xdist_group("answers"),
    pytest.mark.slow(1),
]

#: A training loop that rewrites its state every 0.1 s (so a pause shows as "stalled"
#: within a second) and loads the heartbeat on a fresh start.
TRAINER = f"""
import sys, time
from hotcb.kernel import HotKernel
from hotcb.ops import CallbackTarget, Op

kernel = HotKernel(run_dir=sys.argv[1], poll_interval=0, state_interval=0.1)
if not kernel.resumed:
    target = CallbackTarget("module", {HEARTBEAT.path!r}, {HEARTBEAT.symbol!r})
    kernel.submit(Op(op="load", id="heartbeat", init={{"every": 10}}, target=target))
print("resumed" if kernel.resumed else "fresh", flush=True)
step = 0
while True:
    step += 1
    kernel.apply({{"step": step, "log": lambda m: None}}, ["train_step_end"])
    time.sleep(0.001)
"""

#: A callback that leaves a mark when it is closed.
CLOSER = """
from pathlib import Path

class Closer:
    def __init__(self, id="closer", mark=""):
        self.id, self.mark = id, mark
    def handle(self, event, env):
        pass
    def set_params(self, **kw):
        pass
    def close(self):
        Path(self.mark).write_text("closed")
"""


class Run:
    """The module's training process and its run dir."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.dir = root / "run"
        self.home = root / "home"
        self.env = {"HOTCB_HOME": str(self.home)}
        self.child: Child | None = None

    def start(self) -> Child:
        argv = [sys.executable, "-S", "-c", _DEFAULT_SIGINT, sys.executable, "-c", TRAINER]
        self.child = Child([*argv, str(self.dir)], env=self.env)
        return self.child

    def cli(self, *args: str, ok: bool | None = True) -> subprocess.CompletedProcess[str]:
        return hotcb("--dir", str(self.dir), *args, env=self.env, ok=ok)

    def invoke(self, *args: str) -> Any:
        """The same command through click's CliRunner in this process (cheaper than a
        process; it still waits for the training process's answer)."""
        result = CliRunner().invoke(
            cli, ["--dir", str(self.dir), *args], env=self.env, catch_exceptions=False
        )
        assert result.exit_code == 0, result.output
        return result

    def callback(self, cb_id: str = "heartbeat") -> dict[str, Any]:
        return dict(run_state(self.dir)["callbacks"][cb_id])

    def entry(self, seq: int) -> Any:
        return next(
            e for e in read_ledger(self.dir / "hotcb.applied.jsonl").entries if e.seq == seq
        )


# Python starts a background job's children with SIGINT ignored; the kernel handles SIGTERM
# where it owns SIGINT, as in a terminal: give the child Python's default first.
_DEFAULT_SIGINT = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "os.execvp(sys.argv[1], sys.argv[1:])"
)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    r = Run(tmp_path_factory.mktemp("answers"))
    assert r.start().first_line() == "fresh"
    yield r
    if r.child is not None:
        r.child.kill()


APPLIED = re.compile(r"applied at step (\d+): (.*) -> (.*)")


def test_set_waits_for_the_run_and_says_the_step_it_was_applied_at(run: Run) -> None:
    result = run.cli("cb", "set", "heartbeat", "every=5")
    match = APPLIED.fullmatch(result.stdout.strip())
    assert match is not None, result.stdout
    assert match.group(2, 3) == ("set heartbeat every=5", str(run.dir))
    (entry,) = external_entries(run.dir)
    assert (entry.op, entry.decision, entry.step) == ("set", "applied", int(match.group(1)))
    assert run.callback()["params"] == {"every": 5}  # applied before the CLI answered


def test_a_failure_in_the_run_is_the_answer_and_exits_1(run: Run) -> None:
    # --force skips the CLI's own check of the declaration: the run checks it and answers
    result = run.cli("cb", "set", "heartbeat", "evry=5", "--force", ok=False)
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    assert re.fullmatch(
        r"hotcb: error: set heartbeat evry=5 failed at step \d+: .*no hot parameter 'evry'.*\n",
        result.stderr,
    )
    assert run.callback()["params"] == {"every": 5}


def test_json_answer_and_an_ignored_op(run: Run) -> None:
    out = json.loads(run.cli("cb", "disable", "heartbeat", "--json").stdout)
    answer = out["answer"]
    assert (out["queued"]["op"], answer["outcome"], answer["error"]) == ("disable", "applied", None)
    assert run.entry(answer["seq"]).step == answer["step"]
    again = run.invoke("cb", "disable", "heartbeat")  # ignored is not a failure
    assert again.stdout.startswith("ignored at step ")
    assert "'heartbeat' is already disabled" in again.stdout
    run.invoke("cb", "enable", "heartbeat")


def test_dry_run_shows_the_op_and_its_override_delta_and_queues_nothing(run: Run) -> None:
    commands = run.dir / "hotcb.commands.jsonl"
    before = commands.read_bytes()
    shown = run.cli("cb", "set", "heartbeat", "every=3", "--dry-run").stdout.splitlines()
    assert shown == [
        f"dry run (nothing queued): set heartbeat every=3 -> {run.dir}",
        "override delta: hotcb.callbacks.heartbeat.every=3",
    ]
    out = json.loads(run.invoke("cb", "disable", "heartbeat", "--dry-run", "--json").stdout)
    assert out["deltas"] == ["+hotcb.callbacks.heartbeat._enabled_=false"]
    assert commands.read_bytes() == before


def test_undo_reverts_the_last_changes_exactly(run: Run, tmp_path: Path) -> None:
    closer = tmp_path / "closer.py"
    closer.write_text(CLOSER)
    mark = tmp_path / "closed"
    run.invoke("cb", "set", "heartbeat", "every=7")
    run.invoke("cb", "disable", "heartbeat")
    run.invoke("cb", "unload", "heartbeat")
    loaded = run.invoke("cb", "load", "closer", "--file", str(closer), "--symbol", "Closer",
                        "--init", f"mark={mark}")  # fmt: skip
    assert loaded.stdout.startswith("applied at step ")

    undone = run.cli("undo").stdout  # the load: unloaded (its close() runs)
    assert undone.startswith("applied at step ") and "unload closer" in undone
    assert mark.read_text() == "closed" and "closer" not in run_state(run.dir)["callbacks"]

    undone = run.cli("undo", "2").stdout.splitlines()  # the unload, then the disable
    assert [line.split(": ", 1)[1].split(" -> ")[0] for line in undone] == [
        "load heartbeat hotcb.modules.cb.callbacks.heartbeat:HeartbeatCallback every=7 (disabled)",
        "enable heartbeat",
    ]
    assert run.callback()["enabled"] is True and run.callback()["params"] == {"every": 7}

    run.invoke("undo")  # the set: every back to 5, what it was before
    assert run.callback()["params"] == {"every": 5}
    undos = [e for e in external_entries(run.dir) if "undoes" in e.payload]
    assert [run.entry(e.payload["undoes"]).op for e in undos] == [
        "load",
        "unload",
        "disable",
        "set",
    ]


def test_run_options_after_the_command(run: Run) -> None:
    env = run.env
    result = hotcb("cb", "set", "--dir", str(run.dir), "heartbeat", "every=6", env=env)
    assert APPLIED.fullmatch(result.stdout.strip())
    status = CliRunner().invoke(cli, ["status", "--dir", str(run.dir), "--json"], env=env)
    assert json.loads(status.stdout)["callbacks"]["heartbeat"]["params"] == {"every": 6}


def test_no_wait_only_queues(run: Run) -> None:
    result = run.cli("cb", "set", "heartbeat", "every=5", "--no-wait")
    assert result.stdout.startswith("queued set heartbeat every=5 -> ")
    wait_for(lambda: run.callback()["params"] == {"every": 5}, what="the run to apply it")


def test_a_stalled_run_is_told_apart_and_the_command_stays_queued(run: Run) -> None:
    assert run.child is not None
    os.kill(run.child.pid, signal.SIGSTOP)  # a long validation: alive, not stepping
    try:
        result = run.cli("cb", "set", "heartbeat", "every=8", "--timeout", "1", ok=False)
    finally:
        os.kill(run.child.pid, signal.SIGCONT)
    assert re.fullmatch(
        r"hotcb: error: set heartbeat every=8: no answer from the run within 1 s:"
        r" it is stalled \d\.\d s at step \d+ \(its process runs; .*\); the command stays queued"
        r" and is applied at its next safe point \(see: hotcb log\)\n",
        result.stderr,
    ), result.stderr
    wait_for(lambda: run.callback()["params"] == {"every": 8}, what="the queued set applied")


def test_a_run_that_dies_while_the_cli_waits(run: Run) -> None:
    assert run.child is not None and HOTCB is not None
    os.kill(run.child.pid, signal.SIGSTOP)
    waiting = subprocess.Popen(
        [HOTCB, "--dir", str(run.dir), "cb", "set", "heartbeat", "every=9", "--timeout", "60"],
        env={**os.environ, **run.env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    commands = run.dir / "hotcb.commands.jsonl"
    wait_for(lambda: b'every": 9' in commands.read_bytes(), what="the command queued")
    run.child.kill()
    start = time.monotonic()
    _, err = waiting.communicate(timeout=30)
    assert waiting.returncode == 1 and time.monotonic() - start < 10
    assert "the run's process ended before it answered (dead: process " in err
    assert f"a run resumed in {run.dir} applies it" in err


def test_a_run_that_is_not_live_is_not_waited_for(run: Run) -> None:
    start = time.monotonic()
    result = run.cli("cb", "set", "heartbeat", "every=4", "--timeout", "60")
    assert time.monotonic() - start < 10
    assert result.stdout.startswith(
        f"queued set heartbeat every=4 -> {run.dir} (no live run: applied when a run starts "
        "here; the last run here is dead: process "
    )


def test_sigterm_closes_the_run_like_ctrl_c(run: Run, tmp_path: Path) -> None:
    child = run.start()
    assert child.first_line() == "resumed"  # and applies the two commands queued meanwhile
    wait_for(lambda: run.callback()["params"] == {"every": 4}, what="the queued sets applied")
    closer = tmp_path / "closer.py"
    closer.write_text(CLOSER)
    mark = tmp_path / "closed"
    run.invoke("cb", "load", "closer", "--file", str(closer), "--symbol", "Closer",
               "--init", f"mark={mark}")  # fmt: skip
    runs = json.loads(CliRunner().invoke(cli, ["runs", "--json"], env=run.env).stdout)
    assert [r["pid"] for r in runs["live"]] == [child.pid]

    child.proc.send_signal(signal.SIGTERM)  # what SLURM preemption sends
    child.finish(returncode=128 + signal.SIGTERM)
    state = run_state(run.dir)
    assert state["closed"] is True  # the final state was written
    assert mark.read_text() == "closed"  # callbacks were closed
    runs = json.loads(CliRunner().invoke(cli, ["runs", "--json"], env=run.env).stdout)
    assert runs["live"] == [] and runs["recent"][0]["run_dir"] == str(run.dir)
    assert runs["recent"][0]["run"]["closed"] is True  # left the registry as closed, not dead
    assert read_ledger(run.dir / "hotcb.applied.jsonl").truncated_tail is None
