"""A schedule too big to compose inline (over INLINE_MAX entries): `export-config --schedule`
writes its entries to `conf/hotcb/schedule/<name>.entries.jsonl` beside the option, and the
printed command replays it exactly (a real `python train.py` of a small Hydra app of this
test's own, without torch). A corrupt, half-written or edited entries file fails the start
with the file and line named; inline overrides merge with the file's entries by key.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig

from hotcb.hydra.export import ExportError, export_config
from hotcb.hydra.hydrate import HydrationError, kernel_config
from hotcb.launch import kernel_from_config
from hotcb.schedule_file import INLINE_MAX, sha256_bytes
from hotcb.stream import CommandStream
from tests.helpers import HEARTBEAT_CLASS, Child
from tests.hydra.test_replay import TRAIN, op_sequence

# one module-scoped run: the tests stay on one xdist worker (else each worker runs it)
pytestmark = pytest.mark.xdist_group("replay_file")

ENTRIES = INLINE_MAX + 50
CONFIG = f"""defaults:
  - _self_
steps: {ENTRIES + 5}
hotcb:
  callbacks:
    heartbeat:
      _target_: {HEARTBEAT_CLASS}
      every: 1000
"""


@dataclass
class Big:
    conf: Path
    run_a: Path
    out_a: list[str]
    next_command: str
    run_b: Path
    b: Child


def run_a(app: Path) -> tuple[Path, list[str]]:
    """Run A in this process: one live `set` at each of ENTRIES steps, from the stream."""
    run_dir = app / "outputs" / "A"
    cfg = yaml.safe_load(CONFIG)
    kernel = kernel_from_config(cfg, run_dir=run_dir, poll_interval=0, register=False)
    stream = CommandStream(kernel.run_dir.commands)
    out: list[str] = []
    env: dict[str, Any] = {"log": out.append}
    for step in range(1, cfg["steps"] + 1):
        if step <= ENTRIES:
            stream.append({"op": "set", "id": "heartbeat", "params": {"every": step % 7 + 1}})
        env["step"] = step
        kernel.apply(env, ["train_step_end"])
    kernel.close()
    launch = {
        "argv": [str(app / "train.py")],
        "cwd": str(app),
        "config_name": "config",
        "config_dir": str(app / "conf"),
        "overrides": [],
    }
    (run_dir / "hotcb.launch.json").write_text(json.dumps(launch))
    return run_dir, out


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Big]:
    app = tmp_path_factory.mktemp("bigreplay") / "app"
    (app / "conf").mkdir(parents=True)
    (app / "conf" / "config.yaml").write_text(CONFIG)
    (app / "train.py").write_text(TRAIN)
    run_dir, out = run_a(app)
    # exported from the app's dir, as a user would: the printed command names the script
    # relative to where export-config ran, and it is run from there
    here = os.getcwd()
    os.chdir(app)
    try:
        result = export_config(run_dir, name="big", schedule=True)
    finally:
        os.chdir(here)
    assert result.next_command is not None
    command = shlex.split(result.next_command)
    b = Child([sys.executable, *command[1:], "hydra.run.dir=outputs/B"], cwd=app)
    try:
        run_b = Path(b.wait_line("run dir: ").split(": ", 1)[1])
        yield Big(app / "conf", run_dir, out, result.next_command, run_b, b)
    finally:
        b.kill()


@contextmanager
def composed(conf: Path, *overrides: str) -> Iterator[Any]:
    """The app's config composed with ``overrides``, Hydra's config set as @hydra.main
    sets it (so ``config://`` resolves), reset afterwards."""
    with initialize_config_dir(config_dir=str(conf), version_base=None):
        cfg = compose("config", overrides=list(overrides), return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    try:
        yield cfg
    finally:
        HydraConfig.instance().cfg = None


def option(conf: Path, name: str, text: str, entries: bytes) -> None:
    """A copy of the exported option as ``name``, its entries file holding ``entries``."""
    (conf / "hotcb" / "schedule" / f"{name}.yaml").write_text(
        text.replace("big.entries.jsonl", f"{name}.entries.jsonl")
    )
    (conf / "hotcb" / "schedule" / f"{name}.entries.jsonl").write_bytes(entries)


@pytest.mark.subprocess
@pytest.mark.slow(4)
def test_a_big_schedule_is_a_file_beside_its_option_and_replays_exactly(big: Big) -> None:
    node = yaml.safe_load((big.conf / "hotcb" / "schedule" / "big.yaml").read_text())
    data = (big.conf / "hotcb" / "schedule" / "big.entries.jsonl").read_bytes()
    assert node == {
        "policy": "best_effort",
        "step_offset": 0,
        "file": "config://hotcb/schedule/big.entries.jsonl",
        "sha256": sha256_bytes(data),
    }
    lines = [json.loads(line) for line in data.decode().splitlines()]
    assert len(lines) == ENTRIES
    assert lines[0] == {
        "key": "s1_set_heartbeat",
        "step": 1,
        "event": "train_step_end",
        "op": "set",
        "id": "heartbeat",
        "params": {"every": 2},
    }
    assert big.next_command.endswith("train.py +hotcb/schedule=big")

    assert big.b.finish(timeout=120).endswith("missed: ")
    sequence = op_sequence(big.run_b)
    assert len(sequence) == ENTRIES + 1  # the config's load, then every set
    assert sequence == op_sequence(big.run_a)
    assert (big.run_b / "out.txt").read_text().splitlines() == big.out_a
    effective = yaml.safe_load((big.run_b / "hotcb.schedule.yaml").read_text())
    entries = big.run_b / "hotcb.schedule.entries.jsonl"
    assert effective["file"] == str(entries)
    assert entries.read_bytes() == data  # the schedule it applied: the exported one


def test_a_half_written_entries_file_fails_the_start_naming_file_and_line(
    big: Big, tmp_path: Path
) -> None:
    text = (big.conf / "hotcb" / "schedule" / "big.yaml").read_text()
    data = (big.conf / "hotcb" / "schedule" / "big.entries.jsonl").read_bytes()
    cut = data[: data.index(b"\n", len(data) // 2) + 20]  # 20 bytes into a line
    option(big.conf, "cut", text, cut)
    path = big.conf / "hotcb" / "schedule" / "cut.entries.jsonl"
    with composed(big.conf, "+hotcb/schedule=cut") as cfg, pytest.raises(HydrationError) as info:
        kernel_from_config(cfg, run_dir=tmp_path / "run", register=False)
    line = cut.count(b"\n") + 1
    assert str(info.value).startswith(f"{path} line {line}: not valid JSON")
    assert "the last line is cut short: the file was half-written" in str(info.value)
    assert not (tmp_path / "run").exists()  # failed before anything started


def test_an_edited_entries_file_is_refused_until_its_sha256_is_given(big: Big) -> None:
    text = (big.conf / "hotcb" / "schedule" / "big.yaml").read_text()
    data = (big.conf / "hotcb" / "schedule" / "big.entries.jsonl").read_bytes()
    lines = data.splitlines(keepends=True)
    assert b'"s3_set_heartbeat"' in lines[2]
    edited = b"".join([*lines[:2], lines[2].replace(b'"every": 4', b'"every": 40'), *lines[3:]])
    option(big.conf, "edited", text, edited)
    path = big.conf / "hotcb" / "schedule" / "edited.entries.jsonl"
    actual = sha256_bytes(edited)
    with composed(big.conf, "+hotcb/schedule=edited") as cfg, pytest.raises(HydrationError) as info:
        kernel_config(cfg, run_dir="/unused")
    assert str(info.value).startswith(f"{path}: its sha256 is {actual}, not the ")
    assert f"start the run with hotcb.schedule.sha256={actual}" in str(info.value)
    with composed(big.conf, "+hotcb/schedule=edited", f"hotcb.schedule.sha256={actual}") as cfg:
        schedule = kernel_config(cfg, run_dir="/unused").schedule
    assert schedule.entries["s3_set_heartbeat"].params == {"every": 40}
    # half-written at a line boundary: every line parses, the sha256 does not match
    option(big.conf, "short", text, b"".join(lines[:100]))
    with (
        composed(big.conf, "+hotcb/schedule=short") as cfg,
        pytest.raises(HydrationError, match=r"its sha256 is .* \(half-written, or edited\)"),
    ):
        kernel_config(cfg, run_dir="/unused")


def test_inline_overrides_merge_with_the_file_entries_by_key(big: Big) -> None:
    with composed(
        big.conf,
        "+hotcb/schedule=big",
        "+hotcb.schedule.s3_set_heartbeat.params.every=10",
        "+hotcb.schedule.s4_set_heartbeat=null",
        "+hotcb.schedule.extra={step: 3, event: train_step_end, op: disable, id: heartbeat}",
        "hotcb.schedule.step_offset=100",
    ) as cfg:
        schedule = kernel_config(cfg, run_dir="/unused").schedule
    assert len(schedule) == ENTRIES  # one dropped, one added
    assert schedule.entries["s3_set_heartbeat"].params == {"every": 10}
    assert schedule.entries["s3_set_heartbeat"].op == "set"  # the rest from the file
    assert "s4_set_heartbeat" not in schedule.entries
    assert [(k, e.step) for k, e in schedule.ordered()[2:5]] == [
        ("s3_set_heartbeat", 103),
        ("extra", 103),
        ("s5_set_heartbeat", 105),
    ]
    with (
        composed(big.conf, "+hotcb/schedule=big", "+hotcb.schedule.s3_set_heartbeat.step=x") as cfg,
        pytest.raises(HydrationError, match=r"hotcb\.schedule\.s3_set_heartbeat: 'step' must"),
    ):
        kernel_config(cfg, run_dir="/unused")


def test_an_existing_option_is_refused_before_its_entries_file_is_written(big: Big) -> None:
    taken = big.conf / "hotcb" / "schedule" / "taken.yaml"
    taken.write_text("# @package hotcb.schedule\npolicy: strict\n")
    with pytest.raises(ExportError) as info:
        export_config(big.run_a, name="taken", schedule=True)
    assert str(info.value) == f"{taken}: already exists; pass --force to overwrite it"
    assert not (big.conf / "hotcb" / "schedule" / "taken.entries.jsonl").exists()
