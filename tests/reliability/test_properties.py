"""Any bytes as a command line: apply never raises, and each line is accounted for once.

Including text that is not valid Unicode, names ending in a newline, values nested deeper
than the JSON encoder goes and numbers too long to convert.
"""

from __future__ import annotations

import contextlib
import json
from functools import reduce
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hotcb.kernel import HotKernel
from hotcb.ledger import read_ledger
from hotcb.ops import CommandError, Op, parse_command
from tests.helpers import HEARTBEAT

# text that is not valid Unicode (lone surrogates), and names ending in a newline
ODD_TEXT = st.sampled_from(["\ud800", "caf\udce9", "hb\n", "every\n"])
TEXT = st.text(max_size=20) | ODD_TEXT
# nesting from harmless to deeper than the ledger's old deep copy could go (JSON still can)
DEEP = st.integers(min_value=1, max_value=900).map(lambda n: reduce(lambda v, _: [v], range(n), 1))
JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | TEXT,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=8) | ODD_TEXT, inner, max_size=4)
    ),
    max_leaves=10,
)
COMMANDISH = st.fixed_dictionaries(
    {},
    optional={
        "op": st.sampled_from(["load", "set", "set_params", "enable", "disable", "unload", "boom"])
        | JSONISH,
        "id": st.sampled_from(["hb", "x", "", "../a", "hb\n"]) | JSONISH,
        "module": st.sampled_from(["cb", "other"]) | JSONISH,
        "params": st.dictionaries(
            st.sampled_from(["every", "events", "1x", "", "every\n"]), JSONISH | DEEP, max_size=3
        )
        | JSONISH,
        "target": JSONISH,
        "init": JSONISH,
        "enabled": JSONISH,
    },
)
# a number too long for int() (Python refuses more than 4300 digits)
LONG_NUMBER = st.integers(min_value=4301, max_value=6000).map(
    lambda n: b'{"op": "set", "id": "hb", "params": {"every": ' + b"1" * n + b"}}"
)
LINES = (
    st.binary(max_size=200).filter(lambda b: b"\n" not in b)
    | COMMANDISH.map(lambda d: json.dumps(d).encode())
    | LONG_NUMBER
)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300) | st.text(max_size=300) | LONG_NUMBER | DEEP.map(json.dumps))
def test_parse_command_only_raises_command_error(line: bytes | str) -> None:
    with contextlib.suppress(CommandError):
        parse_command(line)


@pytest.mark.slow(6)
@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(LINES, min_size=1, max_size=8))
def test_any_lines_never_break_apply(tmp_path_factory: object, lines: list[bytes]) -> None:
    run = Path(tmp_path_factory.mktemp("prop"))  # type: ignore[attr-defined]
    kernel = HotKernel(run_dir=run, poll_interval=0, register=False)
    kernel.submit(Op(op="load", id="hb", target=HEARTBEAT))
    with open(kernel.run_dir.commands, "ab") as fh:
        fh.write(b"\n".join(lines) + b"\n")
    for step in range(3):
        kernel.apply({"step": step, "log": lambda m: None}, ["train_step_end"])
    kernel.close()
    external = [
        e for e in read_ledger(run / "hotcb.applied.jsonl").entries if e.source == "external"
    ]
    expected = [n for n, line in enumerate(lines, 1) if line.strip()]
    assert [e.line for e in external] == expected
