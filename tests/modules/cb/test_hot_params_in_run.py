"""The run checks a `set` against the callback's declaration (a command written straight
to the file gets the CLI's answer), writes each callback's declaration to its state, and
samples what each callback's handle costs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hotcb.kernel import HotKernel
from hotcb.ledger import read_ledger
from hotcb.ops import CallbackTarget, Op
from hotcb.stream import CommandStream
from tests.helpers import HEARTBEAT

USER_CB = '''
class Free:
    """A user callback that declares nothing."""
    def __init__(self, id="free"):
        self.id, self.seen = id, {}
    def handle(self, event, env):
        pass
    def set_params(self, **kw):
        self.seen.update(kw)
'''


def _kernel(tmp_path: Path) -> HotKernel:
    kernel = HotKernel(run_dir=tmp_path / "run", poll_interval=0, register=False)
    kernel.submit(Op(op="load", id="heartbeat", target=HEARTBEAT, init={"every": 7}))
    return kernel


def _send(kernel: HotKernel, step: int, **command: Any) -> Any:
    CommandStream(kernel.run_dir.commands).append(command)
    kernel.apply({"step": step}, ["train_step_end"])
    return read_ledger(kernel.run_dir.ledger).entries[-1]


def test_a_set_is_checked_against_the_declaration_before_set_params(tmp_path: Path) -> None:
    with _kernel(tmp_path) as kernel:
        typo = _send(kernel, 1, op="set", id="heartbeat", params={"evry": 5})
        assert typo.decision == "failed"
        assert typo.error == (
            "heartbeat has no hot parameter 'evry'; did you mean 'every'? (it has: every, "
            "events, message); nothing was changed"
        )
        negative = _send(kernel, 2, op="set", id="heartbeat", params={"every": -3, "events": []})
        assert negative.error == (
            "heartbeat: every must be an integer >= 1, got -3; nothing was changed"
        )
        assert kernel.callbacks.status()["heartbeat"]["params"] == {"every": 7}
        converted = _send(kernel, 3, op="set", id="heartbeat", params={"every": 5.0})
        assert converted.decision == "applied"
        assert kernel.callbacks.get("heartbeat").every == 5  # type: ignore[union-attr]
        assert kernel.callbacks.status()["heartbeat"]["params"] == {"every": 5}


def test_a_callback_that_declares_nothing_takes_any_set_as_before(tmp_path: Path) -> None:
    source = tmp_path / "free.py"
    source.write_text(USER_CB)
    with _kernel(tmp_path) as kernel:
        target = CallbackTarget("python_file", str(source), "Free")
        assert kernel.submit(Op(op="load", id="free", target=target)).decision == "applied"
        entry = _send(kernel, 1, op="set", id="free", params={"anything": [1, 2]})
        assert entry.decision == "applied"
        assert kernel.callbacks.get("free").seen == {"anything": [1, 2]}  # type: ignore[union-attr]
        assert kernel.callbacks.status()["free"]["hot_params"] is None


def test_the_state_describes_each_callback_and_what_it_costs(tmp_path: Path) -> None:
    with _kernel(tmp_path) as kernel:
        for step in range(1, 40):
            kernel.apply({"step": step}, ["train_step_end"])
        kernel.write_state()
        state = json.loads(kernel.run_dir.state.read_text())
    record = state["callbacks"]["heartbeat"]
    assert record["hot_params"] == [
        {"name": "every", "type": "int", "default": 100, "help": "beat every N steps", "ge": 1,
         "value": 7},
        {"name": "events", "type": "list[str]", "default": ["train_step_end"],
         "help": "the events that beat", "nonempty": True, "value": ["train_step_end"]},
        {"name": "message", "type": "str", "default": "", "help": "text put in every beat",
         "value": ""},
    ]  # fmt: skip
    assert record["init"] == {"every": 7} and record["events"] == ["train_step_end"]
    assert record["doc"].startswith("Logs ``[<id>] <event> step=<N>``")
    cost = state["costs"]["cb"]["heartbeat"]
    # poll_interval=0: every apply polls, so every dispatch after the load is timed
    assert cost["samples"] == 39 and 0 < cost["mean_us"] <= cost["max_us"]
