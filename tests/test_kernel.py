"""HotKernel end to end on real files: commands in, ledger and state out, training never dies."""

from __future__ import annotations

import json
import os
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from hotcb.kernel import HotKernel
from hotcb.ledger import read_ledger
from hotcb.ops import CallbackTarget, Op
from hotcb.state import read_state
from hotcb.stream import CommandStream
from tests.helpers import HEARTBEAT_DICT

TIMING = {"kind": "module", "path": "hotcb.modules.cb.callbacks.timing", "symbol": "TimingCallback"}

VIZ_SOURCE = textwrap.dedent(
    """
    class FeatureViz:
        def __init__(self, id="feat_viz", every=50, tag="v1"):
            self.id, self.every, self.tag = id, every, tag
            self.closed = False

        def handle(self, event, env):
            if env["step"] % self.every == 0:
                env["log"](f"[{self.id}] {self.tag} step={env['step']}")

        def set_params(self, **kw):
            if "every" in kw and (not isinstance(kw["every"], int) or kw["every"] < 1):
                raise ValueError(f"every must be an int >= 1, got {kw['every']!r}")
            self.every = kw.get("every", self.every)

        def close(self):
            self.closed = True
    """
)


def send(kernel: HotKernel, **command: Any) -> None:
    CommandStream(kernel.run_dir.commands).append(command)


def step(
    kernel: HotKernel, n: int, log: Any, events: tuple[str, ...] = ("train_step_end",)
) -> None:
    kernel.apply({"step": n, "epoch": 0, "loss": 1.0, "log": log}, list(events))


def entries(kernel: HotKernel) -> list[Any]:
    return read_ledger(kernel.run_dir.ledger).entries


def test_load_set_disable_enable_unload_cycle(kernel_factory: Any, log_lines: Any) -> None:
    kernel = kernel_factory()
    send(kernel, op="load", id="heartbeat", target=HEARTBEAT_DICT, init={"every": 4})
    for n in range(1, 9):
        step(kernel, n, log_lines)
    assert log_lines.matching("[heartbeat]") == [
        "[heartbeat] train_step_end step=4",
        "[heartbeat] train_step_end step=8",
    ]
    send(kernel, op="set", id="heartbeat", params={"every": 3})
    for n in range(9, 13):
        step(kernel, n, log_lines)
    assert log_lines.lines[-2:] == [
        "[heartbeat] train_step_end step=9",
        "[heartbeat] train_step_end step=12",
    ]
    status = kernel.modules["cb"].status()["heartbeat"]
    kept = ("enabled", "loaded", "target", "params", "init_keys", "error", "sha256")
    assert {k: status[k] for k in kept} == {
        "enabled": True,
        "loaded": True,
        "target": HEARTBEAT_DICT,
        "params": {"every": 3},
        "init_keys": ["every"],
        "error": None,
        "sha256": None,
    }
    send(kernel, op="disable", id="heartbeat")
    before = len(log_lines.lines)
    for n in range(13, 20):
        step(kernel, n, log_lines)
    assert len(log_lines.lines) == before
    send(kernel, op="enable", id="heartbeat")
    step(kernel, 21, log_lines)
    assert log_lines.lines[-1] == "[heartbeat] train_step_end step=21"
    send(kernel, op="unload", id="heartbeat")
    step(kernel, 24, log_lines)
    assert "heartbeat" not in kernel.modules["cb"].status()
    ledger = entries(kernel)
    assert [(e.op, e.decision, e.source) for e in ledger] == [
        ("load", "applied", "external"),
        ("set", "applied", "external"),
        ("disable", "applied", "external"),
        ("enable", "applied", "external"),
        ("unload", "applied", "external"),
    ]
    assert [e.step for e in ledger] == [1, 9, 13, 21, 24]
    assert [e.line for e in ledger] == [1, 2, 3, 4, 5]


def test_malformed_line_is_recorded_and_later_lines_still_apply(
    kernel_factory: Any, log_lines: Any
) -> None:
    kernel = kernel_factory()
    send(kernel, op="load", id="heartbeat", target=HEARTBEAT_DICT, init={"every": 1})
    with open(kernel.run_dir.commands, "a") as fh:
        fh.write('{"op": "set", "id": "heartbeat", "params": {"every": \n')
    send(kernel, op="set", id="heartbeat", params={"every": 7})
    step(kernel, 7, log_lines)
    bad = [e for e in entries(kernel) if e.decision == "failed"]
    assert len(bad) == 1
    assert bad[0].line == 2 and (bad[0].error or "").startswith("not valid JSON")
    assert bad[0].location == {"path": str(kernel.run_dir.commands), "line": 2}
    assert kernel.modules["cb"].status()["heartbeat"]["params"] == {"every": 7}


