"""The opt-in watchdog: a callback call past its ``_timeout_`` is shown as stuck (with its
stack) while it runs, recorded and auto-disabled when it returns; without a timeout there
is no watchdog at all; bad budgets are refused at the edge and in the kernel."""

from __future__ import annotations

import gc
import json
import signal
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hotcb.ledger import LedgerEntry, read_ledger
from hotcb.ops import Op
from hotcb.stream import CommandStream

TRAINER = """
import os, sys, time
from hotcb.kernel import HotKernel
run = sys.argv[1]
kernel = HotKernel(run_dir=run, poll_interval=0.01, register=False)
print("ready", flush=True)
env = {"step": 0}
while not os.path.exists(os.path.join(run, "stop")):
    env["step"] += 1
    kernel.apply(env, ["train_step_end"])
    time.sleep(0.002)
print("finished at step", env["step"], flush=True)
kernel.close()
"""

#: A callback that, once ``<gate>.go`` exists, loops in handle until ``<gate>.release`` does.
SLOW = """import os
import time


class Slow:
    def __init__(self, id="slow", gate=""):
        self.id, self.gate = id, gate

    def handle(self, event, env):
        if os.path.exists(self.gate + ".go") and not os.path.exists(self.gate + ".done"):
            open(self.gate + ".done", "w").close()
            while not os.path.exists(self.gate + ".release"):
                time.sleep(0.01)  # stuck here

    def set_params(self, **kwargs):
        pass
"""
STUCK_LINE = SLOW.splitlines().index("                time.sleep(0.01)  # stuck here") + 1


def hotcb(*args: str) -> subprocess.CompletedProcess[str]:
    """The real ``hotcb`` CLI, in its own process."""
    return subprocess.run(
        [sys.executable, "-m", "hotcb", *args], capture_output=True, text=True, timeout=60
    )


def wait_for(predicate: Any, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("timed out waiting")


def entries(run: Path, op: str) -> list[LedgerEntry]:
    return [e for e in read_ledger(run / "hotcb.applied.jsonl").entries if e.op == op]


def callback_state(run: Path, cb_id: str) -> dict[str, Any] | None:
    try:
        state = json.loads((run / "hotcb.state.json").read_text())
    except (OSError, ValueError):
        return None
    found: dict[str, Any] | None = state["callbacks"].get(cb_id)
    return found


def watchdog_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "hotcb-watchdog"]


@pytest.fixture
def training(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path, Path, Path]]:
    """A real training process (its run dir), the slow callback's file and its gate."""
    run = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-c", TRAINER, str(run)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    (tmp_path / "cb").mkdir()
    source = tmp_path / "cb" / "slow.py"
    source.write_text(SLOW)
    yield proc, run, source, tmp_path / "gate"
    if proc.poll() is None:
        (tmp_path / "gate.release").touch()
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def finish(proc: subprocess.Popen[str], run: Path) -> tuple[str, str]:
    (run / "stop").touch()
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    return out, err


@pytest.mark.subprocess
def test_a_stuck_callback_is_shown_while_stuck_then_recorded_and_disabled(
    training: tuple[subprocess.Popen[str], Path, Path, Path],
) -> None:
    proc, run, source, gate = training
    load = hotcb(
        *("--dir", str(run), "cb", "load", "slow", "--file", str(source), "--symbol", "Slow"),
        *("--init", f"gate={gate}", "--timeout", "0.3"),
    )
    assert load.returncode == 0, load.stderr
    wait_for(lambda: callback_state(run, "slow"))
    gate.with_suffix(".go").touch()

    # while it is stuck: `hotcb status` names the callback, the event and the line it is on
    wait_for(lambda: (run / "hotcb.stuck.json").exists())
    shown = hotcb("--dir", str(run), "status")
    assert shown.returncode == 0, shown.stderr
    assert "STUCK: slow handle(train_step_end) has run" in shown.stdout
    assert "budget 0.3 s" in shown.stdout and "hotcb cannot stop it" in shown.stdout
    assert f'slow.py", line {STUCK_LINE}, in handle' in shown.stdout
    as_json = hotcb("--dir", str(run), "status", "--json")
    (stuck,) = json.loads(as_json.stdout)["stuck"]
    assert (stuck["id"], stuck["call"], stuck["event"], stuck["budget"]) == (
        "slow",
        "handle",
        "train_step_end",
        0.3,
    )
    assert stuck["seconds"] > 0.3 and isinstance(stuck["step"], int)
    assert f'slow.py", line {STUCK_LINE}, in handle' in stuck["stack"][-1]
    time.sleep(0.3)  # stuck a while longer

    gate.with_suffix(".release").touch()
    (disabled,) = wait_for(lambda: entries(run, "disable"))
    wait_for(lambda: not (run / "hotcb.stuck.json").exists())
    assert "STUCK" not in hotcb("--dir", str(run), "status").stdout
    out, err = finish(proc, run)

    (recorded,) = entries(run, "stuck")
    assert (recorded.id, recorded.source, recorded.decision) == ("slow", "auto", "failed")
    assert recorded.payload["seconds"] >= stuck["seconds"] + 0.3
    assert recorded.payload["budget"] == 0.3 and recorded.payload["event"] == "train_step_end"
    assert f"line {STUCK_LINE}, in handle" in recorded.payload["stack"][-1]
    assert (recorded.error or "").startswith("stuck: handle(train_step_end) ran")
    assert (disabled.source, disabled.decision, disabled.seq) == (
        "auto",
        "applied",
        recorded.seq + 1,
    )
    final = callback_state(run, "slow")
    assert final is not None and final["enabled"] is False
    assert "over its 0.3 s budget" in final["error"]
    assert int(out.split("finished at step")[1]) > recorded.step  # training went on
    assert err.count("is stuck") == 1  # logged once, from the side thread
    assert "re-enable with: hotcb cb enable slow" in err


