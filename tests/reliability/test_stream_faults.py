"""Nothing acknowledged is lost: an over-long line, a bad byte, a FIFO, a write cut short,
or a commands file replaced while the run was down never make the kernel stall, guess,
merge lines or apply a command twice."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from hotcb.ledger import LedgerEntry, read_ledger
from hotcb.stream import CommandStream

HOTCB = shutil.which("hotcb") or ""
HEARTBEAT = {
    "kind": "module",
    "path": "hotcb.modules.cb.callbacks.heartbeat",
    "symbol": "HeartbeatCallback",
}
LOAD_HB = {"op": "load", "id": "hb", "target": HEARTBEAT}


def hb_set(every: int) -> bytes:
    return (json.dumps({"op": "set", "id": "hb", "params": {"every": every}}) + "\n").encode()


def entries(run: Path) -> list[LedgerEntry]:
    return read_ledger(run / "hotcb.applied.jsonl").entries


def run_cli(*args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [HOTCB, *args], capture_output=True, text=True, timeout=60, env=os.environ.copy(), **kwargs
    )


# -- over-long line ---------------------------------------------------------------------


@pytest.mark.skipif(not HOTCB, reason="the hotcb console script is not installed")
def test_a_10_mb_line_is_recorded_invalid_and_every_later_command_is_applied(
    kernel_factory: Any,
) -> None:
    kernel = kernel_factory()
    CommandStream(kernel.run_dir.commands).append(LOAD_HB)
    kernel.apply({"step": 1}, ["train_step_end"])
    huge = b'{"op": "set", "id": "hb", "params": {"every": "' + b"9" * 10_000_000 + b'"}}\n'
    start = kernel.run_dir.commands.stat().st_size
    with open(kernel.run_dir.commands, "ab") as fh:
        fh.write(huge)
        fh.write(hb_set(3))
    # the run is this test's kernel, which applies it after the CLI has ended: no waiting
    queued = run_cli("--dir", str(kernel.run_dir.path), "cb", "set", "hb", "every=7", "--no-wait")
    assert queued.returncode == 0 and "queued" in queued.stdout, queued.stderr
    tracemalloc.start()
    try:
        for step in range(2, 6):
            kernel.apply({"step": step}, ["train_step_end"])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 5_000_000  # the 10 MB line was skipped through, never held
    assert kernel.modules["cb"].status()["hb"]["params"] == {"every": 7}
    external = [e for e in entries(kernel.run_dir.path) if e.source == "external"]
    assert [(e.line, e.op, e.decision) for e in external] == [
        (1, "load", "applied"),
        (2, "invalid", "failed"),
        (3, "set", "applied"),
        (4, "set", "applied"),
    ]
    invalid = external[1]
    assert invalid.payload["length"] == len(huge) - 1
    assert (invalid.error or "").startswith(f"the line is {len(huge) - 1} bytes long")
    assert invalid.location == {"path": str(kernel.run_dir.commands), "line": 2}
    assert "at most 1048576 bytes" in (invalid.error or "")
    assert invalid.offset == start + len(huge)  # the next line is read from just after it


# -- a byte that is not UTF-8 -----------------------------------------------------------


def test_a_non_utf8_byte_makes_the_line_invalid_naming_its_offset(kernel_factory: Any) -> None:
    kernel = kernel_factory()
    CommandStream(kernel.run_dir.commands).append(LOAD_HB)
    bad = b'{"op": "set", "id": "hb", "params": {"events": ["caf\xff_end"]}}\n'
    with open(kernel.run_dir.commands, "ab") as fh:
        start = fh.tell()
        fh.write(bad)
        fh.write(hb_set(4))
    kernel.apply({"step": 1}, ["train_step_end"])
    status = kernel.modules["cb"].status()["hb"]
    assert status["params"] == {"every": 4}  # the line after it is applied
    invalid = [e for e in entries(kernel.run_dir.path) if e.op == "invalid"]
    assert len(invalid) == 1 and invalid[0].line == 2
    at = bad.index(b"\xff")
    assert f"not valid UTF-8: byte 0xff at byte {at} of the line" in (invalid[0].error or "")
    assert f"(byte {start + at} of the file)" in (invalid[0].error or "")
    assert not [e for e in entries(kernel.run_dir.path) if "\ufffd" in json.dumps(e.payload)]


# -- a FIFO where a file should be ------------------------------------------------------

FIFO_TRAINER = """
import sys
from hotcb.kernel import HotKernel
from hotcb.stream import CommandStream
run, which = sys.argv[1], sys.argv[2]
kwargs = {"config_path": run + "/hotcb.yaml"} if which == "desired" else {}
k = HotKernel(run_dir=run, poll_interval=0, register=False, **kwargs)
if which == "python_file":
    CommandStream(run + "/hotcb.commands.jsonl").append({"op": "load", "id": "cb",
        "target": {"kind": "python_file", "path": run + "/cb.py", "symbol": "Cb"}})
for step in range(1, 6):
    k.apply({"step": step}, ["train_step_end"])
if which == "commands":  # fixed: a regular file again
    import os
    os.unlink(run + "/hotcb.commands.jsonl")
