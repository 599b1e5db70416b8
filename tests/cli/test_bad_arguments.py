"""Bad text on the `hotcb` command line: one error line, exit 1, nothing queued or written.

Real `hotcb` processes with raw argv bytes: a byte that is not UTF-8 arrives in Python
as a lone surrogate (surrogateescape), which no JSON line can carry.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from hotcb.kernel import HotKernel
from hotcb.ops import CallbackTarget, Op

pytestmark = [
    pytest.mark.subprocess,
    pytest.mark.skipif(
        not shutil.which("hotcb"), reason="the hotcb console script is not installed"
    ),
]

HEARTBEAT = CallbackTarget("module", "hotcb.modules.cb.callbacks.heartbeat", "HeartbeatCallback")


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """A run dir (closed run) with heartbeat loaded live (so an export has a change)."""
    with HotKernel(run_dir=tmp_path / "run", poll_interval=0, register=False) as kernel:
        kernel.submit(Op(op="load", id="heartbeat", target=HEARTBEAT), source="external")
    return tmp_path / "run"


def hotcb(*args: str | bytes) -> subprocess.CompletedProcess[bytes]:
    argv = [os.fsencode(a) for a in (shutil.which("hotcb") or "", *args)]
    return subprocess.run(argv, capture_output=True, timeout=60)


def assert_one_error_line(result: subprocess.CompletedProcess[bytes], fragment: str) -> None:
    stderr = result.stderr.decode("utf-8", "backslashreplace")
    assert result.returncode == 1, stderr
    assert len(stderr.splitlines()) == 1 and stderr.startswith("hotcb: error: "), stderr
    assert fragment in stderr, stderr
    assert result.stdout == b""


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["cb", "set", "heartbeat", b"msg=caf\xe9"], "msg contains a lone surrogate (\\udce9, the"),
        (["cb", "load", "x", "--path", b"caf\xe9", "--symbol", "X"], "\\udce9"),
        (["cb", "set", "heartbeat", "every=" + "1" * 5000], "a number has over 4300 digits"),
        (["cb", "set", "heartbeat", "x=" + "[" * 1000], "nested too deeply"),
        (["cb", "set", "heartbeat", "x=" + "[" * 40 + "]" * 40], "nested more than 32 levels"),
    ],
    # (values follow Hydra's grammar, which has no escapes that make a surrogate: "\ud800"
    # is those six characters, see tests/test_overrides.py)
    ids=["byte", "path-byte", "long-int", "deep-yaml", "deep-value"],
)
def test_bad_text_is_one_error_line_and_nothing_queued(
    run_dir: Path, args: list[str | bytes], fragment: str
) -> None:
    assert_one_error_line(hotcb("--dir", str(run_dir), *args), fragment)
    assert not (run_dir / "hotcb.commands.jsonl").exists()


def test_a_file_whose_name_is_not_utf8_is_refused_up_front(run_dir: Path, tmp_path: Path) -> None:
    source = os.fsencode(tmp_path) + b"/caf\xe9.py"
    with open(source, "w") as fh:
        fh.write(
            "class X:\n    def handle(self, e, env): pass\n    def set_params(self, **k): pass\n"
        )
    result = hotcb("--dir", str(run_dir), "cb", "load", "x", "--file", source, "--symbol", "X")
    assert_one_error_line(result, "target.path contains a lone surrogate (\\udce9")
    assert not (run_dir / "hotcb.commands.jsonl").exists()


def test_an_id_ending_in_a_newline_is_refused(run_dir: Path) -> None:
    result = hotcb("--dir", str(run_dir), "cb", "set", "heartbeat\n", "every=3", "--force")
    assert_one_error_line(result, "invalid callback id 'heartbeat\\n'")
    assert not (run_dir / "hotcb.commands.jsonl").exists()


def test_export_name_ending_in_a_newline_writes_nothing(run_dir: Path, tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    (run_dir / ".hydra").mkdir()
    (run_dir / ".hydra" / "hydra.yaml").write_text(
        "hydra:\n  runtime:\n    config_sources:\n"
        f"    - {{path: {conf}, schema: file, provider: main}}\n"
    )
    result = hotcb("--dir", str(run_dir), "export-config", "--name", "mine\n")
    assert_one_error_line(result, "invalid name 'mine\\n'")
    assert not conf.exists()
    ok = hotcb("--dir", str(run_dir), "export-config", "--name", "mine")
    assert ok.returncode == 0, ok.stderr
    assert [p.name for p in (conf / "hotcb" / "callbacks").iterdir()] == ["mine.yaml"]