@pytest.mark.subprocess
def test_a_timeout_can_be_set_live_with_cb_set(
    training: tuple[subprocess.Popen[str], Path, Path, Path],
) -> None:
    proc, run, source, gate = training
    load = hotcb(
        *("--dir", str(run), "cb", "load", "slow", "--file", str(source), "--symbol", "Slow"),
        *("--init", f"gate={gate}"),
    )
    assert load.returncode == 0, load.stderr
    wait_for(lambda: callback_state(run, "slow"))
    assert hotcb("--dir", str(run), "cb", "set", "slow", "_timeout_=0.2").returncode == 0
    wait_for(
        lambda: (
            (callback_state(run, "slow") or {}).get("params")
            == {"gate": str(gate), "_timeout_": 0.2}
        )
    )
    gate.with_suffix(".go").touch()
    wait_for(lambda: (run / "hotcb.stuck.json").exists())
    gate.with_suffix(".release").touch()
    (recorded,) = wait_for(lambda: entries(run, "stuck"))
    finish(proc, run)
    assert recorded.payload["budget"] == 0.2 and recorded.payload["seconds"] > 0.2


DOOMED = SLOW.replace(
    "                time.sleep(0.01)  # stuck here\n",
    "                time.sleep(0.01)  # stuck here\n            os._exit(3)\n",
)


@pytest.mark.subprocess
def test_os_exit_while_stuck_cannot_be_recorded_but_status_shows_what_was_running(
    training: tuple[subprocess.Popen[str], Path, Path, Path],
) -> None:
    proc, run, source, gate = training
    source.write_text(DOOMED)
    load = hotcb(
        *("--dir", str(run), "cb", "load", "doomed", "--file", str(source), "--symbol", "Slow"),
        *("--init", f"gate={gate}", "--timeout", "0.1"),
    )
    assert load.returncode == 0, load.stderr
    wait_for(lambda: callback_state(run, "doomed"))
    gate.with_suffix(".go").touch()
    wait_for(lambda: (run / "hotcb.stuck.json").exists())
    gate.with_suffix(".release").touch()
    assert proc.wait(30) == 3  # os._exit: no finally, nothing recorded
    assert entries(run, "stuck") == []
    shown = hotcb("--dir", str(run), "status")
    assert "not live" in shown.stdout
    assert "STUCK when the run ended: doomed handle(train_step_end) had run" in shown.stdout
    assert f'slow.py", line {STUCK_LINE}, in handle' in shown.stdout


HEARTBEAT = {
    "kind": "module",
    "path": "hotcb.modules.cb.callbacks.heartbeat",
    "symbol": "HeartbeatCallback",
}


