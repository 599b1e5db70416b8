"""The ledger survives crashes: every complete line valid, truncated tails tolerated."""

from __future__ import annotations

from pathlib import Path

from hotcb.ledger import Ledger, read_ledger


def _entry(ledger: Ledger, n: int) -> None:
    ledger.record(
        module="cb",
        op="set",
        id="hb",
        source="external",
        decision="applied",
        payload={"params": {"every": n}},
        step=n,
    )


def test_seq_continues_across_writers(tmp_path: Path) -> None:
    path = tmp_path / "hotcb.applied.jsonl"
    _entry(Ledger(path), 1)
    ledger = Ledger(path)
    _entry(ledger, 2)
    assert [e.seq for e in read_ledger(path).entries] == [1, 2]


def test_truncated_last_line_is_ignored_and_reported(tmp_path: Path) -> None:
    path = tmp_path / "hotcb.applied.jsonl"
    ledger = Ledger(path)
    _entry(ledger, 1)
    _entry(ledger, 2)
    data = path.read_bytes()
    path.write_bytes(data[:-15])  # a crash in the middle of the second write
    read = read_ledger(path)
    assert [e.seq for e in read.entries] == [1]
    assert read.truncated_tail is not None
    assert any("truncated" in w for w in read.warnings())
    # the next writer starts on a fresh line and keeps the sequence going
    _entry(Ledger(path), 3)
    again = read_ledger(path)
    assert [e.seq for e in again.entries] == [1, 2]
    assert again.truncated_tail is None and len(again.bad_lines) == 1


def test_unserialisable_payload_values_become_text(tmp_path: Path) -> None:
    path = tmp_path / "l.jsonl"
    Ledger(path).record(
        module="cb",
        op="set",
        id="x",
        source="external",
        decision="applied",
        payload={"obj": object(), "tup": (1, 2)},
    )
    payload = read_ledger(path).entries[0].payload
    assert payload["tup"] == [1, 2] and payload["obj"].startswith("<object object")


def test_fsync_policy_is_validated(tmp_path: Path) -> None:
    import pytest

    with pytest.raises(ValueError, match="fsync"):
        Ledger(tmp_path / "l.jsonl", fsync="sometimes")  # type: ignore[arg-type]
