"""Parsing at the edge: what a command line may and may not say."""

from __future__ import annotations

import pytest

from hotcb.ops import (
    CallbackTarget,
    CommandError,
    Op,
    parse_assignments,
    parse_command,
    parse_scalar,
)


def test_set_params_is_an_alias_of_set() -> None:
    op = parse_command('{"op": "set_params", "id": "hb", "params": {"every": 5}}')
    assert op == Op(op="set", id="hb", params={"every": 5})


def test_load_round_trips_through_to_dict() -> None:
    line = (
        '{"op": "load", "id": "viz", "target": {"kind": "python_file", "path": "/tmp/v.py",'
        ' "symbol": "Viz"}, "init": {"every": 50}, "enabled": false}'
    )
    op = parse_command(line)
    assert op.target == CallbackTarget("python_file", "/tmp/v.py", "Viz")
    assert Op.from_dict(op.to_dict()) == op
    assert op.enabled is False and dict(op.init) == {"every": 50}


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ('{"op": "set", "id": "hb", "params": {"every": 5}', "not valid JSON"),
        ('["op"]', "must be a JSON object"),
        ('{"op": "explode", "id": "hb"}', "unknown op 'explode'"),
        ('{"op": "set", "params": {"every": 5}}', "missing 'id'"),
        ('{"op": "load", "id": "x"}', "needs a 'target'"),
        (
            '{"op": "load", "id": "x", "target": {"kind": "zip", "path": "a", "symbol": "B"}}',
            "kind must be",
        ),
        ('{"op": "load", "id": "x", "target": {"kind": "module", "path": "a"}}', "missing symbol"),
        ('{"op": "set", "id": "hb"}', "needs at least one parameter"),
        ('{"op": "set", "id": "hb", "params": {"1x": 5}}', "invalid parameter name"),
        ('{"op": "disable", "id": "../etc"}', "invalid callback id"),
        ('{"op": "disable", "id": "hb", "parms": {}}', "unknown field"),
        ('{"op": "enable", "id": "hb", "params": {"a": 1}}', "does not take params"),
        ("", "empty line"),
    ],
)
def test_bad_commands_say_what_is_wrong(line: str, fragment: str) -> None:
    with pytest.raises(CommandError, match=None) as info:
        parse_command(line)
    assert fragment in str(info.value)


def test_bad_json_names_the_column() -> None:
    with pytest.raises(CommandError, match=r"column \d+"):
        parse_command('{"op": "set", "id": hb}')


def test_values_parse_as_yaml_scalars_like_hydra() -> None:
    assert parse_assignments(["every=5", "lr=3e-4", "on=true", "tags=[a,b]", "name=my run"]) == {
        "every": 5,
        "lr": 3e-4,
        "on": True,
        "tags": ["a", "b"],
        "name": "my run",
    }
    assert parse_scalar("null") is None
    assert parse_scalar("'5'") == "5"
    assert parse_scalar("2024-01-01") == "2024-01-01"  # not a datetime: must stay JSON


def test_assignment_without_equals_is_refused() -> None:
    with pytest.raises(CommandError, match="expected name=value"):
        parse_assignments(["every"])
