"""No line stops training, or the restart after it (issue 10, section 2).

Text that is not valid Unicode, nesting too deep, numbers too long, names ending in a
newline and corrupt ledger lines each get a clear error naming the field; the training
process keeps going, and a restart over the same files starts and moves on.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hotcb.hydra.deltas import DeltaError, format_value
from hotcb.kernel import HotKernel
from hotcb.ledger import Ledger, LedgerEntry, read_ledger
from hotcb.ops import MAX_DEPTH, CallbackTarget, CommandError, Op, parse_command

HOTCB = shutil.which("hotcb") or ""
HEARTBEAT = CallbackTarget("module", "hotcb.modules.cb.callbacks.heartbeat", "HeartbeatCallback")

# A training process: heartbeat loaded by its config (not again on a resumed run).
TRAINER = """
import sys, time
from hotcb.kernel import HotKernel
from hotcb.ops import CallbackTarget, Op
kernel = HotKernel(run_dir=sys.argv[1], poll_interval=0.01)
if not kernel.resumed:
    kernel.submit(Op(op="load", id="heartbeat", init={"every": 1000},
                     target=CallbackTarget("module", "hotcb.modules.cb.callbacks.heartbeat",
                                           "HeartbeatCallback")))
print("ready", flush=True)
step = 0
while True:
    step += 1
    kernel.apply({"step": step, "log": lambda m: None}, ["train_step_end"])
    time.sleep(0.002)
"""


def nested(depth: int) -> Any:
    """``depth`` levels of lists and objects around a 1."""
    value: Any = 1
    for i in range(depth):
        value = [value] if i % 2 else {"a": value}
    return value


def external(run_dir: Path) -> list[LedgerEntry]:
    return [
        e for e in read_ledger(run_dir / "hotcb.applied.jsonl").entries if e.source == "external"
    ]


def append_line(run_dir: Path, line: str) -> None:
    """Append one command line the way any JSON writer spells it (escapes included)."""
    with open(run_dir / "hotcb.commands.jsonl", "a", encoding="ascii") as fh:
        fh.write(line + "\n")


# -- real processes ------------------------------------------------------------------


class Trainer:
    """Start (and restart) a training process on one run dir; fail fast if it dies."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.proc: subprocess.Popen[str] | None = None
        self.stderr = run_dir.parent / f"{run_dir.name}.stderr"

    def start(self) -> None:
        with open(self.stderr, "w") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", TRAINER, str(self.run_dir)],
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
            )
        assert self.proc.stdout is not None
        ready = self.proc.stdout.readline().strip()
        assert ready == "ready", f"the training process did not start:\n{self.errors()}"

    def errors(self) -> str:
        return self.stderr.read_text() if self.stderr.exists() else ""

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 20.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            assert self.alive(), f"the training process died:\n{self.errors()[-2000:]}"
            time.sleep(0.02)
        raise AssertionError("timed out waiting")


@pytest.fixture
def trainer(tmp_path: Path) -> Iterator[Trainer]:
    t = Trainer(tmp_path / "run")
    yield t
    t.kill()


