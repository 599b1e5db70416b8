"""The built-in callbacks under the reference project's names and hot parameters, loaded and
changed the way its docs show (command lines in its JSON shape: ``op: set_params``,
``module: cb``), applied by an in-process kernel and checked in the ledger and in what the
callbacks do."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from hotcb.kernel import HotKernel
from hotcb.requests import stop_requested
from tests.helpers import external_entries

CALLBACKS = "hotcb.modules.cb.callbacks"


def target(module: str, symbol: str) -> dict[str, str]:
    return {"kind": "module", "path": f"{CALLBACKS}.{module}", "symbol": symbol}


class Run:
    """An in-process kernel fed through its command file."""

    def __init__(self, kernel: HotKernel) -> None:
        self.kernel = kernel
        self.lines: list[str] = []
        self.step = 0

    def command(self, **command: Any) -> None:
        with open(self.kernel.run_dir.commands, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(command) + "\n")

    def load(self, cb_id: str, module: str, symbol: str, **init: Any) -> Any:
        self.command(module="cb", op="load", id=cb_id, target=target(module, symbol), init=init,
                     enabled=True)  # fmt: skip
        self.steps(1)
        return self.last_entry()

    def set_params(self, cb_id: str, **params: Any) -> Any:
        self.command(module="cb", op="set_params", id=cb_id, params=params)
        self.steps(1)
        return self.last_entry()

    def last_entry(self) -> Any:
        return external_entries(self.kernel.run_dir.path)[-1]

    def steps(self, n: int, **env: Any) -> dict[str, Any]:
        full: dict[str, Any] = {}
        for _ in range(n):
            self.step += 1
            full = {"step": self.step, "log": self.lines.append, "run_dir": str(self.kernel.run_dir.path), **env}  # fmt: skip
            self.kernel.apply(full, ["train_step_end"])
        return full


@pytest.fixture
def run(kernel_factory: Callable[..., Any]) -> Run:
    return Run(kernel_factory(register=False))


def test_heartbeat_message(run: Run) -> None:
    assert (
        run.load("hb", "heartbeat", "HeartbeatCallback", every=2, message="alive").decision
        == "applied"
    )
    run.steps(2)  # loaded at step 1; steps 2 and 3
    assert run.lines == ["[hb] alive train_step_end step=2"]
    assert run.set_params("hb", message="still here").decision == "applied"  # step 4
    run.steps(2)
    assert run.lines[-2:] == [
        "[hb] still here train_step_end step=4",
        "[hb] still here train_step_end step=6",
    ]
    bad = run.set_params("hb", message=5)
    assert bad.decision == "failed" and "message must be a string, got 5" in (bad.error or "")


def test_jsonl_logger_under_its_reference_name_and_params(run: Run) -> None:
    entry = run.load("jsonl", "jsonl_logger", "JSONLLoggerCallback", every=1, out_path="m.jsonl",
                     scalars=["loss", "metrics.eval_loss"])  # fmt: skip
    assert entry.decision == "applied", entry.error
    logits = torch.tensor([[1.0, -1.0]])
    run.steps(1, loss=0.5, metrics={"eval_loss": 0.75})
    assert run.set_params("jsonl", tensor_paths=["outputs.logits"]).decision == "applied"
    run.steps(1, loss=0.25, outputs={"logits": logits}, metrics={})
    assert run.set_params("jsonl", out_path="second.jsonl", scalars=["loss"]).decision == "applied"
    run.steps(1, loss=0.125)
    lines = (run.kernel.run_dir.path / "m.jsonl").read_text().splitlines()
    first = {r["step"]: r for r in map(json.loads, lines)}
    assert first[2]["loss"] == 0.5 and first[2]["metrics.eval_loss"] == 0.75
    assert first[4]["outputs.logits.stats"]["max"] == 1.0 and "metrics.eval_loss" not in first[4]
    second = (run.kernel.run_dir.path / "second.jsonl").read_text().splitlines()
    assert [json.loads(x).get("loss") for x in second] == [None, 0.125]  # steps 5 and 6
    both = run.set_params("jsonl", scalars=["loss"], keys=["loss"])
    assert both.decision == "failed"
    assert "scalars is another name of keys: give one of them" in (both.error or "")
    outside = run.set_params("jsonl", out_path="../outside.jsonl")
    assert outside.decision == "applied"  # refused where it is used: the callback auto-disables
    run.steps(1, loss=1.0)
    assert run.kernel.callbacks.status()["jsonl"]["enabled"] is False
    assert not (run.kernel.run_dir.path.parent / "outside.jsonl").exists()


def test_grad_stats_norm_type(run: Run) -> None:
    assert (
        run.load("g", "grad_stats", "GradStatsCallback", every=1, norm_type=1.0).decision
        == "applied"
    )
    model = torch.nn.Linear(3, 1)
    model(torch.tensor([[1.0, -2.0, 3.0]])).sum().backward()
    run.steps(1, model=model)
    grads = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
    cb = run.kernel.callbacks.get("g")
    assert cb.last["global_norm"] == pytest.approx(float(grads.abs().sum()))
    assert run.set_params("g", norm_type=float("inf")).decision == "applied"
    run.steps(1, model=model)
    assert cb.last["global_norm"] == pytest.approx(float(grads.abs().max()))
    bad = run.set_params("g", norm_type=0)
    assert bad.decision == "failed" and "norm_type must be a number > 0" in (bad.error or "")


def test_tensor_stats_paths_and_prefix(run: Run) -> None:
    entry = run.load("ts", "tensor_stats", "TensorStatsCallback", every=1, paths=["loss", "outputs.logits"],
                     prefix="train/")  # fmt: skip
    assert entry.decision == "applied"
    model = torch.nn.Linear(2, 2)
    run.steps(1, model=model, loss=torch.tensor(0.5), outputs={"logits": torch.tensor([1.0, 3.0])})
    cb = run.kernel.callbacks.get("ts")
    assert sorted(cb.last) == ["train/loss", "train/outputs.logits"]
    assert cb.last["train/outputs.logits"]["value"]["mean"] == 2.0
    assert model._forward_hooks == {}  # given paths and no pattern: no module is watched
    assert run.set_params("ts", paths="loss", prefix="").decision == "applied"
    run.steps(1, model=model, loss=0.25)
    assert cb.last == {"loss": {"value": 0.25}}
    assert run.lines[-1] == f"[ts] step={run.step} loss value=0.25"


def test_system_stats_gpu(run: Run) -> None:
    entry = run.load("sys", "system_stats", "SystemStatsCallback", every=1, gpu=True)
    assert entry.decision == "applied"
    run.steps(3)
    cb = run.kernel.callbacks.get("sys")
    if torch.cuda.is_available():
        assert "cuda_allocated_mib" in cb.last and cb.no_gpu is None
    else:
        said = [line for line in run.lines if "no GPU" in line]
        assert said == ["[sys] step=1 no GPU (CUDA is not available)"]  # once, not every step
        assert not any(k.startswith("cuda_") for k in cb.last)
    assert run.set_params("sys", gpu=False).decision == "applied"
    run.steps(1)
    assert cb.no_gpu is None and not any(k.startswith("cuda_") for k in cb.last)
    assert run.set_params("sys", gpu="yes").decision == "failed"


def test_anomaly_guard_reference_params(run: Run) -> None:
    nan = float("nan")
    entry = run.load("anomaly", "anomaly_guard", "AnomalyGuardCallback", every=2, paths=["loss", "outputs.logits"],
                     raise_on_trigger=False)  # fmt: skip
    assert entry.decision == "applied"
    cb = run.kernel.callbacks.get("anomaly")
    run.steps(1, loss=nan)  # step 2: checked
    assert cb.anomalies == 1 and cb.first["kind"] == "non-finite loss (nan)"
    run.steps(1, loss=nan)  # step 3: not a multiple of every
    assert cb.anomalies == 1
    run.steps(1, loss=1.0, outputs={"logits": torch.tensor([0.0, math.inf])})  # step 4
    assert cb.anomalies == 2 and run.lines[-1].endswith("non-finite outputs.logits; action=log")
    # raise_on_trigger=true: the reference raises into the loop; hotcb asks the loop to stop
    assert run.set_params("anomaly", raise_on_trigger=True, every=1).decision == "applied"
    assert cb.action == "stop" and cb.raise_on_trigger
    env = run.steps(1, loss=nan)
    assert stop_requested(env) == "non-finite loss (nan) at step 6 (anomaly)"
    assert run.kernel.callbacks.status()["anomaly"]["enabled"] is True  # it did not raise
    assert (
        run.set_params("anomaly", raise_on_trigger=False, disable_after_trigger=True).decision
        == "applied"
    )
    assert cb.action == "log"
    run.steps(3, loss=nan)
    assert cb.anomalies == 3  # the first after the change, then nothing
    conflict = run.set_params("anomaly", raise_on_trigger=True, action="skip")
    assert conflict.decision == "failed" and "give one of them" in (conflict.error or "")


def test_the_reference_names_load_from_a_desired_state_file(
    kernel_factory: Callable[..., Any], tmp_path: Path
) -> None:
    # the reference's docs/api/config.md example, with its module paths (hotcb.callbacks.*)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "hotcb.yaml").write_text(
        f"""version: 1
