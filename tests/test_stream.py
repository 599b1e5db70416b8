"""The command stream: whole lines only, each once, locked appends."""

from __future__ import annotations

import json
import multiprocessing as mp
from pathlib import Path

import pytest

from hotcb.stream import CommandStream


def test_half_written_line_waits_for_its_newline(tmp_path: Path) -> None:
    path = tmp_path / "hotcb.commands.jsonl"
    stream = CommandStream(path)
    reader = stream.reader()
    stream.append({"op": "disable", "id": "a"})
    with open(path, "ab") as fh:
        fh.write(b'{"op": "disable", "id"')
    assert [line.text for line in reader.read_new()] == ['{"op": "disable", "id": "a"}']
    assert reader.read_new() == []
    with open(path, "ab") as fh:
        fh.write(b': "b"}\n')
    lines = reader.read_new()
    assert [(line.lineno, line.text) for line in lines] == [(2, '{"op": "disable", "id": "b"}')]
    assert lines[0].offset == path.stat().st_size
    assert reader.read_new() == []


def test_reader_resumes_at_an_offset(tmp_path: Path) -> None:
    stream = CommandStream(tmp_path / "c.jsonl")
    for i in range(3):
        stream.append({"op": "disable", "id": f"cb{i}"})
    first = stream.reader().read_new()
    resumed = stream.reader(offset=first[1].offset, lineno=first[1].lineno).read_new()
    assert [(line.lineno, json.loads(line.text)["id"]) for line in resumed] == [(3, "cb2")]


def test_truncated_file_is_read_again_and_said(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    stream = CommandStream(path)
    reader = stream.reader()
    stream.append({"op": "disable", "id": "a"})
    stream.append({"op": "disable", "id": "b"})
    assert len(reader.read_new()) == 2
    path.write_text("")
    stream.append({"op": "enable", "id": "a"})
    lines = reader.read_new()
    assert reader.reset_reason is not None and "shrank" in reader.reset_reason
    assert [json.loads(line.text)["op"] for line in lines] == ["enable"]


def _writer(path: str, writer: int, count: int) -> None:
    stream = CommandStream(path)
    pad = "x" * 5000  # long lines make torn writes likely if the append were not whole
    for i in range(count):
        stream.append({"op": "set", "id": "hb", "params": {"w": writer, "i": i, "pad": pad}})


@pytest.mark.subprocess
def test_concurrent_writers_never_interleave_or_lose_lines(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    procs = [mp.Process(target=_writer, args=(str(path), w, 200)) for w in range(6)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    lines = CommandStream(path).reader().read_new(max_bytes=1 << 30)
    seen = {
        (json.loads(line.text)["params"]["w"], json.loads(line.text)["params"]["i"])
        for line in lines
    }
    assert len(lines) == 1200
    assert seen == {(w, i) for w in range(6) for i in range(200)}


def test_files_are_private_to_their_owner(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    CommandStream(path).append({"op": "disable", "id": "a"})
    assert path.stat().st_mode & 0o077 == 0
