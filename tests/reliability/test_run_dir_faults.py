"""The run dir under attack or accident: removed mid-run, shared by two kernels, or
seeded with symlinks by someone who can write to it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from hotcb.files import NotRegularFileError
from hotcb.kernel import HotKernel
from hotcb.ledger import read_ledger
from hotcb.runlock import RunDirBusy
from hotcb.stream import CommandStream

HOTCB = shutil.which("hotcb") or ""
HEARTBEAT = {
    "kind": "module",
    "path": "hotcb.modules.cb.callbacks.heartbeat",
    "symbol": "HeartbeatCallback",
}
CALLBACK = (
    "class Cb:\n    def __init__(self, id='cb', tag={tag!r}): self.id = id\n"
    "    def handle(self, e, env): pass\n    def set_params(self, **kw): pass\n"
)


def load_file(kernel: Any, cb_id: str, path: Path) -> None:
    CommandStream(kernel.run_dir.commands).append(
        {
            "op": "load",
            "id": cb_id,
            "target": {"kind": "python_file", "path": str(path), "symbol": "Cb"},
        }
    )


# -- the run dir removed mid-run --------------------------------------------------------


@pytest.mark.parametrize("how", ["deleted", "deleted and recreated empty"])
def test_run_dir_removed_mid_run_is_recreated_and_file_loads_keep_working(
    kernel_factory: Any, tmp_path: Path, caplog: Any, log_lines: Any, how: str
) -> None:
    kernel = kernel_factory(state_interval=0)
    first, second = tmp_path / "first.py", tmp_path / "second.py"
    first.write_text(CALLBACK.format(tag="1"))
    second.write_text(CALLBACK.format(tag="2"))
    CommandStream(kernel.run_dir.commands).append(
        {"op": "load", "id": "hb", "target": HEARTBEAT, "init": {"every": 1}}
    )
    load_file(kernel, "first", first)
    kernel.apply({"step": 1, "log": log_lines}, ["train_step_end"])
    shutil.rmtree(kernel.run_dir.path)
    if how == "deleted and recreated empty":
        kernel.run_dir.path.mkdir(mode=0o700)
    for step in range(2, 30):
        kernel.apply({"step": step, "log": log_lines}, ["train_step_end"])  # never raises
    assert log_lines.lines[-1] == "[hb] train_step_end step=29"
    load_file(kernel, "second", second)
    CommandStream(kernel.run_dir.commands).append({"op": "set", "id": "hb", "params": {"every": 2}})
    for step in range(30, 33):
        kernel.apply({"step": step, "log": log_lines}, ["train_step_end"])
    status = kernel.modules["cb"].status()
    assert status["second"]["loaded"] and status["second"]["error"] is None
    assert status["hb"]["params"] == {"every": 2}
    assert caplog.text.count("was removed while the run was going; recreated it") == 1
    assert "cannot write" not in caplog.text
    entries = read_ledger(kernel.run_dir.ledger).entries
    assert entries[0].op == "recreate" and set(entries[0].payload["state"]["cb"]) == {
        "hb",
        "first",
    }
    assert [(e.id, e.decision) for e in entries if e.source == "external"] == [
        ("second", "applied"),
        ("hb", "applied"),
    ]
    state = json.loads(kernel.run_dir.state.read_text())["callbacks"]
    assert state["hb"]["params"] == {"every": 2}
    sha = status["second"]["sha256"]
    assert (kernel.run_dir.sources / f"{sha}.py").read_text() == CALLBACK.format(tag="2")
    assert kernel.run_dir.lock.exists()  # the recreated dir is locked again


# -- two kernels on one run dir ---------------------------------------------------------

HOLDER = """
import os, sys, time
from hotcb.kernel import HotKernel
kernel = HotKernel(run_dir=sys.argv[1], poll_interval=0, register=False)
child = os.fork()  # like a DataLoader worker: it must not keep the run dir locked
if child == 0:
    time.sleep(60)
    os._exit(0)
print(child, flush=True)
step = 0
while True:
    step += 1
    kernel.apply({"step": step}, ["train_step_end"])
    time.sleep(0.005)
