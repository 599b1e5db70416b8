"""`hotcb cb set ID k=v` reads v exactly as Hydra's own override parser reads it: checked
against hydra-core's OverridesParser on a table of values and on generated ones."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hotcb.ops import CommandError, parse_assignments
from hotcb.overrides import ValueSyntaxError, parse_value

overrides_parser = pytest.importorskip("hydra.core.override_parser.overrides_parser")
hydra_types = pytest.importorskip("hydra.core.override_parser.types")

PARSER = overrides_parser.OverridesParser.create()
REFUSED = object()  # what Hydra refuses, or reads as a sweep / function (not one value)


def hydra_value(text: str) -> Any:
    """What Hydra makes of ``k=<text>`` (``REFUSED`` for a parse error or a sweep)."""
    try:
        override = PARSER.parse_override("k=" + text)
    except Exception:
        return REFUSED
    value = override.value()
    return REFUSED if isinstance(value, hydra_types.Sweep) else value


def ours(text: str) -> Any:
    try:
        return parse_value(text)
    except ValueSyntaxError:
        return REFUSED


def same(a: Any, b: Any) -> bool:
    """Equal, and of the same type all the way down (True is not 1, nan is nan)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return bool(a == b)


def non_string_key(value: Any) -> bool:
    """A dict key Hydra reads as a number, bool or null: refused here on purpose (a hot
    parameter's dict has string keys, as JSON does)."""
    if isinstance(value, dict):
        return any(not isinstance(k, str) or non_string_key(v) for k, v in value.items())
    return isinstance(value, list) and any(non_string_key(v) for v in value)


def assert_as_hydra(text: str) -> None:
    expected, got = hydra_value(text), ours(text)
    if expected is not REFUSED and got is REFUSED and non_string_key(expected):
        return
    assert (expected is REFUSED) == (got is REFUSED), (text, expected, got)
    if expected is not REFUSED:
        assert same(expected, got), (text, expected, got)


TABLE = {
    # what YAML (hotcb before) read as booleans or numbers, Hydra keeps as strings
    "yes": "yes",
    "on": "on",
    "NO": "NO",
    "0x10": "0x10",
    "007": "007",
    "1__0": "1__0",
    "2024-01-01": "2024-01-01",
    # numbers, booleans, null
    "5": 5,
    "+5": 5,
    "-0": 0,
    "1_000": 1000,
    "5.": 5.0,
    ".5": 0.5,
    "1e3": 1000.0,
    "3e-4": 3e-4,
    "-Inf": -math.inf,
    "TRUE": True,
    "False": False,
    "NULL": None,
    # strings
    "": "",
    " a b ": "a b",
    "'5'": "5",
    '"x\'y"': "x'y",
    "a\\,b": "a,b",
    "x\\=y": "x=y",
    "${foo}": "${foo}",
    '"\\ud800"': "\\ud800",
    # containers
    "[a, b ]": ["a", "b"],
    "[1,'2',null]": [1, "2", None],
    "{a: 1, b: [x]}": {"a": 1, "b": ["x"]},
    "{}": {},
}


@pytest.mark.parametrize(("text", "value"), TABLE.items(), ids=list(TABLE))
def test_values_read_as_hydra_reads_them(text: str, value: Any) -> None:
    assert same(parse_value(text), value)
    assert_as_hydra(text)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("a,b", "is a sweep"),
        ("range(1,3)", "calls the function range()"),
        ("str(5)", "calls the function str()"),
        ("a=b", "unexpected '='"),
        ("'a' 'b'", "unexpected"),
        ("é", "cannot read"),
        ("{1: 2}", "is not a string"),
        ("[a", "ends too early"),
    ],
)
def test_what_is_not_one_plain_value_is_refused_clearly(text: str, fragment: str) -> None:
    with pytest.raises(ValueSyntaxError, match=None) as info:
        parse_value(text)
    assert fragment in str(info.value)
    with pytest.raises(CommandError):
        parse_assignments([f"x={text}"])


ALPHABET = "ab01_9.eE+-xinTfFNul'\"\\,[]{}:=()$%*@?| \t"


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=ALPHABET, max_size=14))
def test_generated_values_read_as_hydra_reads_them(text: str) -> None:
    assert_as_hydra(text)