callbacks:
  timing:
    enabled: true
    target: {{ kind: module, path: hotcb.callbacks.timing, symbol: TimingCallback }}
    init: {{ every: 50, window: 200 }}
  guard:
    enabled: true
    target: {{ kind: module, path: hotcb.callbacks.anomaly_guard, symbol: AnomalyGuardCallback }}
    init:
      every: 1
      paths: ["loss", "outputs.logits"]
      raise_on_trigger: false
  jsonl:
    target: {{ kind: module, path: {CALLBACKS}.jsonl_logger, symbol: JSONLLoggerCallback }}
    init: {{ every: 20, out_path: metrics.jsonl, scalars: ["loss"], tensor_paths: ["outputs.logits"] }}
"""
    )
    kernel = kernel_factory(run_dir, register=False)
    kernel.apply({"step": 1, "loss": 1.0}, ["train_step_end"])
    status = kernel.callbacks.status()
    assert sorted(status) == ["guard", "jsonl", "timing"]
    assert all(s["error"] is None and s["enabled"] for s in status.values())


REFERENCE_PATHS = [
    ("heartbeat", "HeartbeatCallback"),
    ("timing", "TimingCallback"),
    ("system_stats", "SystemStatsCallback"),
    ("tensor_stats", "TensorStatsCallback"),
    ("grad_stats", "GradStatsCallback"),
    ("anomaly_guard", "AnomalyGuardCallback"),
    ("jsonl_logger", "JSONLLoggerCallback"),
]


def test_the_reference_module_paths_pass_the_cli_check_and_load(run: Run) -> None:
    from click.testing import CliRunner

    from hotcb.cli import cli

    where = ["--dir", str(run.kernel.run_dir.path)]
    for module, symbol in REFERENCE_PATHS:
        result = CliRunner().invoke(cli, [*where, "load", module, "--module",
                                          f"hotcb.callbacks.{module}", "--symbol", symbol])  # fmt: skip
        assert result.exit_code == 0, result.output
        assert "not checked here" not in result.output  # the target rule decided it from source
    run.steps(1)
    status = run.kernel.callbacks.status()
    assert sorted(status) == sorted(m for m, _ in REFERENCE_PATHS)
    assert all(s["error"] is None and s["loaded"] for s in status.values())