"""


@pytest.mark.subprocess
def test_a_second_kernel_on_a_run_dir_refuses_to_start_naming_the_first(tmp_path: Path) -> None:
    run = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(run)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None
    child = int(holder.stdout.readline())
    try:
        CommandStream(run / "hotcb.commands.jsonl").append(
            {"op": "load", "id": "hb", "target": HEARTBEAT}
        )
        with pytest.raises(RunDirBusy, match=rf"in use by another hotcb kernel \(pid {holder.pid}"):
            HotKernel(run_dir=run, poll_interval=0, register=False)
        if HOTCB:  # readers never take the lock
            status = subprocess.run(
                [HOTCB, "--dir", str(run), "status"], capture_output=True, text=True, timeout=60
            )
            assert status.returncode == 0, status.stderr
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
        # the training process is gone (its forked worker is not): the dir is free again
        kernel = HotKernel(run_dir=run, poll_interval=0, register=False)
    finally:
        holder.kill()
        holder.wait(10)
        os.kill(child, signal.SIGKILL)
    try:
        kernel.apply({"step": 1}, ["train_step_end"])
    finally:
        kernel.close()
    loads = [e for e in read_ledger(run / "hotcb.applied.jsonl").entries if e.op == "load"]
    assert len({e.seq for e in loads}) == len(loads)  # no seq written twice
    assert json.loads((run / "hotcb.lock").read_text())["pid"] == os.getpid()


def test_one_process_one_kernel_per_run_dir_until_closed_or_dropped(tmp_path: Path) -> None:
    run = tmp_path / "run"
    first = HotKernel(run_dir=run, register=False)
    with pytest.raises(RunDirBusy, match="this process already has a kernel open on it"):
        HotKernel(run_dir=run, register=False)
    first.close()
    second = HotKernel(run_dir=run, register=False)
    del second  # dropped without close(): its run dir is free for the next one
    HotKernel(run_dir=run, register=False).close()


# -- symlinks planted in a run dir that others can write to ------------------------------


@pytest.fixture
def shared_run(tmp_path: Path) -> tuple[Path, Path]:
    """A run dir and a file of the victim's that a planted symlink points at.

    The symlinks below are what anyone could plant in a run dir others can write to (a
    Hydra output dir made under umask 000); the dir itself stays private here so that
    these tests are about what the kernel opens, not about the dir's mode.
    """
    run = tmp_path / "run"
    run.mkdir(mode=0o700)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    return run, victim


def test_the_state_file_is_never_written_through_a_symlink_at_its_temp_name(
    shared_run: tuple[Path, Path],
) -> None:
    run, victim = shared_run
    # hotcb <= 0.1 wrote the state to .hotcb.state.json.<pid>.tmp: predictable
    os.symlink(victim, run / f".hotcb.state.json.{os.getpid()}.tmp")
    kernel = HotKernel(run_dir=run, poll_interval=0, register=False)
    CommandStream(kernel.run_dir.commands).append({"op": "load", "id": "hb", "target": HEARTBEAT})
    kernel.apply({"step": 1}, ["train_step_end"])
    kernel.close()
    assert victim.read_text() == "precious\n"
    assert json.loads((run / "hotcb.state.json").read_text())["callbacks"]["hb"]["loaded"]


def test_a_ledger_replaced_by_a_symlink_mid_run_is_refused_not_followed(
    shared_run: tuple[Path, Path], caplog: Any
) -> None:
    run, victim = shared_run
    kernel = HotKernel(run_dir=run, poll_interval=0, register=False)
    stream = CommandStream(kernel.run_dir.commands)
    stream.append({"op": "load", "id": "hb", "target": HEARTBEAT})
    kernel.apply({"step": 1}, ["train_step_end"])
    os.rename(kernel.run_dir.ledger, run / "moved.jsonl")
    os.symlink(victim, kernel.run_dir.ledger)
    for every in (2, 3):
        stream.append({"op": "set", "id": "hb", "params": {"every": every}})
        kernel.apply({"step": every}, ["train_step_end"])
    assert victim.read_text() == "precious\n"
    assert kernel.modules["cb"].status()["hb"]["params"] == {"every": 3}  # training went on
    assert caplog.text.count("it is a symbolic link, not a regular file") == 1
    kernel.close()
    with pytest.raises(NotRegularFileError, match="symbolic link"):
        HotKernel(run_dir=run, register=False)  # nor replayed through at the next start


@pytest.mark.parametrize("name", ["hotcb.commands.jsonl", "hotcb.lock"])
def test_other_run_dir_files_are_not_followed_either(
    shared_run: tuple[Path, Path], caplog: Any, name: str
) -> None:
    run, victim = shared_run
    os.symlink(victim, run / name)
    if name == "hotcb.lock":
        with pytest.raises(NotRegularFileError, match="symbolic link"):
            HotKernel(run_dir=run, register=False)
    else:
        kernel = HotKernel(run_dir=run, poll_interval=0, register=False)
        for step in range(3):
            kernel.apply({"step": step}, ["train_step_end"])
        kernel.close()
        assert caplog.text.count("it is a symbolic link, not a regular file") == 1
        refusals = [e for e in read_ledger(run / "hotcb.applied.jsonl").entries if e.op == "refuse"]
        assert len(refusals) == 1
    assert victim.read_text() == "precious\n"


def test_a_captured_source_is_never_written_through_a_symlink(
    shared_run: tuple[Path, Path], tmp_path: Path
) -> None:
    from hotcb.modules.cb.loader import sha256_bytes

    run, victim = shared_run
    src = tmp_path / "cb.py"
    src.write_text(CALLBACK.format(tag="x"))
    kernel = HotKernel(run_dir=run, poll_interval=0, register=False)
    planted = kernel.run_dir.sources / f"{sha256_bytes(src.read_bytes())}.py"
    os.symlink(victim, planted)
    load_file(kernel, "cb", src)
    kernel.apply({"step": 1}, ["train_step_end"])
    kernel.close()
    assert victim.read_text() == "precious\n"
    assert not planted.is_symlink() and planted.read_bytes() == src.read_bytes()
