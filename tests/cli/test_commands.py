"""The `hotcb` command surface, through click's CliRunner, against real run-dir files."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from hotcb.cli import cli
from hotcb.kernel import HotKernel
from hotcb.ops import Op
from tests.helpers import HEARTBEAT


@pytest.fixture
def run(tmp_path: Path) -> Any:
    """A run dir whose kernel has heartbeat loaded (closed again after the test)."""
    kernel = HotKernel(run_dir=tmp_path / "run", poll_interval=0, register=False)
    kernel.submit(Op(op="load", id="heartbeat", target=HEARTBEAT, init={"every": 10}))
    kernel.apply({"step": 1}, ["train_step_end"])
    yield kernel
    kernel.close()


def invoke(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def queued(kernel: HotKernel) -> list[dict[str, Any]]:
    return [json.loads(line) for line in kernel.run_dir.commands.read_text().splitlines()]


def test_set_writes_one_validated_command(run: HotKernel) -> None:
    result = invoke(
        "--dir",
        str(run.run_dir.path),
        "cb",
        "set",
        "heartbeat",
        "every=5",
        "lr=3e-4",
        "on=true",
        "tags=[a,b]",
        "--force",  # heartbeat declares no lr/on/tags: without --force nothing is queued
    )
    assert result.exit_code == 0, result.output
    assert "queued set heartbeat" in result.output
    assert queued(run) == [
        {
            "module": "cb",
            "op": "set",
            "id": "heartbeat",
            "params": {"every": 5, "lr": 0.0003, "on": True, "tags": ["a", "b"]},
        }
    ]
    run.apply({"step": 2}, ["train_step_end"])  # heartbeat has no lr/on/tags: the op fails whole
    assert run.modules["cb"].status()["heartbeat"]["params"] == {"every": 10}
    assert (
        invoke("--dir", str(run.run_dir.path), "cb", "set", "heartbeat", "every=5").exit_code == 0
    )
    run.apply({"step": 3}, ["train_step_end"])
    assert run.modules["cb"].status()["heartbeat"]["params"] == {"every": 5}


def test_set_params_alias(run: HotKernel) -> None:
    assert (
        invoke("--dir", str(run.run_dir.path), "cb", "set_params", "heartbeat", "every=7").exit_code
        == 0
    )
    assert queued(run)[0]["op"] == "set"


@pytest.mark.parametrize("op", ["set", "enable", "disable", "unload"])
def test_unknown_id_is_refused_up_front_naming_the_known_ones(run: HotKernel, op: str) -> None:
    args = ["--dir", str(run.run_dir.path), "cb", op, "ghost"] + (
        ["every=1"] if op == "set" else []
    )
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        "hotcb: error: unknown callback id 'ghost'; known ids: heartbeat (queue anyway with --force)"
    )
    assert not run.run_dir.commands.exists()
    forced = CliRunner().invoke(cli, [*args, "--force"])
    assert forced.exit_code == 0 and queued(run)[0]["id"] == "ghost"


def test_load_from_module_and_from_file(run: HotKernel, tmp_path: Path) -> None:
    viz = tmp_path / "viz.py"
    viz.write_text(
        "class FeatureViz:\n    def __init__(self, id='v', every=1): self.id = id\n"
        "    def handle(self, e, env): pass\n    def set_params(self, **k): pass\n"
    )
    d = str(run.run_dir.path)
    assert (
        invoke(
            "--dir",
            d,
            "cb",
            "load",
            "timing",
            "--path",
            "hotcb.modules.cb.callbacks.timing",
            "--symbol",
            "TimingCallback",
        ).exit_code
        == 0
    )
    result = invoke(
        "--dir",
        d,
        "cb",
        "load",
        "feat_viz",
        "--file",
        str(viz),
        "--symbol",
        "FeatureViz",
        "--init",
        "every=50",
        "--disabled",
    )
    assert result.exit_code == 0, result.output
    first, second = queued(run)
    assert first["target"] == {
        "kind": "module",
        "path": "hotcb.modules.cb.callbacks.timing",
        "symbol": "TimingCallback",
    }
    assert second == {
        "module": "cb",
        "op": "load",
        "id": "feat_viz",
        "init": {"every": 50},
        "enabled": False,
        "target": {"kind": "python_file", "path": str(viz), "symbol": "FeatureViz"},
    }
    run.apply({"step": 2}, ["train_step_end"])
    status = run.modules["cb"].status()
    assert status["feat_viz"]["enabled"] is False and status["timing"]["enabled"] is True


def test_load_of_a_file_with_a_syntax_error_names_file_and_line(
    run: HotKernel, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("class Viz:\n    def handle(self)\n")
    result = CliRunner().invoke(
        cli,
        ["--dir", str(run.run_dir.path), "cb", "load", "v", "--file", str(bad), "--symbol", "Viz"],
    )
    assert result.exit_code == 1
    assert result.stderr.startswith(f"hotcb: error: {bad} line 2: syntax error")
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["cb", "load", "x", "--symbol", "X"], "exactly one of --path MODULE or --file"),
        (
            ["cb", "load", "x", "--file", "/nope/x.py", "--symbol", "X"],
            "/nope/x.py: file not found",
        ),
        (["cb", "load", "x", "--path", "subprocess", "--symbol", "Popen"], "is refused"),
        (["cb", "load", "../x", "--path", "a.b", "--symbol", "X"], "invalid callback id '../x'"),
        (["cb", "set", "heartbeat"], "nothing to set"),
        (["cb", "set", "heartbeat", "every"], "expected name=value"),
        (["cb", "frob", "heartbeat"], "No such command 'frob'"),
        (["cb", "set", "heartbeat", "every=1", "--bogus"], "No such option '--bogus'"),
    ],
)
def test_user_errors_exit_1_with_one_line(run: HotKernel, args: list[str], fragment: str) -> None:
    result = CliRunner().invoke(cli, ["--dir", str(run.run_dir.path), *args])
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hotcb: error:") and fragment in lines[0], lines


def test_dir_without_state_is_refused(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["--dir", str(tmp_path), "cb", "disable", "timing"])
    assert result.exit_code == 1 and "has no hotcb.state.json" in result.stderr


def test_status_json_has_the_documented_shape(run: HotKernel) -> None:
    out = json.loads(invoke("--dir", str(run.run_dir.path), "status", "--json").output)
    assert set(out) == {"run_dir", "live", "step", "callbacks", "stuck", "costs", "updated"}
    assert out["stuck"] == []  # no callback call is past its _timeout_
    assert out["live"] is True and out["run_dir"] == str(run.run_dir.path)
    assert out["callbacks"]["heartbeat"] == run.modules["cb"].status()["heartbeat"]


def test_status_table_and_pending_count(run: HotKernel) -> None:
    invoke("--dir", str(run.run_dir.path), "cb", "disable", "heartbeat")
    text = invoke("--dir", str(run.run_dir.path), "status").output
    assert "1 command(s) queued, not applied yet" in text
    assert "heartbeat" in text and "every=10" in text
    run.apply({"step": 2}, ["train_step_end"])
    text = invoke("--dir", str(run.run_dir.path), "status").output
    assert "queued" not in text and " no " in text


def test_log_shows_ledger_and_json(run: HotKernel) -> None:
    invoke("--dir", str(run.run_dir.path), "cb", "set", "heartbeat", "every=3")
    run.apply({"step": 4}, ["train_step_end"])
    lines = [
        json.loads(x)
        for x in invoke("--dir", str(run.run_dir.path), "log", "--json").output.splitlines()
    ]
    assert [(e["op"], e["source"], e["decision"]) for e in lines] == [
        ("load", "config", "applied"),
        ("set", "external", "applied"),
    ]
    assert lines[1]["step"] == 4 and lines[1]["payload"]["params"] == {"every": 3}
    text = invoke("--dir", str(run.run_dir.path), "log", "-n", "1").output
    assert "set" in text and "every=3" in text and "load" not in text


def test_log_tolerates_a_truncated_last_line(run: HotKernel) -> None:
    with open(run.run_dir.ledger, "a") as fh:
        fh.write('{"seq": 99, "op": "se')
    result = CliRunner().invoke(cli, ["--dir", str(run.run_dir.path), "log"])
    assert result.exit_code == 0
    assert "truncated" in result.stderr and "load" in result.stdout


def test_every_command_has_help() -> None:
    for args in (
        ["--help"],
        ["cb", "--help"],
        ["cb", "load", "--help"],
        ["cb", "set", "--help"],
        ["cb", "enable", "--help"],
        ["cb", "disable", "--help"],
        ["cb", "unload", "--help"],
        ["status", "--help"],
        ["log", "--help"],
        ["export-config", "--help"],
        ["runs", "--help"],
    ):
        result = invoke(*args)
        assert result.exit_code == 0 and "Usage:" in result.output, args


@pytest.mark.subprocess
def test_cli_never_imports_torch(run: HotKernel) -> None:
    import subprocess

    code = (
        "import sys\nfrom click.testing import CliRunner\nfrom hotcb.cli import cli\n"
        f"r = CliRunner().invoke(cli, ['--dir', {str(run.run_dir.path)!r}, 'cb', 'set', 'heartbeat', 'every=2', '--no-wait'])\n"
        "assert r.exit_code == 0, r.output\n"
        "print(sorted(m for m in ('torch', 'hydra', 'omegaconf') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--dir", "{run}", "--sweep", "{run}", "status"], "not both"),
        (["--sweep", "{run}", "cb", "disable", "heartbeat"], "not a Hydra sweep dir"),
        (["--sweep", "{run}/nope", "status"], "does not exist"),
        (["--sweep", "latest", "status"], "no sweep found"),
    ],
)
def test_sweep_user_errors_exit_1_with_one_line(
    run: HotKernel, args: list[str], fragment: str
) -> None:
    argv = [a.format(run=run.run_dir.path) for a in args]
    result = CliRunner().invoke(cli, argv)
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], lines


def sweep_job(run: HotKernel, sweep: Path, name: str, **state: Any) -> Path:
    """A copy of ``run`` as job ``name`` of ``sweep`` (live: the same pid, not closed),
    its state changed by ``state``."""
    import shutil

    if not (sweep / "multirun.yaml").exists():
        sweep.mkdir(exist_ok=True)
        (sweep / "multirun.yaml").write_text("hydra: {}\n")
    job = shutil.copytree(run.run_dir.path, sweep / name)
    if state:
        old = json.loads((job / "hotcb.state.json").read_text())
        (job / "hotcb.state.json").write_text(json.dumps({**old, **state}))
    return job


def test_sweep_sends_to_live_jobs_that_know_the_id(run: HotKernel, tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    sweep_job(run, sweep, "0")
    sweep_job(run, sweep, "1", closed=True)
    sweep_job(run, sweep, "10", callbacks={})

    out = json.loads(
        invoke("--sweep", str(sweep), "cb", "set", "heartbeat", "every=3", "--json").output
    )
    assert [(j["job"], j["queued"], j["reason"]) for j in out["jobs"]] == [
        ("0", True, None),
        ("1", False, "not live"),
        ("10", False, "unknown id 'heartbeat'"),
    ]
    line = json.loads((sweep / "0" / "hotcb.commands.jsonl").read_text().splitlines()[-1])
    assert line["op"] == "set" and line["params"] == {"every": 3}
    assert (
        not (sweep / "10" / "hotcb.commands.jsonl").exists()
        or "every" not in (sweep / "10" / "hotcb.commands.jsonl").read_text()
    )


def test_sweep_skips_a_frozen_job(run: HotKernel, tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    sweep_job(run, sweep, "0")
    frozen = sweep_job(run, sweep, "1", freeze="prod")
    shown = invoke("--sweep", str(sweep), "cb", "set", "heartbeat", "every=3", "--no-wait").output
    assert shown.splitlines()[1:] == [
        "  job 0  queued: --no-wait: not waiting for the run's answer",
        "  job 1  skipped (frozen: freeze prod)",
        "sent to 1 of 2 job(s)",
    ]
    assert not (frozen / "hotcb.commands.jsonl").exists()