def test_no_timeout_no_watchdog_and_the_callbacks_own_methods(kernel_factory: Any) -> None:
    kernel = kernel_factory()
    stream = CommandStream(kernel.run_dir.commands)
    stream.append({"op": "load", "id": "hb", "target": HEARTBEAT, "init": {"every": 1}})
    for step in range(1, 4):
        kernel.apply({"step": step}, ["train_step_end"])
    controller = kernel.modules["cb"].controller
    hb = controller.get("hb")
    assert watchdog_threads() == []
    assert controller._by_event == {"train_step_end": (hb.handle,)}  # its own method,
    assert "handle" not in vars(hb)  # not wrapped

    stream.append({"op": "set", "id": "hb", "params": {"_timeout_": 5}})
    kernel.apply({"step": 4}, ["train_step_end"])
    assert len(watchdog_threads()) == 1
    assert {"handle", "set_params"} <= set(vars(hb))  # wrapped while it has a budget

    stream.append({"op": "set", "id": "hb", "params": {"_timeout_": None}})
    kernel.apply({"step": 5}, ["train_step_end"])
    wait_for(lambda: watchdog_threads() == [], timeout=5)
    assert controller._by_event == {"train_step_end": (hb.handle,)}
    assert "handle" not in vars(hb)
    assert [e.decision for e in entries(kernel.run_dir.path, "set")] == ["applied", "applied"]


SLEEPY = """import time


class Sleepy:
    def __init__(self, id="sleepy", nap=0.0):
        self.id, self.nap = id, nap

    def handle(self, event, env):
        pass

    def set_params(self, nap=0.0):
        time.sleep(nap)
        self.nap = nap

    def close(self):
        time.sleep(self.nap)
"""


def test_set_params_and_close_are_watched_and_auto_disable_follows_the_setting(
    kernel_factory: Any, tmp_path: Path
) -> None:
    source = tmp_path / "sleepy.py"
    source.write_text(SLEEPY)
    target = {"kind": "python_file", "path": str(source), "symbol": "Sleepy"}
    kernel = kernel_factory(auto_disable_on_error=False)
    stream = CommandStream(kernel.run_dir.commands)
    stream.append({"op": "load", "id": "s", "target": target, "init": {"_timeout_": 0.05}})
    stream.append({"op": "set", "id": "s", "params": {"nap": 0.15}})
    kernel.apply({"step": 1}, ["train_step_end"])
    (stuck,) = entries(kernel.run_dir.path, "stuck")
    assert (stuck.payload["call"], stuck.decision, stuck.step) == ("set_params", "failed", 1)
    status = kernel.modules["cb"].status()["s"]
    assert status["enabled"] is True  # auto_disable_on_error=False: reported, kept
    assert "set_params() ran" in status["error"]

    kernel2 = kernel_factory(run_dir=tmp_path / "run2")
    init = {"nap": 0.15, "_timeout_": 0.05}
    CommandStream(kernel2.run_dir.commands).append(
        {"op": "load", "id": "s", "target": target, "init": init}
    )
    kernel2.apply({"step": 1}, ["train_step_end"])
    CommandStream(kernel2.run_dir.commands).append({"op": "unload", "id": "s"})
    kernel2.apply({"step": 2}, ["train_step_end"])
    (stuck,) = entries(kernel2.run_dir.path, "stuck")
    assert stuck.payload["call"] == "close" and entries(kernel2.run_dir.path, "disable") == []
    assert watchdog_threads() != []  # kernel (1) still watches its callback
    kernel.close()
    assert watchdog_threads() == []  # stopped at kernel close

    # a slow close at the end of the run is recorded, not turned into a disable: a resumed
    # run has the callback enabled
    kernel3 = kernel_factory(run_dir=tmp_path / "run3")
    kernel3.submit(Op.from_dict({"op": "load", "id": "s", "target": target, "init": init}))
    kernel3.close()
    (stuck,) = entries(kernel3.run_dir.path, "stuck")
    assert stuck.payload["call"] == "close" and entries(kernel3.run_dir.path, "disable") == []
    resumed = kernel_factory(run_dir=kernel3.run_dir.path)
    assert resumed.modules["cb"].status()["s"]["enabled"] is True


def test_a_replaced_or_unloaded_watched_callback_is_let_go(kernel_factory: Any) -> None:
    kernel = kernel_factory()
    controller = kernel.modules["cb"].controller
    stream = CommandStream(kernel.run_dir.commands)
    load = {"op": "load", "id": "hb", "target": HEARTBEAT, "init": {"_timeout_": 5}}
    stream.append(load)
    kernel.apply({"step": 1}, ["train_step_end"])
    first = weakref.ref(controller.get("hb"))
    stream.append(load)  # replaced
    kernel.apply({"step": 2}, ["train_step_end"])
    gc.collect()
    assert first() is None  # the watchdog holds no replaced instance
    second = weakref.ref(controller.get("hb"))
    stream.append({"op": "unload", "id": "hb"})
    kernel.apply({"step": 3}, ["train_step_end"])
    gc.collect()
    assert second() is None and watchdog_threads() == []


