"""`hotcb cb load` applies the target rule up front, from the source alone: a target that
provably is not a callback class or a marked factory is refused (exit 1, one line, nothing
queued); one it cannot judge without running it is queued for the run to check."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from hotcb.cli import cli
from hotcb.ledger import read_ledger

HOTCB = shutil.which("hotcb") or ""

CALLBACK = "    def handle(self, event, env): ...\n    def set_params(self, **kwargs): ...\n"
SOURCES = {
    "plain.py": "def make(id):\n    return None\nRATE = 0.5\nimport json\n",
    "half.py": "class Half:\n    def handle(self, event, env): ...\n",
    "chain/__init__.py": "from .impl import Cb\n",
    "chain/impl.py": "from timeit import timeit as Cb\n",
    "marked.py": "from hotcb.modules.cb import hot_factory\n\n@hot_factory\ndef make(id):\n    ...\n",
    "base.py": f"class Base:\n{CALLBACK}",
    "child.py": "from base import Base\n\nclass Child(Base):\n    pass\n",
    "dynamic.py": "Cb = type('Cb', (), {})\n",
}


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project dir holding the sources above, as the current directory."""
    root = tmp_path / "app"
    for name, text in SOURCES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    monkeypatch.chdir(root)
    return root


def cb_load(run_dir: Path, *args: str) -> Any:
    return CliRunner().invoke(cli, ["--dir", str(run_dir), "cb", "load", "x", *args])


@pytest.mark.parametrize(
    ("args", "refusal"),
    [
        (["--path", "plain", "--symbol", "make"], "target 'plain.make' is a function, not a hot"),
        (["--path", "plain", "--symbol", "RATE"], "target 'plain.RATE' is a float"),
        (["--path", "plain", "--symbol", "json"], "target 'plain.json' is a module"),
        (["--path", "plain", "--symbol", "Nope"], "module 'plain' has no attribute 'Nope'"),
        (["--path", "half", "--symbol", "Half"], "is a class without set_params()"),
        (["--path", "chain", "--symbol", "Cb"], "target 'chain.Cb' is a function"),
        (["--path", "hotcb.modules", "--symbol", "cb"], "is a module"),
        (["--path", "math", "--symbol", "sqrt"], "is a name in the compiled module 'math'"),
        (["--file", "plain.py", "--symbol", "make"], "plain.py:make' is a function"),
        (["--file", "chain/impl.py", "--symbol", "Cb"], "impl.py:Cb' is a function"),
    ],
)
def test_provably_bad_targets_are_refused_up_front(
    app: Path, kernel_factory: Any, args: list[str], refusal: str
) -> None:
    kernel = kernel_factory()
    result = cb_load(kernel.run_dir.path, *args)
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("hotcb: error: ") and refusal in result.stderr
    assert result.stderr.rstrip().endswith("nothing was queued")
    assert len(result.stderr.strip().splitlines()) == 1
    assert not kernel.run_dir.commands.exists()


def test_good_marked_and_undecidable_targets_are_queued(app: Path, kernel_factory: Any) -> None:
    kernel = kernel_factory(allowed_factories=["plain.make"])
    run_dir = kernel.run_dir.path
    for args in (
        ["--path", "child", "--symbol", "Child"],  # methods from a base in another module
        ["--path", "marked", "--symbol", "make"],
        ["--path", "plain", "--symbol", "make"],  # this run allow-lists it
        ["--file", "marked.py", "--symbol", "make"],
        ["--path", "hotcb.modules.cb.callbacks.timing", "--symbol", "TimingCallback"],
    ):
        result = cb_load(run_dir, *args)
        assert result.exit_code == 0, result.output
        assert "not checked here" not in result.output
    result = cb_load(run_dir, "--path", "dynamic", "--symbol", "Cb")
    assert result.exit_code == 0, result.output
    assert "not checked here" in result.output and "the run checks it" in result.output
    assert len(kernel.run_dir.commands.read_text().splitlines()) == 6


# -- a real `hotcb` process beside a real training process ---------------------------------

TRAINER = """
import sys, time
from hotcb.kernel import HotKernel
kernel = HotKernel(run_dir=sys.argv[1], poll_interval=0.01, register=False)
print("ready", flush=True)
step = 0
try:
    while True:
        step += 1
        kernel.apply({"step": step}, ["train_step_end"])
        time.sleep(0.002)
finally:
    kernel.close()
"""