def hotcb(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([HOTCB, *args], capture_output=True, text=True, timeout=60)


@pytest.mark.subprocess
@pytest.mark.skipif(not HOTCB, reason="the hotcb console script is not installed")
def test_lone_surrogate_neither_stops_training_nor_the_restart(trainer: Trainer) -> None:
    run = trainer.run_dir
    trainer.start()
    append_line(run, '{"op": "set", "id": "heartbeat", "params": {"msg": "\\ud800"}}')
    assert hotcb("--dir", str(run), "cb", "set", "heartbeat", "every=3").returncode == 0
    first = trainer.wait_for(lambda: len(external(run)) == 2 and external(run))
    assert (first[0].op, first[0].decision, first[0].line) == ("invalid", "failed", 1)
    assert "params.msg contains a lone surrogate (\\ud800)" in (first[0].error or "")
    assert (first[1].op, first[1].decision, first[1].payload["params"]) == (
        "set",
        "applied",
        {"every": 3},
    )

    # down, then restarted over a commands file with another such line and a new command
    trainer.kill()
    append_line(
        run,
        '{"op": "load", "id": "x", "target": {"kind": "module", '
        '"path": "caf\\udce9", "symbol": "X"}}',
    )
    assert hotcb("--dir", str(run), "cb", "set", "heartbeat", "every=4").returncode == 0
    trainer.start()
    entries = trainer.wait_for(lambda: len(external(run)) == 4 and external(run))
    assert [(e.line, e.op, e.decision) for e in entries] == [
        (1, "invalid", "failed"),
        (2, "set", "applied"),
        (3, "invalid", "failed"),
        (4, "set", "applied"),
    ]
    assert "target.path contains a lone surrogate (\\udce9" in (entries[2].error or "")
    status = json.loads(hotcb("--dir", str(run), "status", "--json").stdout)
    assert status["live"] and status["callbacks"]["heartbeat"]["params"] == {"every": 4}


@pytest.mark.subprocess
@pytest.mark.skipif(not HOTCB, reason="the hotcb console script is not installed")
def test_bad_ledger_line_is_skipped_by_log_and_by_the_restart(trainer: Trainer) -> None:
    run = trainer.run_dir
    ledger = run / "hotcb.applied.jsonl"
    trainer.start()
    assert hotcb("--dir", str(run), "cb", "set", "heartbeat", "every=3").returncode == 0
    trainer.wait_for(lambda: external(run))
    trainer.kill()
    good = len(ledger.read_text().splitlines())
    with open(ledger, "a") as fh:  # a corrupt line, e.g. from a hand edit
        fh.write(
            '{"seq": 1e999, "wall_time": 1, "op": "set", "id": "heartbeat", '
            '"source": "external", "decision": "applied", "payload": {"params": {"every": 9}}}\n'
        )

    shown = hotcb("--dir", str(run), "log")
    assert shown.returncode == 0, shown.stderr
    assert shown.stderr.splitlines() == [
        f"hotcb: warning: ledger line {good + 1} skipped: 'seq' must be a positive integer, got inf"
    ]
    assert [line.split()[4] for line in shown.stdout.splitlines()] == ["load", "set"]

    assert hotcb("--dir", str(run), "cb", "set", "heartbeat", "every=4").returncode == 0
    trainer.start()  # the kernel starts, replays the valid entries and goes on
    trainer.wait_for(lambda: len(external(run)) == 2)
    entries = read_ledger(ledger).entries
    seqs = [e.seq for e in entries]
    assert seqs == list(range(1, len(entries) + 1))  # the bogus seq was not continued
    assert [(e.source, e.op) for e in entries] == [
        ("config", "load"),
        ("external", "set"),
        ("replay", "resume"),
        ("external", "set"),
    ]
    status = json.loads(hotcb("--dir", str(run), "status", "--json").stdout)
    assert status["callbacks"]["heartbeat"]["params"] == {"every": 4}


@pytest.mark.subprocess
@pytest.mark.skipif(not HOTCB, reason="the hotcb console script is not installed")
def test_ledger_payload_of_the_wrong_shape_is_skipped_by_log_and_export(tmp_path: Path) -> None:
    run = tmp_path / "run"
    with HotKernel(run_dir=run, poll_interval=0, register=False) as kernel:
        kernel.submit(Op(op="load", id="hb", target=HEARTBEAT))
    base = {"wall_time": 1.0, "source": "config", "decision": "applied"}
    with open(run / "hotcb.applied.jsonl", "a") as fh:
        fh.write(
            json.dumps({**base, "seq": 2, "op": "set", "id": "hb", "payload": {"params": [1]}})
        )
        fh.write("\n" + json.dumps({**base, "seq": 3, "op": "load", "payload": {"target": 5}}))
        fh.write("\n")
    shown = hotcb("--dir", str(run), "log")
    assert shown.returncode == 0, shown.stderr
    assert shown.stderr.splitlines() == [
        "hotcb: warning: ledger line 2 skipped: 'payload.params' must be an object or null, "
        "got [1]",
        "hotcb: warning: ledger line 3 skipped: 'payload.target' must be an object or null, got 5",
    ]
    exported = hotcb("--dir", str(run), "export-config", "--format", "overrides")
    assert exported.returncode == 0, exported.stderr
    # a target of the right shape but missing a part: one error line, no traceback
    with open(run / "hotcb.applied.jsonl", "a") as fh:
        target = {"kind": "module", "path": "m"}
        fh.write(
            json.dumps({**base, "seq": 4, "op": "load", "id": "x", "payload": {"target": target}})
        )
        fh.write("\n")
    exported = hotcb("--dir", str(run), "export-config", "--format", "overrides")
    assert exported.returncode == 1
    assert exported.stderr.splitlines() == [
        f"hotcb: error: {run / 'hotcb.applied.jsonl'}: entry seq 4 (x): 'target' is missing symbol "
        "(needs kind, path, symbol)"
    ]


# -- the command edge --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "where"),
    [
        ({"op": "set", "id": "hb", "params": {"msg": "\ud800"}}, "params.msg"),
        ({"op": "set", "id": "hb", "params": {"tags": ["a", "caf\udce9"]}}, "params.tags[1]"),
        ({"op": "set", "id": "hb", "params": {"opts": {"k\ud800": 1}}}, "a key in params.opts"),
        ({"op": "set", "id": "hb", "params": {"o": [{"p": {"q": "\udfff"}}]}}, "params.o[0].p.q"),
        (
            {"op": "load", "id": "hb", "target": HEARTBEAT.to_dict(), "init": {"name": "\ud800"}},
            "init.name",
        ),
        (
            {"op": "load", "id": "hb", "target": {**HEARTBEAT.to_dict(), "path": "a\udce9"}},
            "target.path",
        ),
        ({"module": "c\ud800", "op": "disable", "id": "hb"}, "module"),
    ],
)
def test_lone_surrogate_anywhere_is_refused_naming_the_field(
    command: dict[str, Any], where: str
) -> None:
    with pytest.raises(CommandError, match=rf"^{re.escape(where)} contains a lone surrogate"):
        parse_command(json.dumps(command))  # json.dumps escapes it, as any writer does


