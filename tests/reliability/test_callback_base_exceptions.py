"""SystemExit, KeyboardInterrupt and GeneratorExit raised by a callback are errors like any
other: they never escape apply, the callback is disabled or the op fails, training goes on.
Only the user's own Ctrl-C (a real SIGINT) still stops training."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from hotcb.ledger import read_ledger
from hotcb.stream import CommandStream

RAISER = """
import builtins

class Raiser:
    def __init__(self, id="r", where="", exc=""):
        self.id, self.where, self.exc = id, where, exc
        self._maybe("__init__")

    def _maybe(self, name):
        if self.where == name:
            raise getattr(builtins, self.exc)()

    def on_attach(self, env):
        self._maybe("on_attach")

    def handle(self, event, env):
        self._maybe("handle")

    def set_params(self, **kwargs):
        self._maybe("set_params")

    def close(self):
        self._maybe("close")
"""
HEARTBEAT = {
    "kind": "module",
    "path": "hotcb.modules.cb.callbacks.heartbeat",
    "symbol": "HeartbeatCallback",
}


@pytest.mark.parametrize("exc", ["SystemExit", "KeyboardInterrupt", "GeneratorExit"])
@pytest.mark.parametrize("where", ["__init__", "on_attach", "handle", "set_params", "close"])
def test_base_exceptions_from_a_callback_do_not_escape_apply(
    kernel_factory: Any, tmp_path: Path, log_lines: Any, caplog: Any, where: str, exc: str
) -> None:
    src = tmp_path / "raiser.py"
    src.write_text(RAISER)
    kernel = kernel_factory()
    stream = CommandStream(kernel.run_dir.commands)
    target = {"kind": "python_file", "path": str(src), "symbol": "Raiser"}
    stream.append({"op": "load", "id": "hb", "target": HEARTBEAT, "init": {"every": 1}})
    stream.append({"op": "load", "id": "r", "target": target, "init": {"where": where, "exc": exc}})
    kernel.apply({"step": 1, "log": log_lines}, ["train_step_end"])
    stream.append({"op": "set", "id": "r", "params": {"x": 1}})
    kernel.apply({"step": 2, "log": log_lines}, ["train_step_end"])
    stream.append({"op": "unload", "id": "r"})
    kernel.apply({"step": 3, "log": log_lines}, ["train_step_end"])  # none of these raised

    assert log_lines.matching("[hb]") == [f"[hb] train_step_end step={s}" for s in (1, 2, 3)]
    entries = [
        (e.op, e.id, e.source, e.decision, e.error or "")
        for e in read_ledger(kernel.run_dir.ledger).entries
        if e.id == "r"
    ]
    decisions = [(op, source, decision) for op, _, source, decision, _ in entries]
    errors = " | ".join(error for *_, error in entries)
    if where == "__init__":  # the load fails; nothing to set or unload
        assert decisions[0] == ("load", "external", "failed")
        assert f"Raiser(...) raised {exc}" in errors
    elif where in ("on_attach", "handle"):  # auto-disabled, like any error
        assert decisions[:2] == [("load", "external", "applied"), ("disable", "auto", "applied")]
        assert f"{exc} (in {'on_attach' if where == 'on_attach' else 'train_step_end'})" in errors
        assert decisions[2:] == [("set", "external", "applied"), ("unload", "external", "applied")]
    elif where == "set_params":  # the set fails, the callback keeps running
        assert decisions == [
            ("load", "external", "applied"),
            ("set", "external", "failed"),
            ("unload", "external", "applied"),
        ]
        assert f"set_params(x=1) raised {exc}" in errors
    else:  # close: reported, the unload still happens
        assert decisions[-1] == ("unload", "external", "applied")
        assert "close() of callback 'r' raised" in caplog.text and exc in caplog.text
    assert "r" not in kernel.modules["cb"].status()


CTRL_C = """
import sys
from hotcb.kernel import HotKernel
from hotcb.stream import CommandStream

run, src = sys.argv[1], sys.argv[2]
kernel = HotKernel(run_dir=run, poll_interval=0, register=False)
stream = CommandStream(kernel.run_dir.commands)
for cb_id, symbol in (("fake", "FakeCtrlC"), ("slow", "Slow")):
    stream.append({"op": "load", "id": cb_id,
                   "target": {"kind": "python_file", "path": src, "symbol": symbol}})
try:
    step = 0
    while True:
        step += 1
        kernel.apply({"step": step, "log": print}, ["train_step_end"])
finally:
    kernel.close()
"""
CALLBACKS = """
import time

class FakeCtrlC:
    def __init__(self, id): self.id = id
    def set_params(self, **kwargs): ...
    def handle(self, event, env):
        if env["step"] == 2:
            raise KeyboardInterrupt  # raised by code, not by the user: contained

class Slow:
    def __init__(self, id): self.id = id
    def set_params(self, **kwargs): ...
    def handle(self, event, env):
        if env["step"] == 5:
            print("in slow handle", flush=True)
            time.sleep(60)  # the user's Ctrl-C arrives here, inside the callback
"""


@pytest.mark.subprocess
def test_the_users_ctrl_c_inside_a_callback_still_stops_training(tmp_path: Path) -> None:
    src = tmp_path / "cbs.py"
    src.write_text(CALLBACKS)
    run = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-c", CTRL_C, str(run), str(src)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("in slow handle"):
                break
        assert any("callback 'fake' raised in train_step_end at step 2" in x for x in lines)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGINT  # died of the KeyboardInterrupt, as Python does
    assert stderr.rstrip().endswith("KeyboardInterrupt")
    assert f'File "{src}", line' in stderr.split("Traceback")[-1]  # raised inside Slow.handle
    state = json.loads((run / "hotcb.state.json").read_text())
    assert state["closed"] is True and state["step"] == 5
    assert state["callbacks"]["slow"]["enabled"] is True  # the user's Ctrl-C is not its error
    assert state["callbacks"]["fake"]["enabled"] is False
    disabled = [e.id for e in read_ledger(run / "hotcb.applied.jsonl").entries if e.op == "disable"]
    assert disabled == ["fake"]
