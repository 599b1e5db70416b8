"""The schedule format: readable keys Hydra's override parser accepts, and a faithful
round trip through config (hotcb/schedule.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from hotcb.ledger import LedgerEntry, read_ledger
from hotcb.schedule import Schedule, ScheduleEntry, ScheduleError, schedule_from_ledger
from tests.helpers import HEARTBEAT_CLASS


def _entry(seq: int, step: int, op: str, cb_id: str, **payload: object) -> LedgerEntry:
    return LedgerEntry(
        seq=seq,
        wall_time=0.0,
        step=step,
        epoch=None,
        event="train_step_end",
        module="cb",
        op=op,
        id=cb_id,
        source="external",
        decision="applied",
        payload=payload,
    )


LEDGER = [
    _entry(1, 0, "load", "timing", target={"kind": "module", "path": "m", "symbol": "T"}),
    _entry(2, 120, "set", "heartbeat", params={"every": 10}),
    _entry(3, 120, "set", "heartbeat", params={"every": 3}),
    _entry(
        4,
        7,
        "load",
        "feat-viz",
        target={"kind": "python_file", "path": "/a/v.py", "symbol": "V"},
        sha256="ab" * 32,
    ),
    _entry(5, 9, "disable", "timing"),
]


def test_keys_are_readable_stable_and_hydra_overrides_accept_them() -> None:
    schedule = schedule_from_ledger(LEDGER)
    keys = list(schedule.entries)
    assert keys == [
        "s0_load_timing",
        "s120_set_heartbeat",
        "s120_set_heartbeat_2",
        "s7_load_feat-viz",
        "s9_disable_timing",
    ]
    assert schedule_from_ledger(LEDGER) == schedule  # same ledger, same keys
    parser = OverridesParser.create()
    for key in keys:
        parsed = parser.parse_overrides(
            [f"hotcb.schedule.{key}.params.every=10", f"~hotcb.schedule.{key}"]
        )
        assert parsed[0].key_or_group == f"hotcb.schedule.{key}.params.every"
        assert parsed[1].key_or_group == f"hotcb.schedule.{key}"
    # the override lands where the key says, through OmegaConf as Hydra applies it
    cfg = OmegaConf.create({"hotcb": {"schedule": schedule.to_config()}})
    OmegaConf.update(cfg, "hotcb.schedule.s120_set_heartbeat.params.every", 42)
    again = Schedule.from_config(cfg.hotcb.schedule)
    assert again.entries["s120_set_heartbeat"].params == {"every": 42}


def test_round_trip_order_offset_and_any_module() -> None:
    schedule = schedule_from_ledger(
        LEDGER, source=lambda sha, t: {**t, "path": f"config://hotcb/sources/{sha}.py"}
    )
    assert schedule.entries["s7_load_feat-viz"].target == {
        "kind": "python_file",
        "path": f"config://hotcb/sources/{'ab' * 32}.py",
        "symbol": "V",
    }
    assert Schedule.from_config(schedule.to_config()) == schedule
    order = [(k, e.step) for k, e in schedule.ordered()]
    assert order == [
        ("s0_load_timing", 0),
        ("s7_load_feat-viz", 7),
        ("s9_disable_timing", 9),
        ("s120_set_heartbeat", 120),
        ("s120_set_heartbeat_2", 120),
    ]
    shifted = Schedule.from_config({**schedule.to_config(), "step_offset": 1000})
    assert [e.step for _, e in shifted.ordered()] == [1000, 1007, 1009, 1120, 1120]
    opt = ScheduleEntry.from_dict(
        {
            "step": 3,
            "event": None,
            "module": "opt",
            "op": "set",
            "id": "adam",
            "params": {"lr": 1e-4},
        }
    )
    assert opt.to_dict()["module"] == "opt"
    assert ScheduleEntry.from_dict(opt.to_dict()) == opt


@pytest.mark.parametrize(
    ("node", "message"),
    [
        ({"policy": "sometimes"}, "policy must be one of best_effort, strict"),
        ({"a": {"step": -1, "op": "set", "id": "x"}}, "hotcb.schedule.a: 'step' must be"),
        ({"a": {"step": 1, "op": "set"}}, "hotcb.schedule.a: missing 'id'"),
        ({"a": {"step": 1, "op": "set", "id": "x", "when": 3}}, "unknown field(s) 'when'"),
    ],
)
def test_bad_schedules_say_what_and_where(node: dict, message: str) -> None:
    with pytest.raises(ScheduleError, match=None) as info:
        Schedule.from_config(node)
    assert message in str(info.value)


@pytest.mark.parametrize("bad", [-1, 2.5, True, "5"])
def test_a_command_at_step_is_checked_at_the_edge(bad: object) -> None:
    from hotcb.ops import CommandError, parse_command

    with pytest.raises(CommandError, match="'at_step' must be a step number >= 0"):
        parse_command(json.dumps({"op": "disable", "id": "t", "at_step": bad}))
    op = parse_command('{"op": "disable", "id": "t", "at_step": 5000}')
    assert op.at_step == 5000 and op.to_dict()["at_step"] == 5000


def test_a_resumed_run_applies_only_the_entries_its_ledger_lacks(tmp_path: Path) -> None:
    from hotcb.launch import kernel_from_config

    cfg = {
        "hotcb": {
            "callbacks": {"hb": {"_target_": HEARTBEAT_CLASS, "every": 100}},
            "schedule": {
                "s2_set_hb": {
                    "step": 2,
                    "event": "tick",
                    "op": "set",
                    "id": "hb",
                    "params": {"every": 2},
                },
                "s5_set_hb": {
                    "step": 5,
                    "event": "tick",
                    "op": "set",
                    "id": "hb",
                    "params": {"every": 5},
                },
            },
        }
    }

    def run(steps: range) -> None:
        kernel = kernel_from_config(cfg, run_dir=tmp_path, register=False, poll_interval=0)
        for step in steps:
            kernel.apply({"step": step, "log": lambda m: None}, ["tick"])
        kernel.close()

    run(range(1, 4))  # stops (a crash, a preemption) after step 3
    run(range(1, 7))  # resumes from its checkpoint at step 1
    replayed = [
        (e.step, e.payload["schedule_key"])
        for e in read_ledger(tmp_path / "hotcb.applied.jsonl").entries
        if e.source == "schedule"
    ]
    assert replayed == [(2, "s2_set_hb"), (5, "s5_set_hb")]
