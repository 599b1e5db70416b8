"""SIGKILL a real training process, restart it in the same run dir: same state, nothing twice."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hotcb.ledger import read_ledger
from hotcb.stream import CommandStream
from tests.helpers import HEARTBEAT_DICT, Child, external_entries, run_state

pytestmark = pytest.mark.subprocess

Trainer = Callable[..., Child]

CALLBACK = """
class Viz:
    def __init__(self, id="viz", every=1, tag="v1"):
        self.id, self.every, self.tag = id, every, tag
    def handle(self, event, env):
        pass
    def set_params(self, **kw):
        self.every = kw.get("every", self.every)
"""


def external_lines(run: Path) -> list[int]:
    return [e.line for e in external_entries(run) if e.line is not None]


def callbacks_once(trainer: Child, run: Path, expected: Callable[[dict[str, Any]], bool]) -> Any:
    """The callbacks in the state file, once ``expected(callbacks)`` holds (the state is
    written after the ledger lines of the same poll)."""

    def written() -> dict[str, Any] | None:
        callbacks = run_state(run).get("callbacks") or {}
        return callbacks if expected(callbacks) else None

    return trainer.wait_for(written, what="the state file to show the commands")


def test_sigkill_then_restart_rebuilds_state_and_applies_each_command_once(
    tmp_path: Path, trainer: Trainer
) -> None:
    run = tmp_path / "run"
    src = tmp_path / "viz.py"
    src.write_text(CALLBACK)
    stream = CommandStream(run / "hotcb.commands.jsonl")
    first = trainer(run)
    assert first.first_line() == "fresh"
    stream.append({"op": "load", "id": "hb", "target": HEARTBEAT_DICT, "init": {"every": 7}})
    stream.append(
        {
            "op": "load",
            "id": "viz",
            "target": {"kind": "python_file", "path": str(src), "symbol": "Viz"},
        }
    )
    stream.append({"op": "set", "id": "viz", "params": {"every": 3}})
    stream.append({"op": "disable", "id": "hb"})
    before = callbacks_once(
        first,
        run,
        lambda cbs: (
            cbs.get("viz", {}).get("params") == {"every": 3}
            and cbs.get("hb", {}).get("enabled") is False
        ),
    )
    assert external_lines(run) == [1, 2, 3, 4]
    first.kill()
    # while it is down: the file changes on disk, and more commands arrive
    src.write_text(CALLBACK.replace('tag="v1"', 'tag="v2"'))
    stream.append({"op": "set", "id": "viz", "params": {"every": 9}})
    stream.append({"op": "enable", "id": "hb"})
    second = trainer(run, step=1000)
    assert second.first_line() == "resumed"
    after = callbacks_once(
        second,
        run,
        lambda cbs: (
            cbs.get("viz", {}).get("params") == {"every": 9}
            and cbs.get("hb", {}).get("enabled") is True
        ),
    )
    second.kill()
    assert external_lines(run) == [1, 2, 3, 4, 5, 6]  # nothing twice, nothing lost
    assert before["viz"]["sha256"] == after["viz"]["sha256"]  # the captured bytes, not the edit
    expected = {
        **before,
        "viz": {**before["viz"], "params": {"every": 9}},
        "hb": {**before["hb"], "enabled": True},
    }
    assert after == expected
    replay = [e for e in read_ledger(run / "hotcb.applied.jsonl").entries if e.op == "resume"]
    assert len(replay) == 1 and replay[0].payload["entries"] == 4


COMMANDS = 3000


def killed_mid_write(trainer: Trainer, run: Path) -> bool:
    """Queue COMMANDS commands, start a trainer on them and SIGKILL it while it writes
    their ledger lines. True if the kill landed mid-write: the trainer had every command
    to hand, yet only some reached the ledger (or its last line is torn)."""
    run.mkdir(mode=0o700)
    stream = CommandStream(run / "hotcb.commands.jsonl")
    stream.append({"op": "load", "id": "hb", "target": HEARTBEAT_DICT})
    for i in range(COMMANDS):
        stream.append({"op": "set", "id": "hb", "params": {"every": 1 + i % 50}})
    ledger = run / "hotcb.applied.jsonl"
    proc = trainer(run)
    # kill once the ledger holds a few hundred lines (~64 KiB)
    proc.wait_for(lambda: ledger.exists() and ledger.stat().st_size > 64_000, what="ledger lines")
    proc.kill()
    assert proc.first_line() == "fresh"
    read = read_ledger(ledger)
    written = len([e for e in read.entries if e.source == "external"])
    return read.truncated_tail is not None or 0 < written < COMMANDS + 1


def test_sigkill_during_heavy_writes_leaves_only_valid_lines(
    tmp_path: Path, trainer: Trainer
) -> None:
    for attempt in range(5):  # a fast machine may write them all before the kill lands
        run = tmp_path / f"run{attempt}"
        if killed_mid_write(trainer, run):
            break
    else:
        pytest.fail("in 5 attempts the SIGKILL never landed while the ledger was being written")
    read = read_ledger(run / "hotcb.applied.jsonl")
    assert read.bad_lines == []  # every complete line is a valid entry
    assert [e.seq for e in read.entries] == list(range(1, len(read.entries) + 1))
    again = trainer(run)  # and the run resumes on top of whatever was left
    assert again.first_line() == "resumed"
    again.wait_for(lambda: len(external_lines(run)) == COMMANDS + 1, what="every command applied")
    again.kill()
    assert external_lines(run) == list(range(1, COMMANDS + 2))