CommandStream(run + "/hotcb.commands.jsonl").append({"op": "load", "id": "hb", "target":
    {"kind": "module", "path": "hotcb.modules.cb.callbacks.heartbeat",
     "symbol": "HeartbeatCallback"}})
for step in range(6, 9):
    k.apply({"step": step}, ["train_step_end"])
print("finished", sorted(k.modules["cb"].status()), flush=True)
k.close()
"""


@pytest.mark.subprocess
@pytest.mark.parametrize(
    ("which", "fifo"),
    [("commands", "hotcb.commands.jsonl"), ("desired", "hotcb.yaml"), ("python_file", "cb.py")],
)
def test_a_fifo_is_refused_once_and_training_goes_on(tmp_path: Path, which: str, fifo: str) -> None:
    run = tmp_path / "run"
    run.mkdir(mode=0o700)
    os.mkfifo(run / fifo, 0o600)
    try:
        result = subprocess.run(
            [sys.executable, "-c", FIFO_TRAINER, str(run), which],
            capture_output=True,
            text=True,
            timeout=20,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"training hung opening the FIFO {fifo}")
    assert result.returncode == 0, result.stderr
    assert "finished ['hb']" in result.stdout  # later commands still applied
    message = f"refusing {run / fifo}: it is a FIFO (named pipe), not a regular file"
    assert result.stderr.count(message) == 1, result.stderr
    recorded = [e for e in entries(run) if message in (e.error or "")]
    assert len(recorded) == 1 and recorded[0].decision == "failed"


# -- a write cut short ------------------------------------------------------------------

CUT_LEDGER = f"""
import resource, signal, sys
from hotcb.kernel import HotKernel
from hotcb.stream import CommandStream
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
run = sys.argv[1]
k = HotKernel(run_dir=run, poll_interval=0, register=False)
stream = CommandStream(run + "/hotcb.commands.jsonl")
stream.append({LOAD_HB!r})
k.apply({{"step": 1}}, ["train_step_end"])
stream.append({{"op": "set", "id": "hb", "params": {{"every": 2}}}})
size = (k.run_dir.ledger).stat().st_size
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, (size + 40, hard))
k.apply({{"step": 2}}, ["train_step_end"])  # this entry's write is cut after 40 bytes
resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))  # the disk has room again
stream.append({{"op": "set", "id": "hb", "params": {{"every": 3}}}})
k.apply({{"step": 3}}, ["train_step_end"])
k.close()
"""
RESUME = """
import sys
from hotcb.kernel import HotKernel
k = HotKernel(run_dir=sys.argv[1], poll_interval=0, register=False)
for step in range(10, 15):
    k.apply({"step": step}, ["train_step_end"])
print("params", k.modules["cb"].status()["hb"]["params"], flush=True)
k.close()
"""


@pytest.mark.subprocess
def test_a_ledger_write_cut_short_loses_nothing_and_a_restart_applies_nothing_twice(
    tmp_path: Path,
) -> None:
    run = tmp_path / "run"
    first = subprocess.run(
        [sys.executable, "-c", CUT_LEDGER, str(run)], capture_output=True, text=True, timeout=60
    )
    assert first.returncode == 0, first.stderr
    assert first.stderr.count("cannot write the ledger: File too large") == 1
    assert "ledger writes work again" in first.stderr
    read = read_ledger(run / "hotcb.applied.jsonl")
    assert read.bad_lines == [] and read.truncated_tail is None  # nothing merged
    assert [e.line for e in read.entries if e.source == "external"] == [1, 2, 3]
    assert [e.seq for e in read.entries] == list(range(1, len(read.entries) + 1))
    second = subprocess.run(
        [sys.executable, "-c", RESUME, str(run)], capture_output=True, text=True, timeout=60
    )
    assert second.returncode == 0, second.stderr
    assert "params {'every': 3}" in second.stdout
    after = entries(run)
    resumed_at = next(i for i, e in enumerate(after) if e.op == "resume")
    assert [e for e in after[resumed_at:] if e.source == "external"] == []  # nothing twice


def _kernel_with_hb(kernel_factory: Any) -> Any:
    kernel = kernel_factory()
    CommandStream(kernel.run_dir.commands).append(LOAD_HB)
    kernel.apply({"step": 1}, ["train_step_end"])
    return kernel


def _limit_file_size(limit: int) -> Any:
    def limit_it() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)

    return limit_it


@pytest.mark.subprocess
@pytest.mark.skipif(not HOTCB, reason="the hotcb console script is not installed")
def test_a_cli_append_cut_short_leaves_nothing_the_next_command_merges_into(
    kernel_factory: Any,
) -> None:
    kernel = _kernel_with_hb(kernel_factory)
    commands = kernel.run_dir.commands
    cut = run_cli(
        "--dir",
        str(kernel.run_dir.path),
        "cb",
        "set",
        "hb",
        "every=5",
        "--no-wait",
        preexec_fn=_limit_file_size(commands.stat().st_size + 10),
    )
    assert cut.returncode == 1 and "File too large" in cut.stderr, cut.stderr
    ok = run_cli("--dir", str(kernel.run_dir.path), "cb", "set", "hb", "every=9", "--no-wait")
    assert ok.returncode == 0, ok.stderr
    kernel.apply({"step": 2}, ["train_step_end"])
    assert kernel.modules["cb"].status()["hb"]["params"] == {"every": 9}
    assert [e.op for e in entries(kernel.run_dir.path) if e.source == "external"] == [
        "load",
        "set",
    ]


@pytest.mark.skipif(not HOTCB, reason="the hotcb console script is not installed")
def test_a_writer_killed_mid_line_does_not_swallow_the_next_command(kernel_factory: Any) -> None:
    kernel = _kernel_with_hb(kernel_factory)
    with open(kernel.run_dir.commands, "ab") as fh:
        fh.write(b'{"op": "set", "id": "hb", "par')  # what a SIGKILLed writer left
    ok = run_cli("--dir", str(kernel.run_dir.path), "cb", "set", "hb", "every=9", "--no-wait")
    assert ok.returncode == 0, ok.stderr
    kernel.apply({"step": 2}, ["train_step_end"])
    assert kernel.modules["cb"].status()["hb"]["params"] == {"every": 9}
    external = [(e.line, e.op) for e in entries(kernel.run_dir.path) if e.source == "external"]
    assert external == [(1, "load"), (2, "invalid"), (3, "set")]


# -- the commands file replaced while the run was down ----------------------------------

TRAINER = """
import sys, time
from hotcb.kernel import HotKernel
kernel = HotKernel(run_dir=sys.argv[1], poll_interval=0, register=False)
print("resumed" if kernel.resumed else "fresh", flush=True)
step = 0
while True:
    step += 1
    kernel.apply({"step": step}, ["train_step_end"])
    time.sleep(0.001)