def test_half_written_line_is_applied_once_when_complete(
    kernel_factory: Any, log_lines: Any
) -> None:
    kernel = kernel_factory()
    send(kernel, op="load", id="heartbeat", target=HEARTBEAT_DICT, init={"every": 1})
    step(kernel, 1, log_lines)
    with open(kernel.run_dir.commands, "a") as fh:
        fh.write('{"op": "set", "id": "heartbeat", ')
    step(kernel, 2, log_lines)
    assert len(entries(kernel)) == 1
    with open(kernel.run_dir.commands, "a") as fh:
        fh.write('"params": {"every": 2}}\n')
    for n in range(3, 6):
        step(kernel, n, log_lines)
    sets = [e for e in entries(kernel) if e.op == "set"]
    assert len(sets) == 1 and sets[0].decision == "applied" and sets[0].step == 3


@pytest.mark.parametrize(
    ("command", "fragment"),
    [
        ({"op": "frobnicate", "id": "x"}, "unknown op 'frobnicate'"),
        (
            {"op": "set", "id": "ghost", "params": {"every": 1}},
            "unknown callback id 'ghost' (known: heartbeat)",
        ),
        ({"op": "load", "id": "x"}, "needs a 'target'"),
        (
            {
                "op": "load",
                "id": "x",
                "target": {"kind": "python_file", "path": "/nonexistent/v.py", "symbol": "V"},
            },
            "/nonexistent/v.py: file not found",
        ),
        (
            {
                "op": "load",
                "id": "x",
                "target": {"kind": "module", "path": "no_such_pkg.mod", "symbol": "V"},
            },
            "no module named 'no_such_pkg'",
        ),
        (
            {"op": "load", "id": "x", "target": {**HEARTBEAT_DICT, "symbol": "Nope"}},
            "has no attribute 'Nope'",
        ),
        (
            {
                "op": "load",
                "id": "x",
                "target": {"kind": "module", "path": "subprocess", "symbol": "Popen"},
            },
            "refused",
        ),
        (
            {"op": "load", "id": "x", "target": HEARTBEAT_DICT, "init": {"evry": 3}},
            "does not accept 'evry'",
        ),
        ({"op": "set", "id": "heartbeat", "params": {"every": 0}}, "every must be an integer >= 1"),
        ({"module": "lr", "op": "set", "id": "x", "params": {"a": 1}}, "unknown module 'lr'"),
    ],
)
def test_bad_ops_fail_alone_and_change_nothing(
    kernel_factory: Any, log_lines: Any, command: dict[str, Any], fragment: str
) -> None:
    kernel = kernel_factory()
    send(kernel, op="load", id="heartbeat", target=HEARTBEAT_DICT, init={"every": 2})
    step(kernel, 1, log_lines)
    before = kernel.modules["cb"].status()
    send(kernel, **command)
    step(kernel, 2, log_lines)
    last = entries(kernel)[-1]
    assert last.decision == "failed"
    assert fragment in (last.error or ""), last.error
    assert kernel.modules["cb"].status() == before
    assert log_lines.lines[-1] == "[heartbeat] train_step_end step=2"  # training went on


def test_syntax_error_names_file_and_line(
    kernel_factory: Any, tmp_path: Path, log_lines: Any
) -> None:
    kernel = kernel_factory()
    bad = tmp_path / "broken.py"
    bad.write_text("class Viz:\n    def handle(self, event, env)\n        pass\n")
    send(
        kernel,
        op="load",
        id="viz",
        target={"kind": "python_file", "path": str(bad), "symbol": "Viz"},
    )
    step(kernel, 1, log_lines)
    error = entries(kernel)[-1].error or ""
    assert error.startswith(f"{bad} line 2: syntax error")


