"""The kernel knows no module by name: a second module, written here and nowhere in hotcb,
routes its own op end to end (command file line -> kernel -> module -> ledger -> state ->
resume), beside the callback module or without it; a module with no per-step work is left
out of the dispatch until it says it has some (``redispatch``)."""

from __future__ import annotations

import ast
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from hotcb.kernel import HotKernel
from hotcb.ledger import LedgerEntry, read_ledger
from hotcb.modules.base import Env, ModuleHost, OpResult, op_from_entry
from hotcb.modules.cb.module import CallbackModule
from hotcb.ops import CommandError, Op, OpSpec, parse_command
from hotcb.state import read_state
from hotcb.stream import CommandStream

HEARTBEAT = {
    "kind": "module",
    "path": "hotcb.modules.cb.callbacks.heartbeat",
    "symbol": "HeartbeatCallback",
}


class CounterModule:
    """A kernel module with its own ops: ``incr`` (``params: {by: N}``, default 1) and
    ``reset``. Its state is ``counters`` in ``hotcb.state.json``; its dispatch shows the
    counts to the loop as ``env["counters"]``."""

    name = "counter"
    state_key = "counters"
    ops: Sequence[OpSpec] = (OpSpec("incr", takes=frozenset({"params"})), OpSpec("reset"))

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.closed = False
        self.host: ModuleHost | None = None

    def attach(self, kernel: ModuleHost) -> None:
        self.host = kernel

    @property
    def dispatch(self) -> Callable[[Env, Sequence[str]], None]:
        return self._dispatch

    def _dispatch(self, env: Env, events: Sequence[str]) -> None:
        env["counters"] = dict(self.counts)

    def apply_op(self, op: Op, env: Env | None = None, *, sha256: str | None = None) -> OpResult:
        if op.op == "reset":
            if self.counts.pop(op.id, None) is None:
                return OpResult("failed", f"no counter {op.id!r}")
            return OpResult("applied")
        by = op.params.get("by", 1)
        if not isinstance(by, int) or by < 1:
            return OpResult("failed", f"by must be a positive integer, got {by!r}")
        self.counts[op.id] = self.counts.get(op.id, 0) + by
        return OpResult("applied", details={"count": self.counts[op.id]})

    def replay(self, entry: LedgerEntry) -> OpResult | None:
        op = op_from_entry(entry)
        return self.apply_op(op) if op is not None else None

    def poll(self, env: Env) -> bool:
        return False

    def status(self) -> dict[str, Any]:
        return dict(self.counts)

    def close(self) -> None:
        self.closed = True


class WatchModule:
    """A module with per-step work only while ``watch``-ed (op ``watch`` / ``unwatch``): its
    dispatch then writes the step to ``env["watched"]``; else its dispatch is None."""

    name = "watch"
    state_key = "watch"
    ops: Sequence[OpSpec] = (OpSpec("watch"), OpSpec("unwatch"))

    def __init__(self) -> None:
        self.host: ModuleHost | None = None
        self.watching = False

    def attach(self, kernel: ModuleHost) -> None:
        self.host = kernel

    @property
    def dispatch(self) -> Callable[[Env, Sequence[str]], None] | None:
        return self._dispatch if self.watching else None

    def _dispatch(self, env: Env, events: Sequence[str]) -> None:
        env["watched"] = env.get("step")

    def apply_op(self, op: Op, env: Env | None = None, *, sha256: str | None = None) -> OpResult:
        self.watching = op.op == "watch"
        assert self.host is not None
        self.host.redispatch()
        return OpResult("applied")

    def replay(self, entry: LedgerEntry) -> OpResult | None:
        return None

    def poll(self, env: Env) -> bool:
        return False

    def status(self) -> dict[str, Any]:
        return {"watching": self.watching}

    def close(self) -> None:
        pass


def kernel(run_dir: Path, **modules: Any) -> HotKernel:
    return HotKernel(run_dir=run_dir, poll_interval=0, register=False, modules=modules)


def both(run_dir: Path) -> HotKernel:
    return kernel(run_dir, cb=CallbackModule(), counter=CounterModule())


def counter_of(k: HotKernel) -> CounterModule:
    module = k.modules["counter"]
    assert isinstance(module, CounterModule)
    return module


