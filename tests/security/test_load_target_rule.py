"""The target rule: a load target is a class with handle and set_params, or a marked
factory; anything else is refused for what it is, before anything calls it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from hotcb.hydra.hydrate import HydrationError, kernel_from_config
from hotcb.ledger import read_ledger
from hotcb.stream import CommandStream

REPO = Path(__file__).resolve().parents[2]


def dangerous(marker: Path) -> dict[str, tuple[str, str, dict[str, Any]]]:
    """The issue's five module targets, each with init kwargs that would touch ``marker``."""
    write = f"open({str(marker)!r}, 'w').write('x')"
    return {
        "timeit": ("timeit", "timeit", {"stmt": write, "number": 1}),
        "pipepager": ("pydoc", "pipepager", {"text": "x", "cmd": f"touch {marker}"}),
        "io_open": ("io", "open", {"file": str(marker), "mode": "w"}),
        "cprofile": ("cProfile", "run", {"statement": write}),
        "sys_exit": ("sys", "exit", {}),
    }


def load(cb_id: str, kind: str, path: str, symbol: str, **init: Any) -> dict[str, Any]:
    return {
        "op": "load",
        "id": cb_id,
        "target": {"kind": kind, "path": path, "symbol": symbol},
        "init": init,
    }


def failed_loads(ledger: Path) -> dict[str, str]:
    return {
        e.id or "": e.error or ""
        for e in read_ledger(ledger).entries
        if e.op == "load" and e.decision == "failed"
    }


def test_dangerous_module_targets_are_refused_at_apply_with_no_side_effect(
    kernel_factory: Any, tmp_path: Path
) -> None:
    kernel = kernel_factory()
    stream = CommandStream(kernel.run_dir.commands)
    markers = {name: tmp_path / f"P_{name}" for name in dangerous(tmp_path)}
    for name, marker in markers.items():
        path, symbol, init = dangerous(marker)[name]
        stream.append(load(name, "module", path, symbol, **init))
    kernel.apply({"step": 1}, ["train_step_end"])  # must not raise (sys.exit) nor run anything
    kernel.apply({"step": 2}, ["train_step_end"])
    assert [m.name for m in markers.values() if m.exists()] == []
    errors = failed_loads(kernel.run_dir.ledger)
    assert sorted(errors) == sorted(markers)
    assert "'timeit.timeit' is a function, not a hot callback" in errors["timeit"]
    assert "'pydoc.pipepager' is a function" in errors["pipepager"]
    assert "'io.open' is a built-in function" in errors["io_open"]
    assert "'cProfile.run' is a function" in errors["cprofile"]
    assert "'sys.exit' is a built-in function" in errors["sys_exit"]
    assert all("docs/protocol.md" in e and "it was not called" in e for e in errors.values())
    assert kernel.modules["cb"].status() == {}


def test_class_without_set_params_is_refused_before_its_init_runs(
    kernel_factory: Any, tmp_path: Path
) -> None:
    ran = tmp_path / "init_ran"
    src = tmp_path / "half.py"
    src.write_text(
        "class Base:\n"
        "    def handle(self, event, env): ...\n"
        "    def set_params(self, **kwargs): ...\n"
        "class Child(Base):\n"  # inherited methods count
        "    def __init__(self, id='c'): self.id = id\n"
        "class Half:\n"
        "    def __init__(self, id='half'):\n"
        f"        open({str(ran)!r}, 'w').close()\n"
        "    def handle(self, event, env): ...\n"
    )
    kernel = kernel_factory()
    stream = CommandStream(kernel.run_dir.commands)
    stream.append(load("half", "python_file", str(src), "Half"))
    stream.append(load("child", "python_file", str(src), "Child"))
    kernel.apply({"step": 1}, ["train_step_end"])
    assert not ran.exists()  # refused from the class alone: __init__ never ran
    error = failed_loads(kernel.run_dir.ledger)["half"]
    assert f"'{src}:Half' is a class without set_params()" in error
    assert sorted(kernel.modules["cb"].status()) == ["child"]


FACTORIES = """
from hotcb.modules.cb import hot_factory
from hotcb.modules.cb.callbacks.heartbeat import HeartbeatCallback

@hot_factory
def marked_beat(id, every=1):
    return HeartbeatCallback(id=id, every=every)

def plain_beat(id, every=1):
    return HeartbeatCallback(id=id, every=every)
"""


def test_marked_and_allow_listed_factories_load(
    kernel_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, log_lines: Any
) -> None:
    (tmp_path / "beat_factories.py").write_text(FACTORIES)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "beat_factories", raising=False)

    plain = kernel_factory(tmp_path / "plain")
    stream = CommandStream(plain.run_dir.commands)
    stream.append(load("marked", "module", "beat_factories", "marked_beat", every=2))
    stream.append(load("plain", "module", "beat_factories", "plain_beat", every=2))
    plain.apply({"step": 2, "log": log_lines}, ["train_step_end"])
    assert log_lines.lines == ["[marked] train_step_end step=2"]
    assert (
        "'beat_factories.plain_beat' is a function" in failed_loads(plain.run_dir.ledger)["plain"]
    )

    allowing = kernel_factory(
        tmp_path / "allowing", allowed_factories=["beat_factories.plain_beat"]
    )
    CommandStream(allowing.run_dir.commands).append(
        load("plain", "module", "beat_factories", "plain_beat", every=2)
    )
    allowing.apply({"step": 4, "log": log_lines}, ["train_step_end"])
    assert log_lines.lines[-1] == "[plain] train_step_end step=4"
    state = allowing.status()
    assert state["allowed_factories"] == ["beat_factories.plain_beat"]


def test_hydra_config_with_a_dangerous_target_is_refused_before_any_call(
    tmp_path: Path,
) -> None:
    marker = tmp_path / "P"
    write = f"open('{marker}', 'w').write('x')"
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose(
            config_name="config",
            overrides=[
                "hotcb/callbacks=[heartbeat]",
                f'+hotcb.callbacks.evil={{_target_: timeit.timeit, stmt: "{write}", number: 1}}',
            ],
        )
    assert OmegaConf.select(cfg, "hotcb.callbacks.evil._target_") == "timeit.timeit"

    with pytest.raises(HydrationError, match=r"hotcb\.callbacks\.evil: target 'timeit\.timeit'"):
        kernel_from_config(cfg, run_dir=tmp_path / "strict", register=False)
    assert not marker.exists()

    kernel = kernel_from_config(cfg, run_dir=tmp_path / "lenient", strict=False, register=False)
    try:  # strict=False: the run starts with the other callbacks
        assert sorted(kernel.modules["cb"].status()) == ["heartbeat"]
        assert "is a function" in failed_loads(kernel.run_dir.ledger)["evil"]
    finally:
        kernel.close()
    assert not marker.exists()