@pytest.fixture
def trainer(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-c", TRAINER, str(run_dir)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    yield proc, run_dir
    proc.kill()
    proc.wait(10)


def hotcb(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [HOTCB, *args], capture_output=True, text=True, timeout=60, cwd=cwd, env=os.environ.copy()
    )


def step_of(run_dir: Path) -> int:
    return int(json.loads((run_dir / "hotcb.state.json").read_text())["step"] or 0)


@pytest.mark.subprocess
@pytest.mark.skipif(not HOTCB, reason="the hotcb console script is not installed")
def test_dangerous_targets_through_the_cli_beside_a_training_process(
    trainer: tuple[subprocess.Popen[str], Path], tmp_path: Path
) -> None:
    proc, run_dir = trainer
    marker = tmp_path / "P"
    # quoted, as Hydra's value grammar takes a string that holds parentheses and commas
    write = shlex.quote(f"""'open("{marker}", "w").write("x")'""")
    loads = {  # the five, each set up to touch the marker if it ever runs
        "timeit": f"--path timeit --symbol timeit --init stmt={write} --init number=1",
        "pipepager": f"--path pydoc --symbol pipepager --init text=x --init 'cmd=touch {marker}'",
        "io_open": f"--path io --symbol open --init file={marker} --init mode=w",
        "cprofile": f"--path cProfile --symbol run --init statement={write}",
        "sys_exit": "--path sys --symbol exit",
    }
    commands = run_dir / "hotcb.commands.jsonl"
    for cb_id, args in loads.items():  # refused up front: exit 1, one line, nothing queued
        result = hotcb("--dir", str(run_dir), "cb", "load", cb_id, *shlex.split(args))
        assert result.returncode == 1, result.stdout
        assert result.stderr.startswith("hotcb: error: target ")
        assert len(result.stderr.strip().splitlines()) == 1
        assert not commands.exists()
    for cb_id, args in loads.items():  # --force queues it: the run refuses it at apply
        result = hotcb("--dir", str(run_dir), "cb", "load", cb_id, *shlex.split(args), "--force")
        assert result.returncode == 1, result.stderr  # and the CLI says so: the run's answer
        assert " failed at step " in result.stderr and "not a hot callback" in result.stderr
    deadline = time.monotonic() + 30
    failed: dict[str, str] = {}
    while len(failed) < len(loads) and time.monotonic() < deadline:
        time.sleep(0.05)
        failed = {
            e.id or "": e.error or ""
            for e in read_ledger(run_dir / "hotcb.applied.jsonl").entries
            if e.op == "load" and e.decision == "failed"
        }
    assert sorted(failed) == sorted(loads)
    assert all("not a hot callback" in error for error in failed.values())
    assert not marker.exists()
    step = step_of(run_dir)
    deadline = time.monotonic() + 10  # the state reports the step about once a second
    while step_of(run_dir) <= step and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None and step_of(run_dir) > step  # still training


WRAPPER = """
import atexit, sys
atexit.register(lambda: print("torch imported:", "torch" in sys.modules, file=sys.stderr))
from hotcb.cli import main
main(sys.argv[1:])
"""


@pytest.mark.subprocess
def test_the_cli_never_imports_the_target(tmp_path: Path, kernel_factory: Any) -> None:
    app = tmp_path / "app"
    app.mkdir()
    imported = tmp_path / "imported"
    (app / "heavy.py").write_text(
        f"import torch\nopen({str(imported)!r}, 'w').close()\n\nclass Viz:\n{CALLBACK}"
        "\nclass Half:\n    def handle(self, event, env): ...\n"
    )
    run_dir = str(kernel_factory().run_dir.path)
    for symbol, code in (("Viz", 0), ("Half", 1)):
        load = ["cb", "load", "v", "--path", "heavy", "--symbol", symbol, "--no-wait"]
        result = subprocess.run(
            [sys.executable, "-c", WRAPPER, "--dir", run_dir, *load],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=app,
        )
        assert result.returncode == code, result.stderr
        assert "torch imported: False" in result.stderr
    assert not imported.exists()
