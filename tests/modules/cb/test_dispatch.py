"""Event-keyed dispatch: a callback that declares its events gets only those, one that
declares nothing gets every event, and the map follows every change to the set."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hotcb.kernel import HotKernel
from hotcb.ledger import read_ledger
from hotcb.ops import CallbackTarget, Op

#: Records every event it is called with; declares ``events`` only when given one (as
#: is, so a bad declaration reaches the controller), else the module's DECLARED.
RECORDER = """
DECLARED = {declared!r}


class Recorder:
    def __init__(self, id="rec", events=None, fail_on=None):
        self.id = id
        if events is not None:
            self.events = events
        elif DECLARED is not None:
            self.events = DECLARED
        self.fail_on = fail_on
        self.seen = []

    def set_params(self, **kwargs):
        if "events" in kwargs:
            self.events = kwargs["events"]

    def handle(self, event, env):
        self.seen.append(event)
        if event == self.fail_on:
            raise RuntimeError("boom")
"""

EVENTS = ["train_begin", "after_backward", "train_step_end", "val_end", "custom_event"]


def write_recorder(path: Path, declared: tuple[str, ...] | None = None) -> None:
    path.write_text(RECORDER.format(declared=declared))
    bump = time.time_ns() + 1_000_000 * len(path.read_bytes())
    os.utime(path, ns=(bump, bump))  # every rewrite is visible, even within one mtime tick


@pytest.fixture
def kernel(kernel_factory: Callable[..., HotKernel]) -> HotKernel:
    return kernel_factory()


@pytest.fixture
def recorder_file(tmp_path: Path) -> Path:
    path = tmp_path / "recorder.py"
    write_recorder(path)
    return path


def load(kernel: HotKernel, path: Path, cb_id: str, **init: Any) -> str:
    target = CallbackTarget("python_file", str(path), "Recorder")
    entry = kernel.submit(Op(op="load", id=cb_id, target=target, init=init))
    return entry.decision


def seen(kernel: HotKernel, cb_id: str) -> list[str]:
    instance = kernel.modules["cb"].controller.get(cb_id)  # type: ignore[attr-defined]
    events: list[str] = instance.seen
    return events


def test_declared_events_are_the_only_ones_delivered_undeclared_get_every_event(
    kernel: HotKernel, recorder_file: Path
) -> None:
    assert load(kernel, recorder_file, "declared", events=["train_step_end", "val_end"]) == (
        "applied"
    )
    assert load(kernel, recorder_file, "everything") == "applied"
    kernel.apply({"step": 1}, EVENTS)
    kernel.apply({"step": 2}, ["train_step_end"])
    assert seen(kernel, "declared") == ["train_step_end", "val_end", "train_step_end"]
    # including events nobody declared, in the order the loop emitted them
    assert seen(kernel, "everything") == [*EVENTS, "train_step_end"]


def test_a_set_that_changes_the_declared_events_rebuilds_the_map(
    kernel: HotKernel, recorder_file: Path
) -> None:
    load(kernel, recorder_file, "rec", events=["train_step_end"])
    kernel.apply({"step": 1}, EVENTS)
    kernel.submit(Op(op="set", id="rec", params={"events": ["val_end", "custom_event"]}))
    kernel.apply({"step": 2}, EVENTS)
    kernel.submit(Op(op="set", id="rec", params={"events": None}))  # None: every event
    kernel.apply({"step": 3}, EVENTS)
    assert seen(kernel, "rec") == ["train_step_end", "val_end", "custom_event", *EVENTS]


def test_enable_disable_unload_and_reload_keep_the_map_right(
    kernel: HotKernel, recorder_file: Path
) -> None:
    load(kernel, recorder_file, "a", events=["train_step_end"])
    load(kernel, recorder_file, "b")
    kernel.submit(Op(op="disable", id="a"))
    kernel.apply({"step": 1}, EVENTS)
    assert seen(kernel, "a") == [] and seen(kernel, "b") == EVENTS

    kernel.submit(Op(op="enable", id="a"))
    kernel.submit(Op(op="unload", id="b"))
    kernel.apply({"step": 2}, EVENTS)
    assert seen(kernel, "a") == ["train_step_end"]

    # b comes back without a declaration; the file is edited so that a new instance
    # declares val_end: the reload (same init) replaces b's entry in the map
    load(kernel, recorder_file, "b")
    write_recorder(recorder_file, declared=("val_end",))
    kernel.apply({"step": 3}, EVENTS)  # the poll reloads both, then dispatches
    assert [e.op for e in read_ledger(kernel.run_dir.ledger).entries][-2:] == [
        "reload",
        "reload",
    ]
    assert seen(kernel, "a") == ["train_step_end"]  # its init declaration still wins
    assert seen(kernel, "b") == ["val_end"]


def test_a_declaring_callback_that_raises_is_auto_disabled_and_the_others_keep_running(
    kernel: HotKernel, recorder_file: Path, log_lines: Any
) -> None:
    load(kernel, recorder_file, "boom", events=["train_step_end"], fail_on="train_step_end")
    load(kernel, recorder_file, "other")
    events = ["val_end", "train_step_end", "val_end", "train_step_end"]
    kernel.apply({"step": 1, "log": log_lines}, events)  # must not raise
    kernel.apply({"step": 2, "log": log_lines}, events)
    # called for its own event only, and not again once disabled (not even later in
    # the same apply)
    assert seen(kernel, "boom") == ["train_step_end"]
    assert seen(kernel, "other") == events * 2
    status = kernel.modules["cb"].status()
    assert status["boom"]["enabled"] is False
    assert status["boom"]["error"] == "RuntimeError: boom (in train_step_end)"
    last = read_ledger(kernel.run_dir.ledger).entries[-1]
    assert (last.op, last.id, last.source, last.step) == ("disable", "boom", "auto", 1)
    assert log_lines.matching("hotcb: callback 'boom' raised in train_step_end at step 1")


@pytest.mark.parametrize(
    ("events", "message"),
    [
        ([], "Recorder.events declares no event, so it would never be called"),
        ("train_step_end", "Recorder.events must be None (every event) or a tuple, list"),
        (["train_step_end", 3], "Recorder.events must be None (every event) or a tuple, list"),
    ],
)
def test_a_bad_events_declaration_is_refused_at_load(
    kernel: HotKernel, recorder_file: Path, events: Any, message: str
) -> None:
    assert load(kernel, recorder_file, "rec", events=events) == "failed"
    entry = read_ledger(kernel.run_dir.ledger).entries[-1]
    assert entry.error is not None and entry.error.startswith(f"callback 'rec': {message}")
    assert "rec" not in kernel.modules["cb"].status()


def test_a_set_that_leaves_the_declaration_invalid_fails_and_keeps_the_map(
    kernel: HotKernel, recorder_file: Path
) -> None:
    load(kernel, recorder_file, "rec", events=["val_end"])
    entry = kernel.submit(Op(op="set", id="rec", params={"events": []}))
    assert entry.decision == "failed"
    assert "Recorder.events declares no event" in (entry.error or "")
    assert "still dispatched the events it declared before" in (entry.error or "")
    kernel.apply({"step": 1}, EVENTS)
    assert seen(kernel, "rec") == ["val_end"]
