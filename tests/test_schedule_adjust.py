"""Schedule adjustments (hotcb/schedule_adjust.py): each of the five kinds, each selector,
the three shapes of `hotcb.schedule.adjust`, and a bad rule failing the start with its key
and field named."""

from __future__ import annotations

from typing import Any

import pytest
from omegaconf import OmegaConf

from hotcb.hydra.hydrate import HydrationError, kernel_config
from hotcb.replay import effective_schedule
from hotcb.schedule import Schedule, ScheduleError

ENTRIES: dict[str, Any] = {
    "s10_set_hb": {"step": 10, "event": "train_step_end", "op": "set", "id": "hb",
                   "params": {"every": 2, "tag": "a"}},
    "s10_load_viz": {"step": 10, "event": "train_step_end", "op": "load", "id": "viz",
                     "target": {"kind": "module", "path": "m", "symbol": "V"},
                     "init": {"every": 4}},
    "s20_set_hb": {"step": 20, "event": "val_end", "op": "set", "id": "hb",
                   "params": {"every": 3}},
    "s30_opt_set_main": {"step": 30, "event": "train_step_end", "module": "opt", "op": "set",
                         "id": "main", "params": {"lr": 0.5}},
    "s40_disable_hb": {"step": 40, "event": "train_step_end", "op": "disable", "id": "hb"},
}  # fmt: skip


def adjusted(adjust: Any) -> list[tuple[str, int, str, dict[str, Any]]]:
    """(key, step, op, params) of the effective schedule, in the order it applies."""
    schedule = effective_schedule(Schedule.from_config({**ENTRIES, "adjust": adjust}))
    assert schedule.adjust == {}  # applied, so a copy of the written one applies the same
    return [(k, e.step, e.op, dict(e.params)) for k, e in schedule.ordered()]


UNCHANGED = [
    ("s10_set_hb", 10, "set", {"every": 2, "tag": "a"}),
    ("s10_load_viz", 10, "load", {}),
    ("s20_set_hb", 20, "set", {"every": 3}),
    ("s30_opt_set_main", 30, "set", {"lr": 0.5}),
    ("s40_disable_hb", 40, "disable", {}),
]


def test_no_rules_is_the_schedule_itself() -> None:
    assert adjusted({}) == UNCHANGED


def test_replace_params_sets_only_the_named_params() -> None:
    rule = {"match": {"id": "hb", "at_step": 10}, "replace_params": {"every": 9}}
    assert adjusted({"r": rule})[0] == ("s10_set_hb", 10, "set", {"every": 9, "tag": "a"})
    assert adjusted({"r": rule})[1:] == UNCHANGED[1:]


def test_shift_step_moves_the_entries_and_their_order() -> None:
    out = adjusted({"late": {"match": {"op": "set", "id": "hb", "nth": 0}, "shift_step": 15}})
    assert [(k, step) for k, step, *_ in out] == [
        ("s10_load_viz", 10),
        ("s20_set_hb", 20),
        ("s10_set_hb", 25),
        ("s30_opt_set_main", 30),
        ("s40_disable_hb", 40),
    ]
    early = adjusted({"early": {"match": {"op": "disable"}, "shift_step": -100}})
    assert early[0][:2] == ("s40_disable_hb", 0)  # never before step 0


def test_drop_removes_every_matched_entry() -> None:
    assert [k for k, *_ in adjusted([{"match": {"id": "hb"}, "drop": True}])] == [
        "s10_load_viz",
        "s30_opt_set_main",
    ]


def test_insert_adds_an_entry_with_an_exported_style_key() -> None:
    rule = {"insert": {"at": {"step": 15, "event": "train_step_end"}, "op": "set_params",
                       "id": "viz", "params": {"every": 1}}}  # fmt: skip
    flat = {"insert": {"step": 10, "event": "train_step_end", "op": "set", "id": "hb"}}
    out = adjusted({"a": rule, "b": flat})
    assert ("s15_set_viz", 15, "set", {"every": 1}) in out
    assert [k for k, *_ in out][:3] == ["s10_set_hb", "s10_load_viz", "s10_set_hb_2"]


