"""A big schedule's entries file (hotcb/schedule_file.py): every line checked, each problem
named by file and line; the sha256 check; inline nodes merged by key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hotcb.schedule import Schedule, ScheduleError
from hotcb.schedule_file import (
    EntriesFileError,
    entries_jsonl,
    merge_entries,
    read_entries,
    sha256_bytes,
)

SCHEDULE = Schedule.from_config(
    {
        f"s{n}_set_hb": {"step": n, "event": "e", "op": "set", "id": "hb", "params": {"every": n}}
        for n in range(1, 6)
    }
)


def written(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "x.entries.jsonl"
    path.write_bytes(data)
    return path


def test_the_file_round_trips_in_order(tmp_path: Path) -> None:
    data = entries_jsonl(SCHEDULE)
    entries = read_entries(written(tmp_path, data), sha256=sha256_bytes(data))
    assert list(entries.items()) == list(SCHEDULE.entries.items())


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b"[1, 2]", "expected one entry as a JSON object"),
        (b'{"step": 1, "op": "set", "id": "hb"}', "missing or invalid 'key' None"),
        (b'{"key": "policy", "step": 1, "op": "set", "id": "hb"}', "invalid 'key' 'policy'"),
        (b'{"key": "a b", "step": 1, "op": "set", "id": "hb"}', "invalid 'key' 'a b'"),
        (b'{"key": "s1_set_hb", "step": 1, "op": "set", "id": "hb"}', "'s1_set_hb' appears twice"),
        (b'{"key": "k", "step": -1, "op": "set", "id": "hb"}', "k: 'step' must be an integer"),
        (b'{"key": "k", "step": 1, "op": "set", "id": "hb", "x": 1}', "k: unknown field(s) 'x'"),
        (b'{"key": "k", "step": 1, "op": "set"', "not valid JSON"),
    ],
)
def test_a_bad_line_is_named_by_file_and_line(tmp_path: Path, line: bytes, message: str) -> None:
    lines = entries_jsonl(SCHEDULE).splitlines()
    path = written(tmp_path, b"\n".join([*lines[:2], b"", line, *lines[2:]]) + b"\n")
    with pytest.raises(EntriesFileError) as info:
        read_entries(path)
    assert (info.value.path, info.value.line) == (str(path), 4)  # the blank line counts
    assert str(info.value).startswith(f"{path} line 4: ")
    assert message in info.value.message
    assert "half-written" not in info.value.message  # a whole line, not a cut one


def test_a_missing_file_or_a_symlink_is_refused(tmp_path: Path) -> None:
    with pytest.raises(EntriesFileError, match="cannot read the schedule's entries file"):
        read_entries(tmp_path / "gone.entries.jsonl")
    target = written(tmp_path, entries_jsonl(SCHEDULE))
    (tmp_path / "link.entries.jsonl").symlink_to(target)
    with pytest.raises(EntriesFileError, match="symbolic link"):
        read_entries(tmp_path / "link.entries.jsonl")


def test_the_sha256_catches_a_file_cut_at_a_line_boundary(tmp_path: Path) -> None:
    data = entries_jsonl(SCHEDULE)
    cut = b"".join(data.splitlines(keepends=True)[:3])
    assert len(read_entries(written(tmp_path, cut))) == 3  # every line is fine
    with pytest.raises(EntriesFileError, match=f"its sha256 is {sha256_bytes(cut)}, not the"):
        read_entries(written(tmp_path, cut), sha256=sha256_bytes(data))


def test_inline_nodes_merge_onto_file_entries_by_key() -> None:
    node = {
        "policy": "strict",
        "file": "x",
        "sha256": None,
        "s2_set_hb": {"params": {"every": 20}},
        "s3_set_hb": None,
        "new": {"step": 2, "op": "disable", "id": "hb"},
    }
    merged = merge_entries(node, SCHEDULE.entries)
    assert merged.policy == "strict"
    assert list(merged.entries) == ["s1_set_hb", "s2_set_hb", "s4_set_hb", "s5_set_hb", "new"]
    assert merged.entries["s2_set_hb"].to_dict() == {
        "step": 2,
        "event": "e",
        "op": "set",
        "id": "hb",
        "params": {"every": 20},
    }
    with pytest.raises(ScheduleError, match=r"hotcb\.schedule\.s2_set_hb: expected a mapping"):
        merge_entries({"s2_set_hb": 5}, SCHEDULE.entries)
    json.dumps(merged.to_config())  # plain values