"""


def start(run: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", TRAINER, str(run)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    proc.first_line = proc.stdout.readline().strip()  # type: ignore[attr-defined]
    return proc


def wait_external(run: Path, n: int, after: int = 0) -> list[LedgerEntry]:
    deadline = time.monotonic() + 30
    while True:
        found = [e for e in entries(run)[after:] if e.source == "external"]
        if len(found) >= n:
            return found
        assert time.monotonic() < deadline, found
        time.sleep(0.02)


@pytest.mark.subprocess
@pytest.mark.parametrize("how", ["replaced", "rewritten in place"])
def test_commands_file_replaced_while_down_is_read_from_the_top(tmp_path: Path, how: str) -> None:
    run = tmp_path / "run"
    commands = run / "hotcb.commands.jsonl"
    first = start(run)
    try:
        stream = CommandStream(commands)
        stream.append(LOAD_HB)
        for every in range(1, 7):
            stream.append({"op": "set", "id": "hb", "params": {"every": every}})
        wait_external(run, 7)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    new = b"".join(hb_set(100 + i) for i in range(20))  # longer than what was read
    if how == "replaced":
        (run / "new.jsonl").write_bytes(new)
        os.chmod(run / "new.jsonl", 0o600)
        os.replace(run / "new.jsonl", commands)
    else:
        with open(commands, "r+b") as fh:
            fh.truncate(0)
            fh.write(new)
    before = len(entries(run))
    second = start(run)
    try:
        assert second.first_line == "resumed"  # type: ignore[attr-defined]
        applied = wait_external(run, 20, after=before)
        time.sleep(0.2)  # would a 21st (a line applied twice) show up?
        applied = [e for e in entries(run)[before:] if e.source == "external"]
    finally:
        second.send_signal(signal.SIGKILL)
        second.wait(10)
    assert [(e.line, e.payload["params"]["every"]) for e in applied] == [
        (i + 1, 100 + i) for i in range(20)
    ]
    reset = [e for e in entries(run)[before:] if e.op == "reset"]
    assert len(reset) == 1 and "changed while the run was down" in (reset[0].error or "")
    why = "replaced by another file" if how == "replaced" else "it was rewritten"
    assert why in (reset[0].error or "")


def test_a_ledger_without_read_marks_still_resumes_where_it_stopped(kernel_factory: Any) -> None:
    """A ledger written before hotcb recorded marks (an older hotcb) resumes as before."""
    kernel = kernel_factory()
    stream = CommandStream(kernel.run_dir.commands)
    stream.append(LOAD_HB)
    stream.append({"op": "set", "id": "hb", "params": {"every": 2}})
    kernel.apply({"step": 1}, ["train_step_end"])
    kernel.close()
    ledger = kernel.run_dir.ledger
    lines = [json.loads(line) for line in ledger.read_text().splitlines()]
    for data in lines:
        data["payload"].pop("commands_inode", None)
        data["payload"].pop("commands_sha256", None)
    ledger.write_text("".join(json.dumps(d) + "\n" for d in lines))
    stream.append({"op": "set", "id": "hb", "params": {"every": 3}})
    again = kernel_factory()
    again.apply({"step": 2}, ["train_step_end"])
    assert again.modules["cb"].status()["hb"]["params"] == {"every": 3}
    assert [e.line for e in entries(kernel.run_dir.path) if e.source == "external"] == [1, 2, 3]