def test_transform_params_scales_and_adds_numbers_present() -> None:
    rule = {
        "match": {"has_param": "every"},
        "transform_params": {"scale": {"every": 10}, "add": {"every": 1, "absent": 5}},
    }
    out = adjusted({"t": rule})
    assert out[0][3] == {"every": 21, "tag": "a"} and out[2][3] == {"every": 31}
    assert adjusted({"t": {"match": {"module": "opt"},
                           "transform_params": {"scale": {"lr": 0.1}}}})[3][3] == {"lr": 0.05}  # fmt: skip


@pytest.mark.parametrize(
    ("match", "keys"),
    [
        ({"id": "viz"}, ["s10_load_viz"]),
        ({"op": "set"}, ["s10_set_hb", "s20_set_hb", "s30_opt_set_main"]),
        ({"op": "set_params", "module": "cb"}, ["s10_set_hb", "s20_set_hb"]),
        ({"at_step": 20}, ["s20_set_hb"]),
        ({"at_event": "val_end"}, ["s20_set_hb"]),
        ({"step_min": 20, "step_max": 30}, ["s20_set_hb", "s30_opt_set_main"]),
        ({"has_param": "tag"}, ["s10_set_hb"]),
        ({"op": "set", "nth": 1}, ["s20_set_hb"]),
        ({}, list(ENTRIES)),
    ],
)
def test_each_selector_picks_exactly_its_entries(match: dict[str, Any], keys: list[str]) -> None:
    kept = [k for k, *_ in adjusted({"d": {"match": match, "drop": True}})]
    assert [k for k in ENTRIES if k not in kept] == keys


def test_rules_apply_in_order_and_overlay_and_list_shapes_are_accepted() -> None:
    rules = [
        {"match": {"id": "hb", "nth": 0}, "shift_step": 30},  # s10_set_hb -> step 40
        {"match": {"at_step": 40, "op": "set"}, "replace_params": {"every": 7}},
    ]
    as_list = adjusted(rules)
    assert ("s10_set_hb", 40, "set", {"every": 7, "tag": "a"}) in as_list
    assert adjusted({"version": 1, "patches": rules}) == as_list
    assert adjusted({"one": rules[0], "two": rules[1], "off": None}) == as_list
    # a keyed rule an override added beside the overlay's patches applies after them
    assert adjusted({"version": 1, "patches": rules[:1], "two": rules[1]}) == as_list


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"match": {"id": "hb"}}, "bad: rule: has no action"),
        ({"replace_params": {"every": 1}}, "bad: match: missing"),
        ({"match": {"idd": "hb"}, "drop": True}, "bad: match.idd: unknown field"),
        ({"match": {"nth": -1}, "drop": True}, "bad: match.nth: must be >= 0"),
        ({"match": {"id": "hb"}, "shift_step": 1.5}, "bad: shift_step: must be an integer"),
        ({"match": {}, "drop": True, "shift_step": 1}, "bad: drop: cannot be combined"),
        ({"match": {}, "transform_params": {"scale": {"every": "x"}}},
         "bad: transform_params.scale.every: must be a number"),
        ({"match": {"has_param": "tag"}, "transform_params": {"scale": {"tag": 2}}},
         "bad: transform_params: param 'tag' of entry s10_set_hb is 'a', not a number"),
        ({"insert": {"step": 1, "op": "set"}}, "bad: insert: missing 'id'"),
        ({"match": {"id": "nobody"}, "drop": True}, "bad: matches no entry"),
        ({"match": {"id": "hb"}, "dorp": True}, "bad: dorp: unknown field"),
    ],
)  # fmt: skip
def test_a_bad_rule_is_an_error_naming_its_key_and_field(rule: Any, message: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        adjusted({"bad": rule})
    assert str(caught.value).startswith(f"hotcb.schedule.adjust.{message}")


def test_a_bad_rule_fails_the_start_as_a_hydration_error() -> None:
    cfg = OmegaConf.create({"hotcb": {"schedule": {**ENTRIES, "adjust": {
        "slow_hb": {"match": {"id": "hb"}, "replace_params": [1]}}}}})  # fmt: skip
    with pytest.raises(HydrationError) as caught:
        kernel_config(cfg, run_dir="/nonexistent")
    assert str(caught.value) == (
        "hotcb.schedule.adjust.slow_hb: replace_params: must be a mapping, got [1]"
    )
    cfg.hotcb.schedule.adjust.slow_hb.replace_params = {"every": 8}
    schedule = kernel_config(cfg, run_dir="/nonexistent").schedule
    assert schedule.entries["s20_set_hb"].params == {"every": 8}