def test_nesting_is_capped_at_the_edge() -> None:
    ok = parse_command(json.dumps({"op": "set", "id": "hb", "params": {"x": nested(MAX_DEPTH)}}))
    assert ok.params["x"] == nested(MAX_DEPTH)
    with pytest.raises(CommandError, match=f"params.x is nested more than {MAX_DEPTH} levels"):
        parse_command(json.dumps({"op": "set", "id": "hb", "params": {"x": nested(MAX_DEPTH + 1)}}))


@pytest.mark.parametrize(
    "command",
    [
        {"op": "disable", "id": "hb\n"},
        {"op": "set", "id": "hb", "params": {"every\n": 5}},
        {"op": "load", "id": "hb", "target": HEARTBEAT.to_dict(), "init": {"every\n": 5}},
    ],
)
def test_names_ending_in_a_newline_are_refused(command: dict[str, Any]) -> None:
    with pytest.raises(CommandError, match="invalid"):
        parse_command(json.dumps(command))


def test_override_keys_ending_in_a_newline_are_refused() -> None:
    with pytest.raises(DeltaError, match="cannot be written as a Hydra override key"):
        format_value({"k\n": 1})


def test_bad_lines_in_the_command_file_never_reach_apply(
    kernel_factory: Callable[..., HotKernel],
) -> None:
    kernel = kernel_factory()
    kernel.submit(Op(op="load", id="hb", target=HEARTBEAT))
    run = kernel.run_dir.path
    append_line(run, json.dumps({"op": "set", "id": "hb", "params": {"x": nested(600)}}))
    append_line(run, '{"op": "set", "id": "hb", "params": {"every": ' + "1" * 5000 + "}}")
    append_line(run, json.dumps({"op": "set", "id": "hb", "params": {"msg": "\ud800"}}))
    append_line(run, json.dumps({"op": "set", "id": "hb", "params": {"every": 7}}))
    kernel.apply({"step": 1}, ["train_step_end"])  # must not raise
    entries = external(run)
    assert [(e.line, e.op) for e in entries] == [
        (1, "invalid"),
        (2, "invalid"),
        (3, "invalid"),
        (4, "set"),
    ]
    assert f"params.x is nested more than {MAX_DEPTH} levels deep" in (entries[0].error or "")
    assert "a number has over 4300 digits" in (entries[1].error or "")
    assert "params.msg contains a lone surrogate" in (entries[2].error or "")
    assert entries[3].decision == "applied"
    assert kernel.modules["cb"].status()["hb"]["params"] == {"every": 7}


def test_desired_state_file_too_deep_or_too_long_does_not_stop_training(
    kernel_factory: Callable[..., HotKernel], tmp_path: Path
) -> None:
    desired = tmp_path / "hotcb.yaml"
    desired.write_text("callbacks: {hb: {params: {x: " + "[" * 1000 + "]" * 1000 + "}}}\n")
    desired.chmod(0o600)
    kernel = kernel_factory(config_path=desired)
    kernel.apply({"step": 1}, ["train_step_end"])  # must not raise
    desired.write_text("callbacks: {hb: {params: {x: " + "1" * 5000 + "}}}\n")
    os.utime(desired, ns=(1, 1))  # a new signature even within one mtime tick
    kernel.apply({"step": 2}, ["train_step_end"])
    errors = [e.error or "" for e in read_ledger(kernel.run_dir.ledger).entries]
    assert any("not valid YAML (nested too deeply)" in e for e in errors)
    assert any("not valid YAML (a number is too long)" in e for e in errors)


