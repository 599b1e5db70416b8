"""A declared hot parameter converts what fits and says what it expects when not."""

from __future__ import annotations

from typing import Any

import pytest

from hotcb.hotparams import HotParam, ParamError, check_values, declared_params

EVERY = HotParam("every", int, 100, "beat every N steps", ge=1)
DECLARED = (
    EVERY,
    HotParam("events", "list[str]", ["train_step_end"], "which events", nonempty=True),
    HotParam("factor", float, 10.0, "spike factor", gt=1),
    HotParam("action", str, "log", "what to do", choices=("log", "stop")),
    HotParam("on", bool, False, "switch"),
    HotParam("budget", float, None, "seconds", gt=0, nullable=True),
)


@pytest.mark.parametrize(
    ("values", "converted"),
    [
        ({"every": 5}, {"every": 5}),
        ({"every": 5.0}, {"every": 5}),
        ({"events": "val_end"}, {"events": ["val_end"]}),
        ({"factor": 3}, {"factor": 3.0}),
        ({"on": True, "action": "stop"}, {"on": True, "action": "stop"}),
        ({"budget": None}, {"budget": None}),
        ({"_timeout_": "reserved keys pass"}, {"_timeout_": "reserved keys pass"}),
    ],
)
def test_values_that_fit_are_converted(values: dict[str, Any], converted: dict[str, Any]) -> None:
    out = check_values("cb", DECLARED, values)
    assert out == converted and [type(v) for v in out.values()] == [
        type(v) for v in converted.values()
    ]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"evry": 5}, "cb has no hot parameter 'evry'; did you mean 'every'? (it has: every,"),
        ({"zzz": 5}, "cb has no hot parameter 'zzz' (it has: every, events"),
        ({"every": -3}, "cb: every must be an integer >= 1, got -3"),
        ({"every": "abc"}, "cb: every must be an integer >= 1, got 'abc'"),
        ({"every": True}, "cb: every must be an integer >= 1, got true"),
        ({"every": 2.5}, "cb: every must be an integer >= 1, got 2.5"),
        ({"events": []}, "cb: events must be a non-empty list of strings, got []"),
        ({"factor": 1}, "cb: factor must be a finite number > 1, got 1"),
        ({"factor": float("inf")}, "cb: factor must be a finite number > 1, got inf"),
        ({"action": "skip"}, "cb: action must be one of log, stop, got 'skip'"),
        ({"on": "yes"}, "cb: on must be true or false, got 'yes'"),
        ({"budget": 0}, "cb: budget must be a finite number > 0 (or null), got 0"),
    ],
)
def test_what_does_not_fit_says_what_is_expected(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ParamError) as info:
        check_values("cb", DECLARED, values)
    assert str(info.value).startswith(message), str(info.value)


def test_a_declaration_round_trips_through_the_state_file() -> None:
    for param in DECLARED:
        assert HotParam.from_dict({**param.to_dict(), "value": 1}) == param


def test_a_bad_declaration_is_refused_with_what_is_wrong() -> None:
    with pytest.raises(TypeError, match="type must be one of"):
        HotParam("every", complex)
    with pytest.raises(TypeError, match="must be a Python identifier"):
        HotParam("1x", int)

    class Twice:
        hot_params = (EVERY, EVERY)

    class NotParams:
        hot_params = ("every",)

    class Undeclared:
        pass

    with pytest.raises(TypeError, match="declares a name twice"):
        declared_params(Twice)
    with pytest.raises(TypeError, match=r"NotParams.hot_params must be a tuple of .*HotParam"):
        declared_params(NotParams())
    assert declared_params(Undeclared) is None