def test_python_file_is_captured_and_reloaded_when_edited(
    kernel_factory: Any, tmp_path: Path, log_lines: Any
) -> None:
    kernel = kernel_factory()
    viz = tmp_path / "viz.py"
    viz.write_text(VIZ_SOURCE)
    send(
        kernel,
        op="load",
        id="feat_viz",
        init={"every": 2},
        target={"kind": "python_file", "path": str(viz), "symbol": "FeatureViz"},
    )
    step(kernel, 2, log_lines)
    assert log_lines.lines[-1] == "[feat_viz] v1 step=2"
    sha = kernel.modules["cb"].status()["feat_viz"]["sha256"]
    captured = kernel.run_dir.sources / f"{sha}.py"
    assert captured.read_bytes() == viz.read_bytes()
    send(kernel, op="set", id="feat_viz", params={"every": 3})
    step(kernel, 3, log_lines)
    old = kernel.modules["cb"].controller.get("feat_viz")
    # edit the file: the next safe point reloads it, with the current params
    viz.write_text(VIZ_SOURCE.replace('tag="v1"', 'tag="v2"'))
    os.utime(viz, ns=(time.time_ns(), time.time_ns() + 10_000_000))
    step(kernel, 6, log_lines)
    assert log_lines.lines[-1] == "[feat_viz] v2 step=6"
    assert old is not None and old.closed
    reload = entries(kernel)[-1]
    assert (reload.op, reload.decision, reload.source) == ("reload", "applied", "auto")
    new_sha = reload.payload["sha256"]
    assert (kernel.run_dir.sources / f"{new_sha}.py").read_text().count('tag="v2"') == 1
    assert kernel.modules["cb"].status()["feat_viz"]["params"] == {"every": 3}
    # a broken edit keeps the running version
    viz.write_text("class FeatureViz(:\n")
    os.utime(viz, ns=(time.time_ns(), time.time_ns() + 20_000_000))
    step(kernel, 9, log_lines)
    assert log_lines.lines[-1] == "[feat_viz] v2 step=9"
    failed = entries(kernel)[-1]
    assert (failed.op, failed.decision) == ("reload", "failed") and "line 1" in (failed.error or "")


def test_set_params_that_raises_keeps_previous_values(
    kernel_factory: Any, tmp_path: Path, log_lines: Any
) -> None:
    kernel = kernel_factory()
    viz = tmp_path / "viz.py"
    viz.write_text(VIZ_SOURCE)
    send(
        kernel,
        op="load",
        id="feat_viz",
        init={"every": 2},
        target={"kind": "python_file", "path": str(viz), "symbol": "FeatureViz"},
    )
    send(kernel, op="set", id="feat_viz", params={"every": "often"})
    step(kernel, 4, log_lines)
    last = entries(kernel)[-1]
    assert last.decision == "failed" and "every must be an int >= 1" in (last.error or "")
    record = kernel.modules["cb"].status()["feat_viz"]
    assert record["params"] == {"every": 2} and record["enabled"] is True
    assert log_lines.lines[-1] == "[feat_viz] v1 step=4"


RAISER = textwrap.dedent(
    """
    class Flaky:
        def __init__(self, id="flaky", fail_at=3):
            self.id, self.fail_at, self.calls = id, fail_at, 0
        def handle(self, event, env):
            self.calls += 1
            if env["step"] == self.fail_at:
                raise RuntimeError("boom at step %d" % env["step"])
        def set_params(self, **kw):
            self.fail_at = kw.get("fail_at", self.fail_at)
    """
)


def test_raising_callback_is_auto_disabled_and_can_be_re_enabled(
    kernel_factory: Any, tmp_path: Path, log_lines: Any, caplog: pytest.LogCaptureFixture
) -> None:
    kernel = kernel_factory()
    src = tmp_path / "flaky.py"
    src.write_text(RAISER)
    send(
        kernel,
        op="load",
        id="flaky",
        target={"kind": "python_file", "path": str(src), "symbol": "Flaky"},
    )
    send(kernel, op="load", id="heartbeat", target=HEARTBEAT_DICT, init={"every": 1})
    for n in range(1, 6):
        step(kernel, n, log_lines)  # never raises
    flaky = kernel.modules["cb"].controller.get("flaky")
    assert flaky is not None and flaky.calls == 3
    record = kernel.modules["cb"].status()["flaky"]
    assert record["enabled"] is False and "RuntimeError: boom at step 3" in record["error"]
    assert log_lines.matching("[heartbeat]")[-1] == "[heartbeat] train_step_end step=5"
    assert "Traceback" in caplog.text and "boom at step 3" in caplog.text
    auto = [e for e in entries(kernel) if e.source == "auto"]
    assert [(e.op, e.id, e.step) for e in auto] == [("disable", "flaky", 3)]
    assert read_state(kernel.run_dir.state)["callbacks"]["flaky"]["enabled"] is False
    send(kernel, op="enable", id="flaky")
    step(kernel, 6, log_lines)
    assert flaky.calls == 4
    assert kernel.modules["cb"].status()["flaky"] == {**record, "enabled": True, "error": None}


