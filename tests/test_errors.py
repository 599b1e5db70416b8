"""One error base with a location: what each hotcb error carries, and how it is shown."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest

from hotcb.errors import HotcbError, format_error
from hotcb.hydra.deltas import DeltaError
from hotcb.hydra.export import ExportError
from hotcb.hydra.hydrate import HydrationError, ops_from_config, parse_target
from hotcb.ledger import Ledger, read_ledger
from hotcb.modules.cb.loader import LoadError, resolve
from hotcb.ops import CallbackTarget, CommandError
from hotcb.runlock import RunDirBusy, RunDirLock
from hotcb.runs import RunNotFound


@pytest.mark.parametrize(
    ("error", "bases"),
    [
        (CommandError, (ValueError,)),
        (LoadError, ()),
        (HydrationError, (ValueError,)),
        (DeltaError, (ValueError,)),
        (ExportError, ()),
        (RunNotFound, ()),
        (RunDirBusy, (RuntimeError,)),
    ],
)
def test_every_hotcb_error_is_a_hotcb_error_and_keeps_its_old_base(
    error: type[Exception], bases: tuple[type[Exception], ...]
) -> None:
    assert issubclass(error, HotcbError)
    assert all(issubclass(error, base) for base in bases)


def test_location_is_shown_in_one_form_before_the_message() -> None:
    full = HotcbError("boom", path="/w/viz.py", line=12, key="init.every", target="viz.py:Viz")
    assert str(full) == "/w/viz.py line 12, init.every, target viz.py:Viz: boom"
    assert full.message == "boom"
    assert full.location == {
        "path": "/w/viz.py",
        "line": 12,
        "key": "init.every",
        "target": "viz.py:Viz",
    }
    assert str(HotcbError("boom", key="hotcb.callbacks.hb")) == "hotcb.callbacks.hb: boom"
    assert str(HotcbError("boom")) == "boom" and HotcbError("boom").location == {}
    assert format_error("boom", full.location) == str(full)


def test_located_fills_what_is_missing_and_nests_keys() -> None:
    inner = CommandError("must be an integer", key="every", line=4)
    outer = inner.located(path="conf.yaml", line=9, key="hotcb.callbacks.hb")
    assert type(outer) is CommandError and outer is not inner
    assert outer.location == {"path": "conf.yaml", "line": 4, "key": "hotcb.callbacks.hb.every"}
    assert inner.location == {"line": 4, "key": "every"}  # the original is unchanged


def test_errors_pickle_with_their_location() -> None:
    # what DistributedHotKernel.agree sends between ranks
    error = HydrationError("bad", path=Path("/c.yaml"), line=3, key="hotcb.callbacks.x")
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is HydrationError and str(copy) == "/c.yaml line 3, hotcb.callbacks.x: bad"


def test_a_file_error_from_the_loader_carries_path_and_line(tmp_path: Path) -> None:
    src = tmp_path / "viz.py"
    src.write_text("class Viz:\n    def handle(self)\n")
    with pytest.raises(LoadError) as info:
        resolve(CallbackTarget("python_file", str(src), "Viz"))
    assert (info.value.path, info.value.line) == (str(src), 2)
    assert info.value.message.startswith("syntax error (column ")
    with pytest.raises(LoadError) as missing:
        resolve(CallbackTarget("python_file", str(tmp_path / "nope.py"), "Viz"))
    assert str(missing.value) == f"{tmp_path / 'nope.py'}: file not found"


def test_hydra_errors_name_the_node_key_and_target() -> None:
    with pytest.raises(HydrationError) as info:
        ops_from_config({"hotcb": {"callbacks": {"viz": {"_target_": "viz.txt:Viz"}}}})
    assert info.value.location == {"key": "hotcb.callbacks.viz", "target": "viz.txt:Viz"}
    assert str(info.value) == (
        "hotcb.callbacks.viz, target viz.txt:Viz: a file target is written path/to/file.py:Symbol"
    )
    with pytest.raises(HydrationError) as several:
        ops_from_config({"hotcb": {"callbacks": {"a": {"every": 1}, "b": {"_target_": "C"}}}})
    assert str(several.value) == (
        "hotcb.callbacks.a: missing _target_ (a dotted class path, or path/to/file.py:Class); "
        "hotcb.callbacks.b, target C: expected a dotted path like package.module.Class"
    )
    with pytest.raises(HydrationError) as alone:
        parse_target("Nope")
    assert alone.value.location == {"target": "Nope"}


def test_a_busy_run_dir_names_it_in_the_path_field(tmp_path: Path) -> None:
    first = RunDirLock.acquire(tmp_path / "hotcb.lock")
    try:
        with pytest.raises(RunDirBusy) as info:
            RunDirLock.acquire(tmp_path / "hotcb.lock")
        assert info.value.path == str(tmp_path)
        assert str(info.value).startswith(f"{tmp_path}: run dir in use by another hotcb kernel")
        assert f"pid {os.getpid()}" in str(info.value)
    finally:
        first.release()


def test_the_ledger_stores_the_message_and_the_location_apart(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "hotcb.applied.jsonl")
    error = CommandError("not valid JSON: Expecting value at column 1", path="/r/c.jsonl", line=7)
    ledger.record(
        module="cb", op="invalid", id=None, source="external", decision="failed", error=error
    )
    ledger.record(
        module="cb",
        op="set",
        id="hb",
        source="external",
        decision="failed",
        error=ValueError("every must be >= 1"),
    )
    line = json.loads(ledger.path.read_text().splitlines()[0])
    assert line["error"] == "not valid JSON: Expecting value at column 1"
    assert line["location"] == {"path": "/r/c.jsonl", "line": 7}
    first, second = read_ledger(ledger.path).entries
    assert first.location == {"path": "/r/c.jsonl", "line": 7}
    assert (second.error, second.location) == ("every must be >= 1", None)


@pytest.mark.parametrize(
    "location",
    [{"line": 0}, {"line": "3"}, {"path": 5}, {"where": "x"}, ["path"]],
    ids=["line-0", "line-text", "path-number", "unknown-field", "a-list"],
)
def test_a_ledger_line_with_a_bad_location_is_skipped_with_the_reason(
    tmp_path: Path, location: object
) -> None:
    path = tmp_path / "hotcb.applied.jsonl"
    base = {"seq": 1, "wall_time": 0, "op": "invalid", "source": "external", "decision": "failed"}
    path.write_text(json.dumps({**base, "location": location}) + "\n")
    read = read_ledger(path)
    assert read.entries == []
    assert read.bad_lines == [
        (1, f"'location' must be null or an object of path, line, key, target, got {location!r}")
    ]