CALLBACK = (
    "class Cb:\n    def __init__(self, id='cb'): self.id = id\n    def handle(self, e, env): pass\n"
    "    def set_params(self, **kw): self.kw = kw\n"
)


@pytest.mark.subprocess
def test_a_bad_timeout_is_refused_with_a_clear_error_and_nothing_changes(
    kernel_factory: Any, tmp_path: Path
) -> None:
    source = tmp_path / "cb.py"
    source.write_text(CALLBACK)
    target = {"kind": "python_file", "path": str(source), "symbol": "Cb"}
    kernel = kernel_factory()
    stream = CommandStream(kernel.run_dir.commands)
    stream.append({"op": "load", "id": "cb", "target": target})
    kernel.apply({"step": 1}, ["train_step_end"])
    run = str(kernel.run_dir.path)
    before = kernel.run_dir.commands.read_bytes()

    # at the edge: the CLI refuses, one line, nothing queued
    for value in ("-1", "abc", "nan"):
        result = hotcb("--dir", run, "cb", "set", "cb", f"_timeout_={value}")
        assert result.returncode == 1, value
        assert result.stderr.startswith("hotcb: error: _timeout_ must be a positive number of")
        assert result.stderr.count("\n") == 1 and "nothing was queued" in result.stderr
    result = hotcb(
        *("--dir", run, "cb", "load", "x", "--file", str(source), "--symbol", "Cb"),
        *("--timeout", "-2"),
    )
    assert result.returncode == 1 and "got -2.0" in result.stderr
    assert kernel.run_dir.commands.read_bytes() == before

    # in the kernel (a command written by other means): failed with the reason, nothing changes
    stream.append({"op": "set", "id": "cb", "params": {"_timeout_": "5", "other": 1}})
    stream.append({"op": "set", "id": "cb", "params": {"_timeout_": 0}})
    stream.append({"op": "set", "id": "cb", "params": {"_timeout_": True}})
    stream.append({"op": "load", "id": "cb2", "target": target, "init": {"_timeout_": -1}})
    kernel.apply({"step": 2}, ["train_step_end"])
    failed = [e for e in read_ledger(kernel.run_dir.ledger).entries if e.decision == "failed"]
    assert [(e.op, e.id) for e in failed] == [("set", "cb")] * 3 + [("load", "cb2")]
    assert "_timeout_ must be a positive number of seconds (or null for no watchdog), got '5'" in (
        failed[0].error or ""
    )
    status = kernel.modules["cb"].status()
    assert list(status) == ["cb"] and status["cb"]["params"] == {}
    assert not hasattr(kernel.modules["cb"].controller.get("cb"), "kw")  # set_params not called
    assert watchdog_threads() == []


def test_under_ddp_the_key_passes_through_and_the_stuck_entry_names_the_rank(
    tmp_path: Path,
) -> None:
    dist = pytest.importorskip("torch.distributed")
    import socket

    from hotcb.distributed import DistributedHotKernel

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    try:
        source = tmp_path / "sleepy.py"
        source.write_text(SLEEPY)
        kernel = DistributedHotKernel(run_dir=tmp_path / "run", sync_every=1, register=False)
        load = Op.from_dict(
            {
                "op": "load",
                "id": "s",
                "target": {"kind": "python_file", "path": str(source), "symbol": "Sleepy"},
                "init": {"_timeout_": 0.05},
            }
        )
        assert kernel.submit(load).decision == "applied"
        CommandStream(tmp_path / "run" / "hotcb.commands.jsonl").append(
            {"op": "set", "id": "s", "params": {"nap": 0.12}}
        )
        for step in range(1, 3):
            kernel.apply({"step": step}, ["train_step_end"])
        kernel.close()
    finally:
        dist.destroy_process_group()
    stuck, at_close = entries(tmp_path / "run", "stuck")
    assert (stuck.payload["call"], at_close.payload["call"]) == ("set_params", "close")
    assert (stuck.payload["rank"], stuck.payload["world_size"]) == (0, 1)
    (disabled,) = entries(tmp_path / "run", "disable")
    assert disabled.source == "auto" and watchdog_threads() == []
