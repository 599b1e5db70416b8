"""From composed config to the initial callback set, recorded at step 0."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from omegaconf import OmegaConf

from hotcb.hydra.hydrate import HydrationError, kernel_from_config, ops_from_config, parse_target
from hotcb.kernel import HotKernel
from hotcb.ledger import read_ledger
from tests.helpers import HEARTBEAT_CLASS


def cfg(callbacks: dict[str, Any], **hotcb: Any) -> Any:
    return OmegaConf.create({"hotcb": {"callbacks": callbacks, **hotcb}})


def test_target_mapping() -> None:
    assert parse_target(HEARTBEAT_CLASS).to_dict() == {
        "kind": "module",
        "path": "hotcb.modules.cb.callbacks.heartbeat",
        "symbol": "HeartbeatCallback",
    }
    assert parse_target("tools/viz.py:Viz", base_dir="/w").to_dict() == {
        "kind": "python_file",
        "path": "/w/tools/viz.py",
        "symbol": "Viz",
    }
    with pytest.raises(HydrationError, match=r"path/to/file\.py:Symbol"):
        parse_target("tools/viz.txt:Viz")


def test_repo_config_hydrates_with_plain_values(composer: Any, tmp_path: Path) -> None:
    composed = OmegaConf.create(
        composer(
            [
                "hotcb/callbacks=[timing,heartbeat]",
                "+hotcb.callbacks.heartbeat.events=[train_step_end,val_end]",
            ]
        )
    )
    kernel = HotKernel.from_config(composed, run_dir=tmp_path / "run", register=False)
    try:
        status = kernel.modules["cb"].status()
        assert status["heartbeat"]["params"] == {
            "every": 100,
            "events": ["train_step_end", "val_end"],
        }
        assert type(status["heartbeat"]["params"]["events"]) is list  # no ListConfig reached it
        hb = kernel.modules["cb"].controller.get("heartbeat")
        assert hb is not None and hb.events == frozenset({"train_step_end", "val_end"})  # type: ignore[attr-defined]
        ledger = read_ledger(kernel.run_dir.ledger).entries
        assert [(e.op, e.id, e.source, e.step) for e in ledger] == [
            ("load", "timing", "config", 0),
            ("load", "heartbeat", "config", 0),
        ]
    finally:
        kernel.close()


def test_enabled_flag_keeps_it_loaded_but_disabled(tmp_path: Path) -> None:
    kernel = kernel_from_config(
        cfg({"hb": {"_target_": HEARTBEAT_CLASS, "_enabled_": False}}),
        run_dir=tmp_path,
        register=False,
    )
    assert kernel.modules["cb"].status()["hb"]["enabled"] is False
    kernel.close()


def test_unknown_constructor_key_names_callback_key_and_accepted(tmp_path: Path) -> None:
    with pytest.raises(HydrationError) as info:
        kernel_from_config(
            cfg({"hb": {"_target_": HEARTBEAT_CLASS, "evry": 5}}), run_dir=tmp_path, register=False
        )
    assert str(info.value) == (
        "hotcb.callbacks.hb: callback 'hb': HeartbeatCallback() does not accept "
        "'evry'; it accepts: id, every, events, message"
    )
    entry = read_ledger(tmp_path / "hotcb.applied.jsonl").entries[-1]
    assert entry.decision == "failed" and entry.source == "config"


def test_non_strict_goes_on_without_the_bad_one(tmp_path: Path) -> None:
    kernel = kernel_from_config(
        cfg({"hb": {"_target_": HEARTBEAT_CLASS}, "bad": {"_target_": "no.such.Cb"}}),
        run_dir=tmp_path,
        register=False,
        strict=False,
    )
    assert list(kernel.modules["cb"].status()) == ["hb"]
    kernel.close()


@pytest.mark.parametrize(
    ("node", "fragment"),
    [
        ({"every": 5}, "missing _target_"),
        ({"_target_": HEARTBEAT_CLASS, "_enabled_": "no"}, "_enabled_ must be"),
        ({"_target_": HEARTBEAT_CLASS, "_partial_": True}, "_partial_ not supported"),
    ],
)
def test_bad_nodes_are_named(node: dict[str, Any], fragment: str) -> None:
    with pytest.raises(HydrationError, match=fragment) as info:
        ops_from_config(cfg({"x": node}))
    assert str(info.value).startswith("hotcb.callbacks.x:")


def test_kernel_settings_come_from_the_hotcb_node(tmp_path: Path) -> None:
    kernel = kernel_from_config(
        cfg({}, poll_interval=0.5, auto_disable_on_error=False), run_dir=tmp_path, register=False
    )
    assert kernel.poll_interval == 0.5
    assert kernel.modules["cb"].controller.auto_disable_on_error is False  # type: ignore[attr-defined]
    kernel.close()


def test_without_hydra_a_run_dir_is_required() -> None:
    with pytest.raises(HydrationError, match="no run_dir"):
        kernel_from_config(cfg({}))


def test_resumed_run_does_not_reapply_the_config(tmp_path: Path) -> None:
    first = kernel_from_config(
        cfg({"hb": {"_target_": HEARTBEAT_CLASS, "every": 3}}), run_dir=tmp_path, register=False
    )
    first.close()
    second = kernel_from_config(
        cfg({"hb": {"_target_": HEARTBEAT_CLASS, "every": 3}}), run_dir=tmp_path, register=False
    )
    assert second.resumed and second.modules["cb"].status()["hb"]["params"] == {"every": 3}
    loads = [e for e in read_ledger(tmp_path / "hotcb.applied.jsonl").entries if e.op == "load"]
    assert len(loads) == 1
    second.close()


ARM = """
class Arm:
    def __init__(self, id="arm", every=10):
        self.id, self.every, self.armed = id, every, False
    def handle(self, event, env):
        pass
    def set_params(self, **kw):
        self.every = kw.get("every", self.every)
        self.armed = kw.get("armed", self.armed)
"""


def test_set_passes_hot_params_through_set_params_right_after_construction(
    tmp_path: Path,
) -> None:
    (tmp_path / "arm.py").write_text(ARM)
    node = {"_target_": f"{tmp_path}/arm.py:Arm", "every": 5, "_set_": {"armed": True}}
    kernel = kernel_from_config(cfg({"arm": node}), run_dir=tmp_path / "run", register=False)
    armed = kernel.callbacks.get("arm")
    assert (armed.every, armed.armed) == (5, True)  # type: ignore[union-attr]
    status = kernel.callbacks.status()["arm"]
    assert (status["params"], status["init_keys"]) == ({"every": 5, "armed": True}, ["every"])
    kernel.close()
    (load,) = read_ledger(tmp_path / "run" / "hotcb.applied.jsonl").entries
    assert (load.source, load.step, load.decision) == ("config", 0, "applied")
    assert (load.payload["init"], load.payload["params"]) == ({"every": 5}, {"armed": True})
    assert load.payload["init_keys"] == ["every"]


def test_set_must_be_a_mapping() -> None:
    with pytest.raises(HydrationError) as info:
        ops_from_config(cfg({"hb": {"_target_": HEARTBEAT_CLASS, "_set_": 5}}))
    assert str(info.value) == (
        "hotcb.callbacks.hb: _set_ must be a mapping of name: value (hot params passed to "
        "set_params right after construction), got 5"
    )