def test_a_second_module_routes_its_own_op_end_to_end(tmp_path: Path) -> None:
    run = tmp_path / "run"
    first = both(run)
    commands = CommandStream(first.run_dir.commands)
    commands.append({"module": "counter", "op": "incr", "id": "seen", "params": {"by": 2}})
    commands.append({"op": "load", "id": "hb", "target": HEARTBEAT, "init": {"every": 1}})
    commands.append({"module": "counter", "op": "incr", "id": "seen"})
    commands.append({"module": "counter", "op": "decr", "id": "seen"})
    commands.append({"module": "counter", "op": "reset", "id": "seen", "params": {"a": 1}})
    commands.append({"module": "counter", "op": "incr", "id": "seen", "params": {"by": 0}})
    printed: list[str] = []
    env: dict[str, Any] = {"step": 1, "log": printed.append}
    first.apply(env, ["train_step_end"])

    assert env["counters"] == {"seen": 3}  # the module's dispatch ran
    assert printed == ["[hb] train_step_end step=1"]  # and the callback module beside it
    ledger = read_ledger(first.run_dir.ledger).entries
    outcome = [(e.module, e.op, e.line, e.decision) for e in ledger]
    assert outcome == [
        ("counter", "incr", 1, "applied"),
        ("cb", "load", 2, "applied"),
        ("counter", "incr", 3, "applied"),
        ("cb", "invalid", 4, "failed"),
        ("cb", "invalid", 5, "failed"),
        ("counter", "incr", 6, "failed"),
    ]
    assert ledger[0].payload["params"] == {"by": 2} and ledger[0].payload["count"] == 2
    assert ledger[0].step == 1 and ledger[0].event == "train_step_end"
    assert "unknown op 'decr': expected one of incr, reset" in (ledger[3].error or "")
    assert "'reset' does not take params" in (ledger[4].error or "")
    assert ledger[5].error == "by must be a positive integer, got 0"

    state = read_state(first.run_dir.state)
    assert state is not None
    assert state["counters"] == {"seen": 3}
    assert list(state["callbacks"]) == ["hb"]
    assert state["modules"] == ["cb", "counter"]
    first.close()
    assert counter_of(first).closed

    second = both(run)  # resume: the module rebuilds its state from its own entries
    assert second.resumed
    assert counter_of(second).counts == {"seen": 3}
    commands.append({"module": "counter", "op": "incr", "id": "seen", "params": {"by": 10}})
    second.apply({"step": 2}, ["train_step_end"])
    assert counter_of(second).counts == {"seen": 13}  # nothing read or applied twice
    resume = [e for e in read_ledger(run / "hotcb.applied.jsonl").entries if e.op == "resume"]
    assert resume[0].payload["state"]["counter"] == {"seen": 3}
    second.close()
    assert read_state(run / "hotcb.state.json")["counters"] == {"seen": 13}  # type: ignore[index]


def test_a_kernel_runs_without_the_callback_module(tmp_path: Path) -> None:
    k = kernel(tmp_path / "run", counter=CounterModule())
    commands = CommandStream(k.run_dir.commands)
    commands.append({"op": "disable", "id": "timing"})  # a cb op: no cb module here
    commands.append({"module": "counter", "op": "incr", "id": "n"})
    k.apply({"step": 1}, ["train_step_end"])
    first, second = read_ledger(k.run_dir.ledger).entries
    assert (first.decision, first.error) == (
        "failed",
        "this run has no 'cb' module (it has: counter)",
    )
    assert (second.op, second.decision) == ("incr", "applied")
    state = read_state(k.run_dir.state)
    assert state is not None and state["counters"] == {"n": 1} and "callbacks" not in state
    with pytest.raises(AttributeError, match="no callback module"):
        _ = k.callbacks
    k.close()


def test_an_unknown_module_is_refused_at_the_edge_naming_the_known_ones(tmp_path: Path) -> None:
    k = both(tmp_path / "run")  # registers counter's ops
    with pytest.raises(CommandError, match=r"unknown module 'optim': the modules here are .*cb"):
        parse_command('{"module": "optim", "op": "set", "id": "lr", "params": {"lr": 1}}')
    assert parse_command('{"module": "counter", "op": "incr", "id": "n"}').module == "counter"
    k.close()


def test_modules_that_clash_are_refused_at_start(tmp_path: Path) -> None:
    class Clashing(CounterModule):
        state_key = "callbacks"

    with pytest.raises(ValueError, match="state_key 'callbacks' is taken"):
        kernel(tmp_path / "a", cb=CallbackModule(), counter=Clashing())

    class Stepping(CounterModule):
        state_key = "step"

    with pytest.raises(ValueError, match="state_key 'step' is taken"):
        kernel(tmp_path / "b", counter=Stepping())
    with pytest.raises(ValueError, match="under its own name"):
        kernel(tmp_path / "c", other=CounterModule())

    class OtherOps(CounterModule):
        ops = (OpSpec("incr"),)

    with pytest.raises(ValueError, match="already registered with other ops"):
        kernel(tmp_path / "d", counter=OtherOps())


HOTCB = Path(__file__).resolve().parents[1] / "hotcb"
#: where "cb" may be spelled out: the cb module itself, the defaults (hotcb.defaults, which
#: hotcb.ops re-exports), and the
#: ``hotcb cb ...`` command group (the cb module's own CLI)
MAY_NAME_CB = ("modules/cb/", "defaults.py", "cli/change.py")


def test_only_the_cb_module_and_the_defaults_name_cb() -> None:
    found = []
    for path in sorted(HOTCB.rglob("*.py")):
        rel = path.relative_to(HOTCB).as_posix()
        if rel.startswith(MAY_NAME_CB):
            continue
        for node in ast.walk(ast.parse(path.read_text(), rel)):
            if isinstance(node, ast.Constant) and node.value == "cb":
                found.append(f"{rel}:{node.lineno}")
    assert found == [], f'"cb" spelled out outside the cb module and hotcb.ops: {found}'


def test_a_module_without_per_step_work_is_dispatched_only_once_it_says_so(
    tmp_path: Path,
) -> None:
    k = kernel(tmp_path / "run", watch=WatchModule(), counter=CounterModule())
    commands = CommandStream(k.run_dir.commands)
    envs: list[dict[str, Any]] = []

    def step(n: int) -> dict[str, Any]:
        envs.append({"step": n})
        k.apply(envs[-1], ["train_step_end"])
        return envs[-1]

    assert "watched" not in step(1) and step(1)["counters"] == {}  # only the counter's ran
    commands.append({"module": "watch", "op": "watch", "id": "w"})
    assert step(2)["watched"] == 2  # applied at this safe point, dispatched from it on
    assert step(3)["watched"] == 3
    commands.append({"module": "watch", "op": "unwatch", "id": "w"})
    assert "watched" not in step(4) and "counters" in envs[-1]
    k.close()
    alone = kernel(tmp_path / "alone", watch=WatchModule())  # no module has work: fine
    alone.apply({"step": 1}, ["train_step_end"])
    alone.close()