# -- the ledger never raises, and reads what it can ------------------------------------------


class Unrepresentable:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


@pytest.mark.parametrize(
    "payload",
    [
        {"msg": "caf\udce9"},
        {"x": nested(5000)},  # deeper than the JSON encoder can go
        {"k": {(1, 2): "tuple key"}},
        {"n": 10**5000},
        {"obj": Unrepresentable()},
    ],
    ids=["surrogate", "deep", "tuple-key", "long-int", "bad-repr"],
)
def test_ledger_writes_every_entry_without_raising(tmp_path: Path, payload: Any) -> None:
    path = tmp_path / "hotcb.applied.jsonl"
    ledger = Ledger(path)
    ledger.record(
        module="cb",
        op="set",
        id="hb",
        source="external",
        decision="failed",
        error="bad \udce9",
        payload=payload,
        line=3,
        offset=120,
    )
    ledger.record(module="cb", op="disable", id="hb", source="external", decision="applied")
    read = read_ledger(path)
    assert read.bad_lines == [] and read.truncated_tail is None
    first, second = read.entries
    assert (first.seq, first.op, first.id, first.line, first.offset) == (1, "set", "hb", 3, 120)
    assert first.error is not None and first.error.startswith("bad \\udce9")
    assert second.seq == 2


def test_callback_error_with_a_non_utf8_name_does_not_stop_training(
    kernel_factory: Callable[..., HotKernel], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # the traceback logged holds the surrogate, which xdist cannot send between processes
    caplog.set_level(logging.CRITICAL, logger="hotcb")
    source = tmp_path / "bad_name.py"
    source.write_text(
        "import os\n"
        "class Loader:\n"
        "    def __init__(self, id='loader'):\n"
        "        self.id = id\n"
        "    def handle(self, event, env):\n"
        "        raise ValueError('cannot read ' + os.fsdecode(b'caf\\xe9.csv'))\n"
        "    def set_params(self, **kwargs):\n"
        "        pass\n"
    )
    source.chmod(0o600)
    kernel = kernel_factory()
    kernel.submit(
        Op(op="load", id="loader", target=CallbackTarget("python_file", str(source), "Loader"))
    )
    kernel.apply({"step": 1}, ["train_step_end"])  # must not raise
    kernel.apply({"step": 2}, ["train_step_end"])
    entries = read_ledger(kernel.run_dir.ledger).entries
    assert [(e.op, e.source) for e in entries] == [("load", "config"), ("disable", "auto")]
    assert "cannot read caf\\udce9.csv" in (entries[1].error or "")
    assert kernel.modules["cb"].status()["loader"]["enabled"] is False


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("seq", 1e999),
        ("seq", "7"),
        ("seq", True),
        ("seq", 0),
        ("wall_time", float("nan")),
        ("wall_time", "noon"),
        ("step", [1]),
        ("op", 5),
        ("id", ["hb"]),
        ("id", "\ud800"),
        ("payload", [["params", 1]]),
        ("payload", "x"),
        ("error", {"a": 1}),
        ("line", 0),
        ("offset", -1),
        ("offset", 1.5),
    ],
)
def test_ledger_line_with_a_bad_field_is_skipped_naming_it(
    tmp_path: Path, field: str, value: Any
) -> None:
    path = tmp_path / "hotcb.applied.jsonl"
    good = {"wall_time": 1.0, "op": "set", "id": "hb", "source": "external", "decision": "applied"}
    lines = [{**good, "seq": 1}, {**good, "seq": 2, field: value}, {**good, "seq": 3}]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    read = read_ledger(path)
    assert [e.seq for e in read.entries] == [1, 3]
    assert len(read.bad_lines) == 1 and read.bad_lines[0][0] == 2
    assert read.bad_lines[0][1].startswith(f"'{field}' must be")
    assert read.warnings() == [f"ledger line 2 skipped: {read.bad_lines[0][1]}"]


def test_seq_continues_after_the_highest_valid_seq(tmp_path: Path) -> None:
    path = tmp_path / "hotcb.applied.jsonl"
    base = {"wall_time": 1.0, "op": "set", "id": "hb", "source": "external", "decision": "applied"}
    path.write_text(
        json.dumps({**base, "seq": 1})
        + "\n"
        + json.dumps({**base, "seq": 2})
        + "\n"
        + json.dumps({**base, "seq": "99"})
        + "\n"
        + '{"seq": 1e999, "wall_time": 1, "op": "set", "source": "x", "decision": "applied"}\n'
    )
    entry = Ledger(path).record(
        module="cb", op="disable", id="hb", source="external", decision="applied"
    )
    assert entry.seq == 3
