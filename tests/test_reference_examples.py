"""The reference project's doc examples for callbacks, each redone here against hotcb with the
reference's spellings (sidphbot/hotcb docs/examples/bare_torch_example.py,
custom_callback_example.py, cli_walkthrough.md; its Lightning and HF examples are in
tests/adapters/test_reference_adapter_examples.py). What each does is reproduced, not its code: the bare loop and the
custom callback in this process (CliRunner for the commands), the walkthrough as one real
training process driven by the real ``hotcb`` command."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from hotcb.cli import cli
from hotcb.kernel import HotKernel
from hotcb.ledger import read_ledger
from tests.helpers import Child, hotcb, needs_hotcb, run_state

CALLBACKS = "hotcb.modules.cb.callbacks"


def invoke(*args: str) -> None:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output


def test_bare_torch_example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # `hotcb --dir runs/exp-001 init`, then a plain loop with HotKernel(run_dir, debounce_steps=1)
    torch = pytest.importorskip("torch")
    monkeypatch.chdir(tmp_path)
    invoke("--dir", "runs/exp-001", "init")
    Path("runs/exp-001/hotcb.yaml").write_text(
        "version: 1\ncb:\n  callbacks:\n    timing:\n      enabled: true\n"
        f"      target: {{kind: module, path: {CALLBACKS}.timing, symbol: TimingCallback}}\n"
        "      init: {every: 7}\n"
    )
    torch.manual_seed(0)
    model = torch.nn.Linear(16, 1)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    mutable_state = {"weights": {"mse": 1.0}, "terms": {}, "ramps": {}}
    kernel = HotKernel(run_dir="runs/exp-001", debounce_steps=1)
    dataset = torch.utils.data.TensorDataset(torch.randn(200, 16), torch.randn(200, 1))
    loader = torch.utils.data.DataLoader(dataset, batch_size=32)
    printed: list[str] = []
    for epoch in range(5):
        for step, (x, y) in enumerate(loader):
            optimizer.zero_grad()
            loss = mutable_state["weights"]["mse"] * torch.nn.functional.mse_loss(model(x), y)
            loss.backward()
            optimizer.step()
            env = {"step": epoch * len(loader) + step, "epoch": epoch, "phase": "train",
                   "model": model, "optimizer": optimizer, "loss": loss,
                   "mutable_state": mutable_state, "log": printed.append}  # fmt: skip
            kernel.apply(env, events=["train_step_end"])
    kernel.close()
    [load] = read_ledger(Path("runs/exp-001/hotcb.applied.jsonl")).entries
    assert (load.op, load.id, load.source, load.decision, load.phase) == (
        "load", "timing", "config", "applied", "train",
    )  # fmt: skip
    assert [line.split()[1] for line in printed] == [f"step={s}" for s in (7, 14, 21, 28)]
    assert run_state("runs/exp-001")["callbacks"]["timing"]["params"] == {"every": 7}


GRAD_MONITOR = '''
class GradMonitor:
    """Warns when the gradient norm passes a threshold (the reference's custom example)."""

    def __init__(self, id, every=50, threshold=10.0):
        self.id, self.every, self.threshold = id, every, threshold
        self.high = 0

    def set_params(self, **kwargs):
        self.every = int(kwargs.get("every", self.every))
        self.threshold = float(kwargs.get("threshold", self.threshold))

    def handle(self, event, env):
        step = env.get("step", 0)
        if event != "train_step_end" or step % self.every or env.get("model") is None:
            return
        grads = [p.grad for p in env["model"].parameters() if p.grad is not None]
        if not grads:
            return
        norm = sum(float(g.norm(2)) ** 2 for g in grads) ** 0.5
        warn = "WARNING " if norm > self.threshold else ""
        env["log"](f"[{self.id}] {warn}grad_norm={norm:.3f} threshold={self.threshold} step={step}")
'''


def test_custom_callback_example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    torch = pytest.importorskip("torch")
    monkeypatch.chdir(tmp_path)
    Path("grad_monitor.py").write_text(GRAD_MONITOR)
    invoke("--dir", "runs/demo", "init")
    kernel = HotKernel(run_dir="runs/demo", debounce_steps=1)
    where = ("--dir", "runs/demo")
    live = {
        0: ["cb", "load", "grad_monitor", "--file", "grad_monitor.py", "--symbol", "GradMonitor",
            "--enabled", "--init", "every=10", "threshold=3.0"],
        50: ["cb", "set", "grad_monitor", "threshold=1.0"],
        100: ["disable", "grad_monitor"],
        150: ["enable", "grad_monitor"],
    }  # fmt: skip
    torch.manual_seed(0)
    model = torch.nn.Linear(16, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    printed: list[tuple[int, str]] = []
    for step in range(200):
        if step in live:
            invoke(*where, *live[step])  # "from a second terminal"
        x, y = torch.randn(8, 16), torch.randn(8, 1)
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        optimizer.step()
        kernel.apply({"step": step, "phase": "train", "model": model, "optimizer": optimizer,
                      "loss": loss, "log": lambda m, s=step: printed.append((s, m))},
                     events=["train_step_end"])  # fmt: skip
        optimizer.zero_grad()
        time.sleep(0.002)  # a training step takes time: each command lands within 50 steps
    kernel.close()
    entries = [e for e in read_ledger(Path("runs/demo/hotcb.applied.jsonl")).entries]
    assert [(e.op, e.decision) for e in entries] == [
        ("load", "applied"), ("set", "applied"), ("disable", "applied"), ("enable", "applied"),
    ]  # fmt: skip
    at = [e.step for e in entries]
    assert all(q <= s < q + 50 for q, s in zip(live, at, strict=True)), at
    assert entries[0].payload["init"] == {"every": 10, "threshold": 3.0}
    assert (Path("runs/demo") / entries[0].payload["source_capture"]["captured_path"]).is_file()
    logged = [s for s, m in printed if m.startswith("[grad_monitor] ")]
    assert logged and all(s % 10 == 0 for s in logged)
    assert not [s for s in logged if at[2] <= s < at[3]]  # nothing while disabled
    assert all("threshold=1.0" in m for s, m in printed if s >= at[1])


TRAIN = """
import os, sys, time
from hotcb.kernel import HotKernel

run_dir = sys.argv[1]
kernel = HotKernel(run_dir=run_dir, debounce_steps=1)
print("training", flush=True)
step = 0
while not os.path.exists(os.path.join(run_dir, "stop")):
    step += 1
    kernel.apply({"step": step, "epoch": 0, "phase": "train", "loss": 1.0 / step,
                  "log": lambda m: print(m, flush=True)}, ["train_step_end"])
    time.sleep(0.002)
kernel.close()
"""

MY_DIAG = """
class MyDiag:
    def __init__(self, id, prefix="step"):
        self.id, self.prefix = id, prefix
    def set_params(self, **kwargs):
        self.prefix = kwargs.get("prefix", self.prefix)
    def handle(self, event, env):
        if event == "train_step_end":
            print(f"[{self.id}] {self.prefix}={env.get('step')}", flush=True)
"""


def say(*words: str, ok: bool = True) -> Any:
    """One command "from a second terminal" through CliRunner (the real ``hotcb`` process is
    used where the process is the point: init, status, a load, an error)."""
    result = CliRunner().invoke(cli, list(words))
    assert result.exit_code == (0 if ok else 1), (result.output, result.stderr)
    return result


@needs_hotcb
@pytest.mark.subprocess
@pytest.mark.slow(5)
def test_cli_walkthrough(tmp_path: Path, spawn: Callable[..., Child]) -> None:
    run = tmp_path / "runs" / "exp1"
    d = ("--dir", str(run))
    hotcb(*d, "init")  # Setup
    assert sorted(p.name for p in run.iterdir()) == [
        "hotcb.commands.jsonl", "hotcb.sources", "hotcb.yaml",
    ]  # fmt: skip
    child = spawn([sys.executable, "-c", TRAIN, str(run)])
    child.wait_line("training")

    def state_has(cb_id: str, **want: Any) -> Callable[[], bool]:
        def check() -> bool:
            entry = run_state(run).get("callbacks", {}).get(cb_id)
            return entry is not None and all(entry.get(k) == v for k, v in want.items())

        return check

    child.wait_for(lambda: run_state(run).get("pid"), what="the run's state")
    assert "live" in hotcb(*d, "status").stdout  # 1. check status
    hotcb(
        *d,
        "cb",
        "load",
        "timing",
        "--path",
        f"{CALLBACKS}.timing",
        "--symbol",
        "TimingCallback",
        "--enabled",
        "--init",
        "every=50",
        "window=200",
    )  # 2. built-ins
    say(
        *d,
        "cb",
        "load",
        "sys",
        "--path",
        f"{CALLBACKS}.system_stats",
        "--symbol",
        "SystemStatsCallback",
        "--enabled",
        "--init",
        "every=100",
    )
    say(
        *d,
        "cb",
        "load",
        "anomaly",
        "--path",
        f"{CALLBACKS}.anomaly_guard",
        "--symbol",
        "AnomalyGuardCallback",
        "--enabled",
        "--init",
        "raise_on_trigger=false",
    )
    child.wait_for(state_has("anomaly", enabled=True), what="the three loads applied")
    say(*d, "disable", "timing")  # 3. enable / disable
    child.wait_for(state_has("timing", enabled=False), what="timing disabled")
    say(*d, "enable", "timing")
    say(*d, "cb", "set", "timing", "every=25", "window=100")  # 4. reconfigure
    child.wait_for(state_has("timing", enabled=True, params={"every": 25, "window": 100}))
    wrong = hotcb(*d, "set", "every=25", ok=False)  # "won't auto-route": says why, one line
    assert wrong.stderr.count("\n") == 1 and "the first argument is the callback id" in wrong.stderr
    diag = tmp_path / "my_diag.py"  # 5. a custom callback from a file
    diag.write_text(MY_DIAG)
    say(
        *d,
        "cb",
        "load",
        "my_diag",
        "--file",
        str(diag),
        "--symbol",
        "MyDiag",
        "--enabled",
        "--init",
        "prefix=batch",
    )
    child.wait_line("[my_diag] batch=")
    refused = say(*d, "opt", "set_params", "lr=5e-5", ok=False)  # 6./7. no opt/loss modules
    assert refused.stderr.startswith("hotcb: error: ") and refused.stderr.count("\n") == 1
    say(*d, "cb", "unload", "my_diag")  # 8. unload
    child.wait_for(lambda: "my_diag" not in run_state(run).get("callbacks", {"my_diag": 1}))
    (run / "stop").touch()
    child.finish(timeout=60)

    # 9. the applied ledger, read line by line as the walkthrough's `tail` shows it
    lines = [json.loads(x) for x in (run / "hotcb.applied.jsonl").read_text().splitlines()]
    ops = [(e["module"], e["op"], e["id"]) for e in lines if e["source"] == "external"]
    assert ops == [
        ("cb", "load", "timing"), ("cb", "load", "sys"), ("cb", "load", "anomaly"),
        ("cb", "disable", "timing"), ("cb", "enable", "timing"), ("cb", "set", "timing"),
        ("cb", "load", "my_diag"), ("cb", "unload", "my_diag"),
    ]  # fmt: skip
    assert all(e["decision"] == "applied" and e["event"] == "train_step_end" for e in lines)
    assert all(isinstance(e["step"], int) and e["phase"] == "train" for e in lines)
    capture = next(e for e in lines if e["id"] == "my_diag")["payload"]["source_capture"]
    assert (run / capture["captured_path"]).read_text() == MY_DIAG
    assert "[timing] step=" in child.text and "[sys] step=" in child.text
