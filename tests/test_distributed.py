"""DistributedHotKernel in one process (gloo, world size 1): same files, same behaviour as
HotKernel, plus the world in the state; kernel_from_config picks it only for a real group.
The two-rank behaviour is tested under torchrun in tests/distributed/."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

dist = pytest.importorskip("torch.distributed")

from hotcb.distributed import DistributedHotKernel, distributed_world  # noqa: E402
from hotcb.hydra.hydrate import kernel_from_config, ops_from_config  # noqa: E402
from hotcb.kernel import HotKernel  # noqa: E402
from hotcb.modules.cb.module import CallbackModule  # noqa: E402
from hotcb.modules.opt import OptModule  # noqa: E402
from hotcb.stream import CommandStream  # noqa: E402
from tests.calls import python_calls  # noqa: E402
from tests.helpers import HEARTBEAT_CLASS  # noqa: E402

HEARTBEAT = {"_target_": HEARTBEAT_CLASS, "every": 4}


@pytest.fixture
def group(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A one-process gloo group that meets through a file (no port to collide on)."""
    store = tmp_path_factory.mktemp("gloo") / "store"
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def test_no_group_means_no_world() -> None:
    assert distributed_world() is None


def test_commands_wait_for_the_next_sync_point(tmp_path: Path, group: None, log_lines: Any) -> None:
    kernel = DistributedHotKernel(run_dir=tmp_path, sync_every=5, register=False)
    (op,) = ops_from_config({"hotcb": {"callbacks": {"hb": HEARTBEAT}}})
    assert kernel.submit(op).decision == "applied"
    env: dict[str, Any] = {"log": log_lines}
    for step in range(1, 21):
        env["step"] = step
        if step == 6:
            CommandStream(tmp_path / "hotcb.commands.jsonl").append(
                {"op": "set", "id": "hb", "params": {"every": 3}}
            )
        kernel.apply(env, ["train_step_end"])
    kernel.close()
    # written at step 6, applied at the sync point of step 10, not before
    assert log_lines.matching("[hb]") == [
        "[hb] train_step_end step=4",
        "[hb] train_step_end step=8",
        "[hb] train_step_end step=12",
        "[hb] train_step_end step=15",
        "[hb] train_step_end step=18",
    ]
    state = json.loads((tmp_path / "hotcb.state.json").read_text())
    assert state["world_size"] == 1 and state["sync_every"] == 5


def test_the_final_state_has_the_last_step_of_a_fresh_dict_loop(
    tmp_path: Path, group: None
) -> None:
    kernel = DistributedHotKernel(run_dir=tmp_path, sync_every=5, register=False)
    for step in range(1, 24):  # the last sync point is step 20
        kernel.apply({"step": step}, ["train_step_end"])
    kernel.close()
    assert json.loads((tmp_path / "hotcb.state.json").read_text())["step"] == 23


def test_kernel_from_config_uses_a_plain_kernel_for_one_process(
    tmp_path: Path, group: None
) -> None:
    cfg = {"hotcb": {"callbacks": {"hb": HEARTBEAT}, "sync_every": 2}}
    kernel = kernel_from_config(cfg, run_dir=tmp_path, register=False)
    try:
        assert isinstance(kernel, HotKernel)  # world size 1: nothing to sync
    finally:
        kernel.close()


def test_sync_every_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="sync_every must be a positive"):
        DistributedHotKernel(run_dir=tmp_path, sync_every=0)


def test_an_idle_opt_module_joins_the_dispatch_when_clip_norm_is_set_at_a_sync_point(
    tmp_path: Path, group: None
) -> None:
    import torch

    w = torch.nn.Parameter(torch.ones(4))
    env: dict[str, Any] = {"step": 1, "optimizer": torch.optim.SGD([w], lr=0.1)}
    modules = {"cb": CallbackModule(), "opt": OptModule()}
    kernel = DistributedHotKernel(run_dir=tmp_path, sync_every=5, register=False, modules=modules)

    def opt_calls(step: int) -> list[str]:
        env["step"] = step
        (w.sum() * 100).backward()
        calls = python_calls(kernel.apply, env, ["after_backward"])
        return [c.split(":")[1] for c in calls if c.startswith("hotcb.modules.opt")]

    kernel.apply(env, ["train_begin"])
    assert opt_calls(2) == []  # idle: not dispatched
    CommandStream(tmp_path / "hotcb.commands.jsonl").append(
        {"module": "opt", "op": "set", "id": "optimizer", "params": {"clip_norm": 0.5}}
    )
    w.grad = None
    assert "OptModule._clip_gradients" not in opt_calls(3)  # not a sync point yet
    assert w.grad is not None and w.grad.norm().item() == pytest.approx(200)
    w.grad = None
    assert "OptModule._clip_gradients" in opt_calls(5)  # applied at the sync point, then clipped
    assert w.grad is not None and w.grad.norm().item() == pytest.approx(0.5, rel=1e-5)
    kernel.close()
    state = json.loads((tmp_path / "hotcb.state.json").read_text())
    assert state["optimizer"]["groups"][0]["clip_norm"] == 0.5
