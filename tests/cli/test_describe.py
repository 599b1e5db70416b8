"""`hotcb cb list`, `cb describe`, the status table, `status --watch` and shell completion,
on a run dir an in-process kernel wrote (CliRunner: the command surface)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.shell_completion import ShellComplete
from click.testing import CliRunner

from hotcb.cli import cli
from hotcb.cli.views import progress
from hotcb.kernel import HotKernel
from hotcb.ops import CallbackTarget, Op
from tests.helpers import HEARTBEAT

LONG = CallbackTarget("module", "hotcb.modules.cb.callbacks.jsonl_logger", "JsonlLoggerCallback")


@pytest.fixture
def run(tmp_path: Path) -> Iterator[Path]:
    kernel = HotKernel(run_dir=tmp_path / "run", poll_interval=0, register=False)
    kernel.submit(Op(op="load", id="heartbeat", target=HEARTBEAT, init={"every": 7}))
    kernel.submit(Op(op="load", id="a_logger_with_a_long_id", target=LONG, init={"every": 3}))
    for step in range(1, 20):
        kernel.apply({"step": step, "run_dir": str(tmp_path / "run")}, ["train_step_end"])
    kernel.write_state()
    yield tmp_path / "run"
    kernel.close()


def invoke(*args: str, columns: int = 200) -> tuple[int, str, str]:
    result = CliRunner(env={"COLUMNS": str(columns)}).invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_cb_list_shows_the_runs_callbacks_and_the_builtins(run: Path) -> None:
    code, out, _ = invoke("--dir", str(run), "cb", "list", "--json")
    rows = {r["id"]: r for r in json.loads(out)["callbacks"]}
    assert code == 0
    assert rows["heartbeat"]["loaded"] and rows["heartbeat"]["hot_params"] == [
        "every",
        "events",
        "message",
    ]
    assert rows["timing"] == {
        "id": "timing",
        "loaded": False,
        "enabled": False,
        "builtin": True,
        "target": {"kind": "module", "path": "hotcb.modules.cb.callbacks.timing",
                   "symbol": "TimingCallback"},
        "hot_params": ["every", "window"],
    }  # fmt: skip
    code, out, _ = invoke("--dir", str(run), "cb", "list")
    lines = out.splitlines()
    assert lines[1].split() == ["ID", "STATE", "TARGET", "HOT", "PARAMS"]
    assert any(x.split()[:2] == ["timing", "built-in"] for x in lines)


def test_cb_describe_a_loaded_callback_and_a_builtin_not_loaded(run: Path) -> None:
    code, out, _ = invoke("--dir", str(run), "cb", "describe", "heartbeat")
    assert code == 0
    assert "heartbeat: hotcb.modules.cb.callbacks.heartbeat:HeartbeatCallback (loaded" in out
    every = next(x for x in out.splitlines() if x.strip().startswith("every"))
    assert every.split()[:6] == ["every", "int", ">=", "1", "100", "7"]  # type, default, value
    assert "beat every N steps" in every and "events: train_step_end" in out
    code, out, _ = invoke("--dir", str(run), "cb", "describe", "anomaly_guard", "--json")
    described = json.loads(out)
    assert code == 0 and described["loaded"] is False
    assert described["hot_params"][0] == {
        "name": "action", "type": "str", "default": "log", "help": "what to do on an anomaly",
        "choices": ["log", "skip", "stop"], "value": "log",
    }  # fmt: skip
    assert described["events"] == ["after_backward", "train_step_end"]
    code, _, err = invoke("--dir", str(run), "cb", "describe", "nope")
    assert code == 1 and err.startswith("hotcb: error: no callback 'nope'")


def test_describe_shows_the_reference_names_a_param_is_also_set_by(run: Path) -> None:
    code, out, _ = invoke("--dir", str(run), "cb", "describe", "jsonl_logger")
    assert code == 0, out
    rows = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ")}
    assert rows["keys"].startswith("  keys (scalars) ")
    assert rows["path"].startswith("  path (out_path) ")
    described = json.loads(invoke("--dir", str(run), "cb", "describe", "jsonl_logger", "--json")[1])
    assert {p["name"]: p.get("aliases") for p in described["hot_params"]}["path"] == ["out_path"]


@pytest.mark.parametrize("columns", [80, 200])
def test_status_fits_the_terminal_with_defaults_and_costs(run: Path, columns: int) -> None:
    code, out, _ = invoke("--dir", str(run), "status", columns=columns)
    lines = out.splitlines()
    table = lines[lines.index(next(x for x in lines if x.startswith("ID"))) :]
    assert code == 0 and all(len(x) <= columns for x in table), lines  # the path may wrap
    header = next(x for x in lines if x.startswith("ID"))
    rows = [x for x in lines if x.startswith(("heartbeat", "a_logger"))]
    start = header.index("US/CALL")
    assert all(row[start - 2 : start] == "  " for row in rows)  # columns stay aligned
    hb = next(x for x in rows if x.startswith("heartbeat"))
    float(hb[start:].split()[0])  # a sampled mean in us per call
    if columns == 200:
        assert 'every=7 events=["train_step_end"]' in hb  # the default of events shown
        assert "hotcb.modules.cb.callbacks.heartbeat:HeartbeatCallback" in hb
    else:
        assert "…" in hb  # the long target (and params) shortened


def test_seen_and_stalled() -> None:
    state = {"pid": 7, "step": 3, "updated": 100.0}
    assert progress(state, True, 100.4) == "live, pid 7, step 3, seen 0.4 s ago"
    assert progress(state, True, 145.2).startswith("live, pid 7, step 3, stalled 45 s")
    assert progress(state, False, 145.2) == "not live, step 3"


def completions(run: Path, args: list[str], incomplete: str) -> list[str]:
    complete = ShellComplete(cli, {}, "hotcb", "_HOTCB_COMPLETE")
    return [c.value for c in complete.get_completions(["--dir", str(run), *args], incomplete)]


def test_completion_offers_ids_and_declared_names(run: Path) -> None:
    assert completions(run, ["cb", "set"], "h") == ["heartbeat"]
    assert completions(run, ["cb", "disable"], "") == ["a_logger_with_a_long_id", "heartbeat"]
    assert completions(run, ["cb", "set", "heartbeat"], "ev") == ["every=", "events="]
    assert completions(run, ["cb", "set", "heartbeat", "every=5"], "e") == ["events="]
    assert "timing" in completions(run, ["cb", "describe"], "t")  # a built-in not loaded
