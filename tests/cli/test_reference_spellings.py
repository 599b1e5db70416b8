"""The reference project's CLI spellings (sidphbot/hotcb docs/cli.md), against a real run dir:
several ``K=V`` pairs after one ``--init``, ``--enabled/--no-enabled``, ``--module``, the
top-level ``enable | disable | set | load | unload`` and ``hotcb init``. Each command is
queued through CliRunner, applied by an in-process kernel, and checked in the ledger and
the state, never in the CLI's wording."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from hotcb.cli import cli
from hotcb.kernel import HotKernel
from hotcb.ledger import read_ledger
from tests.cli.test_commands import invoke, queued
from tests.cli.test_commands import run as run  # the fixture: a run dir with heartbeat loaded
from tests.helpers import HEARTBEAT

TIMING = ("--path", "hotcb.modules.cb.callbacks.timing", "--symbol", "TimingCallback")


def applied(kernel: HotKernel, step: int) -> list[Any]:
    """Apply what is queued at ``step``; the external ledger entries of that step."""
    kernel.apply({"step": step}, ["train_step_end"])
    entries = read_ledger(kernel.run_dir.ledger).entries
    return [e for e in entries if e.source == "external" and e.step == step]


@pytest.mark.parametrize(
    "words",
    [
        # the reference's order: pairs after one --init, then more options
        ["t", *TIMING, "--init", "every=7", "window=9", "--enabled"],
        # pairs, then an option: --symbol ends the pairs
        ["t", "--path", TIMING[1], "--init", "every=7", "window=9", "--symbol", TIMING[3]],
        # pairs before the callback id: the id (no '=') ends them
        ["--init", "every=7", "window=9", "t", *TIMING],
        # today's repeated --init, and the two mixed
        ["t", *TIMING, "--init", "every=7", "--init", "window=9"],
        ["t", "--init", "every=7", *TIMING, "--init", "window=9"],
        # --init=K=V, then a bare pair
        ["t", *TIMING, "--init=every=7", "window=9"],
    ],
    ids=["reference", "before-symbol", "before-id", "repeated", "mixed", "attached"],
)
def test_several_pairs_after_one_init(run: HotKernel, words: list[str]) -> None:
    result = invoke("--dir", str(run.run_dir.path), "cb", "load", *words)
    assert result.exit_code == 0, result.output
    [entry] = applied(run, 2)
    assert (entry.op, entry.id, entry.decision) == ("load", "t", "applied")
    assert entry.payload["init"] == {"every": 7, "window": 9}
    timing = run.callbacks.get("t")
    assert (timing.every, timing.window) == (7, 9)


def test_param_takes_several_pairs_and_values_may_hold_equals_and_minus(run: HotKernel) -> None:
    # a value holding '=' is quoted, as Hydra's override grammar asks
    result = invoke(
        "--dir", str(run.run_dir.path), "cb", "load", "hb2", "--path", HEARTBEAT.path,
        "--symbol", HEARTBEAT.symbol, "--init", "every=3", "message='a=b'", "--param",
        "every=4", "events=[val_end]",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert queued(run)[0]["init"] == {"every": 3, "message": "a=b"}
    assert queued(run)[0]["params"] == {"every": 4, "events": ["val_end"]}


def test_a_word_that_is_not_a_pair_after_init_is_still_refused(run: HotKernel) -> None:
    result = CliRunner().invoke(
        cli,
        ["--dir", str(run.run_dir.path), "cb", "load", "t", *TIMING, "--init", "every=7", "oops"],
    )
    assert result.exit_code == 1
    assert result.stderr.startswith("hotcb: error: ")
    assert not run.run_dir.commands.exists() or queued(run) == []


@pytest.mark.parametrize(
    ("flag", "enabled"), [("--enabled", True), ("--no-enabled", False), ("--disabled", False)]
)
def test_enabled_no_enabled(run: HotKernel, flag: str, enabled: bool) -> None:
    result = invoke("--dir", str(run.run_dir.path), "cb", "load", "t", *TIMING, flag)
    assert result.exit_code == 0, result.output
    [entry] = applied(run, 2)
    assert entry.decision == "applied"
    assert run.callbacks.status()["t"]["enabled"] is enabled


def test_enabled_and_disabled_together_is_an_error(run: HotKernel) -> None:
    result = CliRunner().invoke(
        cli, ["--dir", str(run.run_dir.path), "cb", "load", "t", *TIMING, "--enabled", "--disabled"]
    )
    assert (result.exit_code, result.stderr) == (
        1,
        "hotcb: error: give --enabled or --disabled, not both\n",
    )


def test_module_is_a_spelling_of_path(run: HotKernel) -> None:
    result = invoke(
        "--dir", str(run.run_dir.path), "load", "hb2", "--module", HEARTBEAT.path,
        "--symbol", HEARTBEAT.symbol, "--enabled", "--init", "every=25", "message=alive",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    [entry] = applied(run, 2)
    assert entry.decision == "applied"
    assert entry.payload["target"] == HEARTBEAT.to_dict()


def test_top_level_shortcuts_queue_what_cb_queues(run: HotKernel) -> None:
    where = ("--dir", str(run.run_dir.path))
    for short, long in [
        (["set", "heartbeat", "every=5"], ["cb", "set", "heartbeat", "every=5"]),
        (["disable", "heartbeat"], ["cb", "disable", "heartbeat"]),
        (["enable", "heartbeat"], ["cb", "enable", "heartbeat"]),
    ]:
        assert invoke(*where, *short).exit_code == 0
        assert invoke(*where, *long).exit_code == 0
    lines = queued(run)
    assert lines[0::2] == lines[1::2]  # each shortcut wrote what its cb command wrote
    assert [e.op for e in applied(run, 2)] == [
        "set",
        "set",
        "disable",
        "disable",
        "enable",
        "enable",
    ]
    assert run.callbacks.status()["heartbeat"]["params"] == {"every": 5}
    assert invoke(*where, "unload", "heartbeat").exit_code == 0
    [entry] = applied(run, 3)
    assert (entry.op, entry.decision) == ("unload", "applied")
    assert "heartbeat" not in run.callbacks.status()


def test_shortcuts_check_the_id_like_cb(run: HotKernel) -> None:
    result = CliRunner().invoke(cli, ["--dir", str(run.run_dir.path), "enable", "hearbeat"])
    assert result.exit_code == 1
    assert "unknown callback id 'hearbeat'" in result.stderr
    assert not run.run_dir.commands.exists() or queued(run) == []


def test_set_without_an_id_says_the_id_comes_first(run: HotKernel) -> None:
    # the reference routes `hotcb set lr=5e-5` to its optimizer module; hotcb has none
    result = CliRunner().invoke(cli, ["--dir", str(run.run_dir.path), "set", "lr=5e-5"])
    assert result.exit_code == 1
    assert result.stderr.startswith("hotcb: error: set: the first argument is the callback id")
    assert "docs/migrating.md" in result.stderr


def test_init_bootstraps_a_run_dir_the_kernel_follows(tmp_path: Path) -> None:
    run_dir = tmp_path / "runs" / "exp1"
    result = invoke("--dir", str(run_dir), "init")
    assert result.exit_code == 0, result.output
    assert f'HotKernel(run_dir="{run_dir}")' in result.output
    assert f"hotcb.run_dir={run_dir}" in result.output
    assert stat.S_IMODE(run_dir.stat().st_mode) == 0o700
    for name in ("hotcb.yaml", "hotcb.commands.jsonl"):
        assert stat.S_IMODE((run_dir / name).stat().st_mode) == 0o600
    assert (run_dir / "hotcb.commands.jsonl").read_bytes() == b""
    # a second init keeps what is there
    (run_dir / "hotcb.commands.jsonl").write_text('{"op": "disable", "id": "x"}\n')
    again = json.loads(invoke("--dir", str(run_dir), "init", "--json").output)
    assert again == {
        "run_dir": str(run_dir),
        "created": [],
        "kept": ["hotcb.yaml", "hotcb.commands.jsonl"],
    }
    assert "disable" in (run_dir / "hotcb.commands.jsonl").read_text()
    # the kernel starts in it, reads the command file and follows hotcb.yaml
    kernel = HotKernel(run_dir=run_dir, poll_interval=0, register=False)
    try:
        kernel.apply({"step": 1}, ["train_step_end"])
        [entry] = [e for e in read_ledger(kernel.run_dir.ledger).entries if e.source == "external"]
        assert (entry.op, entry.decision) == ("disable", "failed")  # no callback x: not phantom
        (run_dir / "hotcb.yaml").write_text(
            "version: 1\ncb:\n  callbacks:\n    hb:\n      target: "
            + json.dumps(HEARTBEAT.to_dict())
            + "\n      init: {every: 2}\n"
        )
        kernel.apply({"step": 2}, ["train_step_end"])
        assert kernel.callbacks.status()["hb"]["params"] == {"every": 2}
    finally:
        kernel.close()


def test_init_needs_a_dir_and_refuses_a_file(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.delenv("HOTCB_RUN_DIR", raising=False)
    result = CliRunner().invoke(cli, ["init"])
    assert result.exit_code == 1
    assert result.stderr.startswith("hotcb: error: which run dir?")
    (tmp_path / "f").write_text("")
    result = CliRunner().invoke(cli, ["init", str(tmp_path / "f")])
    assert result.exit_code == 1
    assert "is not a directory" in result.stderr
    monkeypatch.setenv("HOTCB_RUN_DIR", str(tmp_path / "env"))
    assert CliRunner().invoke(cli, ["init"]).exit_code == 0
    assert (tmp_path / "env" / "hotcb.yaml").is_file()
