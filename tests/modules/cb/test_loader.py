"""The loader refuses what Hydra refuses, and says precisely why a load failed."""

from __future__ import annotations

from pathlib import Path

import pytest

from hotcb.modules.cb.loader import LoadError, is_blocked_target, resolve, sha256_bytes
from hotcb.ops import CallbackTarget


@pytest.mark.parametrize(
    ("path", "symbol"),
    [
        ("os", "system"),
        ("subprocess", "Popen"),
        ("subprocess", "run"),
        ("builtins", "exec"),
        ("builtins", "eval"),
        ("posix", "system"),
        ("shutil", "rmtree"),
        ("pty", "spawn"),
    ],
)
def test_dangerous_targets_are_refused(path: str, symbol: str) -> None:
    with pytest.raises(LoadError, match="refused"):
        resolve(CallbackTarget("module", path, symbol))


def test_re_exported_dangerous_callable_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "sneaky.py"
    src.write_text("from os import system as Callback\n")
    with pytest.raises(LoadError, match=r"'(posix|os)\.system' is refused"):
        resolve(CallbackTarget("python_file", str(src), "Callback"))


def test_safe_targets_pass() -> None:
    assert not is_blocked_target("hotcb.modules.cb.callbacks.timing.TimingCallback")
    assert not is_blocked_target("torch.nn.Linear")


def test_captured_source_must_match_its_hash(tmp_path: Path) -> None:
    body = b"class A:\n    def handle(self, e, env): ...\n    def set_params(self, **k): ...\n"
    captured = tmp_path / f"{sha256_bytes(body)}.py"
    captured.write_bytes(body)
    assert resolve(CallbackTarget("python_file", str(captured), "A")).sha256 == captured.stem
    captured.write_bytes(body + b"# tampered\n")
    with pytest.raises(LoadError, match="modified after capture"):
        resolve(CallbackTarget("python_file", str(captured), "A"))


def test_error_while_executing_a_file_names_the_line(tmp_path: Path) -> None:
    src = tmp_path / "bad.py"
    src.write_text("x = 1\ny = 1 / 0\n")
    with pytest.raises(
        LoadError, match=r"bad.py line 2: running the file failed: ZeroDivision"
    ) as info:
        resolve(CallbackTarget("python_file", str(src), "X"))
    assert (info.value.path, info.value.line) == (str(src), 2)


def test_missing_symbol_lists_the_classes_there(tmp_path: Path) -> None:
    src = tmp_path / "cbs.py"
    src.write_text("class Alpha: pass\nclass Beta: pass\n")
    with pytest.raises(LoadError, match=r"no attribute 'Gamma' \(classes there: Alpha, Beta\)"):
        resolve(CallbackTarget("python_file", str(src), "Gamma"))