def test_auto_disable_can_be_turned_off(
    kernel_factory: Any, tmp_path: Path, log_lines: Any
) -> None:
    kernel = kernel_factory(auto_disable_on_error=False)
    src = tmp_path / "flaky.py"
    src.write_text(RAISER)
    send(
        kernel,
        op="load",
        id="flaky",
        target={"kind": "python_file", "path": str(src), "symbol": "Flaky"},
    )
    for n in range(1, 6):
        step(kernel, n, log_lines)
    record = kernel.modules["cb"].status()["flaky"]
    assert record["enabled"] is True and "boom" in record["error"]
    assert kernel.modules["cb"].controller.get("flaky").calls == 5  # type: ignore[union-attr]


def test_state_file_tracks_the_live_set(kernel_factory: Any, log_lines: Any) -> None:
    kernel = kernel_factory()
    send(kernel, op="load", id="timing", target=TIMING, init={"every": 10}, params={"window": 5})
    step(kernel, 1, log_lines)
    state = read_state(kernel.run_dir.state)
    assert state is not None
    assert state["run_dir"] == str(kernel.run_dir.path) and state["pid"] == os.getpid()
    assert state["closed"] is False and state["step"] == 1
    assert state["callbacks"]["timing"]["params"] == {"every": 10, "window": 5}
    kernel.close()
    final = read_state(kernel.run_dir.state)
    assert final is not None and final["closed"] is True and "timing" in final["callbacks"]


def test_config_ops_are_recorded_at_step_zero(kernel_factory: Any) -> None:
    kernel = kernel_factory()
    entry = kernel.submit(Op(op="load", id="timing", target=CallbackTarget(**TIMING)))  # type: ignore[arg-type]
    assert (entry.source, entry.decision, entry.step) == ("config", "applied", 0)


def test_restart_in_same_run_dir_resumes_without_reapplying(
    kernel_factory: Any, tmp_path: Path, log_lines: Any
) -> None:
    run = tmp_path / "resume"
    viz = tmp_path / "viz.py"
    viz.write_text(VIZ_SOURCE)
    first = kernel_factory(run)
    send(
        first,
        op="load",
        id="feat_viz",
        init={"every": 2},
        target={"kind": "python_file", "path": str(viz), "symbol": "FeatureViz"},
    )
    send(first, op="load", id="heartbeat", target=HEARTBEAT_DICT)
    send(first, op="set", id="feat_viz", params={"every": 5})
    send(first, op="disable", id="heartbeat")
    step(first, 10, log_lines)
    before = first.modules["cb"].status()
    first.close()
    viz.write_text(VIZ_SOURCE.replace('tag="v1"', 'tag="edited-while-down"'))
    send(first, op="set", id="feat_viz", params={"every": 7})  # written while no run is live
    second = kernel_factory(run)
    assert second.resumed
    assert second.modules["cb"].status() == before  # the captured bytes, not the edit
    step(second, 14, log_lines)
    assert log_lines.lines[-1] == "[feat_viz] v1 step=14"
    external = [e for e in entries(second) if e.source == "external"]
    assert [e.line for e in external] == [1, 2, 3, 4, 5]  # line 5 applied once, after restart
    assert second.modules["cb"].status()["feat_viz"]["params"] == {"every": 7}


def test_apply_never_raises_on_garbage(kernel_factory: Any, log_lines: Any) -> None:
    kernel = kernel_factory()
    with open(kernel.run_dir.commands, "wb") as fh:
        fh.write(
            b"\xff\xfe garbage\n{}\n[1,2]\nnull\n" + json.dumps({"op": "set"}).encode() + b"\n"
        )
    step(kernel, 1, log_lines)
    assert [e.decision for e in entries(kernel)] == ["failed"] * 5


@pytest.mark.subprocess
def test_a_run_that_forgets_close_is_closed_at_exit(tmp_path: Path, python: str) -> None:
    import subprocess

    run = tmp_path / "forgot"
    script = (
        "from hotcb.kernel import HotKernel\n"
        f"k = HotKernel(run_dir={str(run)!r})\n"
        "k.apply({'step': 3}, ['train_step_end'])\n"
    )
    subprocess.run([python, "-c", script], check=True, timeout=60)
    state = read_state(run / "hotcb.state.json")
    assert state is not None and state["closed"] is True
