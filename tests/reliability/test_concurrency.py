"""8 writer processes x 500 commands while the kernel applies: none lost, doubled or torn."""

from __future__ import annotations

import json
import multiprocessing as mp
from pathlib import Path
from typing import Any

import pytest

from hotcb.ledger import read_ledger
from hotcb.ops import CallbackTarget, Op
from hotcb.stream import CommandStream

WRITERS, PER_WRITER = 8, 500


def _write(path: str, writer: int) -> None:
    stream = CommandStream(path)
    for i in range(PER_WRITER):
        stream.append(
            {"op": "set", "id": "probe", "params": {"w": writer, "i": i, "pad": "x" * (i % 300)}}
        )


class Probe:
    def __init__(self, id: str = "probe") -> None:
        self.id = id
        self.seen: list[tuple[int, int]] = []

    def handle(self, event: str, env: dict[str, Any]) -> None:
        pass

    def set_params(self, **kw: Any) -> None:
        self.seen.append((kw["w"], kw["i"]))


@pytest.mark.subprocess
def test_eight_writers_while_applying(kernel_factory: Any, tmp_path: Path) -> None:
    import sys

    sys.modules[__name__].Probe = Probe  # importable by the loader under this module's name
    kernel = kernel_factory()
    kernel.submit(Op(op="load", id="probe", target=CallbackTarget("module", __name__, "Probe")))
    ctx = mp.get_context("fork")
    procs = [
        ctx.Process(target=_write, args=(str(kernel.run_dir.commands), w)) for w in range(WRITERS)
    ]
    for p in procs:
        p.start()
    step = 0
    while any(p.is_alive() for p in procs):
        step += 1
        kernel.apply({"step": step}, ["train_step_end"])
    for p in procs:
        p.join()
        assert p.exitcode == 0
    kernel.apply({"step": step + 1}, ["train_step_end"])
    probe = kernel.modules["cb"].controller.get("probe")
    expected = {(w, i) for w in range(WRITERS) for i in range(PER_WRITER)}
    assert len(probe.seen) == WRITERS * PER_WRITER and set(probe.seen) == expected  # type: ignore[union-attr]
    for w in range(WRITERS):  # each writer's commands in its own order
        assert [i for ww, i in probe.seen if ww == w] == list(range(PER_WRITER))  # type: ignore[union-attr]
    lines = kernel.run_dir.commands.read_text().splitlines()
    assert all(json.loads(line)["op"] == "set" for line in lines)
    external = [e for e in read_ledger(kernel.run_dir.ledger).entries if e.source == "external"]
    assert [e.line for e in external] == list(range(1, WRITERS * PER_WRITER + 1))
    assert {e.decision for e in external} == {"applied"}
