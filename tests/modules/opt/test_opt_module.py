"""The opt module inside a real kernel: commands from the command file change the live
optimizer at one safe point, bad ones are failed in the ledger with the optimizer
unchanged, and clip_norm clips at after_backward; an idle module costs ``apply`` nothing
(the Python calls an apply makes are counted: no timing)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
import torch

from hotcb.kernel import HotKernel
from hotcb.ledger import read_ledger
from hotcb.modules.cb.module import CallbackModule
from hotcb.modules.opt import OptModule
from hotcb.ops import Op
from hotcb.state import read_state
from hotcb.stream import CommandStream
from tests.calls import python_calls


def opt_set(**params: Any) -> dict[str, Any]:
    return {"module": "opt", "op": "set", "id": "optimizer", "params": params}


@pytest.fixture
def loop(kernel_factory: Callable[..., HotKernel]) -> Any:
    class Loop:
        w = torch.nn.Parameter(torch.ones(4))
        b = torch.nn.Parameter(torch.ones(1))
        optimizer = torch.optim.AdamW([{"params": [w]}, {"params": [b], "lr": 0.01}], lr=0.1)
        kernel = kernel_factory(modules={"opt": OptModule("optimizer")})
        commands = CommandStream(kernel.run_dir.commands)
        step = 0

        def run(self, *events: str) -> None:
            self.step += 1
            env = {"step": self.step, "optimizer": self.optimizer}
            for event in events or ("train_step_end",):
                self.kernel.apply(env, [event])

        def groups(self) -> list[dict[str, Any]]:
            return [
                {k: v for k, v in g.items() if k != "params"} for g in self.optimizer.param_groups
            ]

        def entries(self) -> list[Any]:
            return [e for e in read_ledger(self.kernel.run_dir.ledger).entries if e.module == "opt"]

    return Loop()


def test_a_set_changes_every_group_at_one_step_and_is_recorded(loop: Any) -> None:
    loop.run()
    loop.commands.append(opt_set(lr=1e-4, weight_decay=0.05, betas=[0.8, 0.95]))
    loop.run()
    assert [(g["lr"], g["weight_decay"], g["betas"]) for g in loop.groups()] == [
        (1e-4, 0.05, (0.8, 0.95))
    ] * 2
    (entry,) = loop.entries()
    assert (entry.decision, entry.step) == ("applied", 2)
    assert entry.payload["groups"] == [{"lr": 1e-4, "weight_decay": 0.05, "betas": [0.8, 0.95]}] * 2
    assert entry.payload["before"][1]["lr"] == 0.01
    state = read_state(loop.kernel.run_dir.state)
    assert state is not None
    assert [g["lr"] for g in state["optimizer"]["groups"]] == [1e-4, 1e-4]
    assert [g["lr"] for g in state["optimizer"]["initial"]] == [0.1, 0.01]
    assert state["optimizer"]["config_key"] == "optimizer"


def test_group_lists_and_lr_scale(loop: Any) -> None:
    loop.commands.append(opt_set(group=1, lr=0.5))
    loop.run()
    assert [g["lr"] for g in loop.groups()] == [0.1, 0.5]
    loop.commands.append(opt_set(lr=[0.2, 0.02]))
    loop.commands.append(opt_set(lr_scale=0.5))
    loop.run()
    assert [g["lr"] for g in loop.groups()] == [0.1, 0.01]


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"lr": -1e-3}, "lr must be a finite number >= 0, got -0.001"),
        ({"group": 2, "lr": 0.1}, "group=2 does not exist: the optimizer has 2 param group(s)"),
        ({"momentum": 0.9}, "param group 0 has no 'momentum'"),
        ({"lr": [0.1]}, "lr: 1 value(s) given, the optimizer has 2 param group(s)"),
        ({"lr": 0.1, "betas": [0.9, 1.5]}, "betas must be two numbers in [0, 1)"),
        ({"clip_norm": 0}, "clip_norm must be a finite number > 0"),
        ({"lr": 0.1, "wd": 0.1}, "opt has no parameter 'wd'"),
    ],
)
def test_a_bad_value_fails_and_leaves_the_optimizer_unchanged(
    loop: Any, params: dict[str, Any], error: str
) -> None:
    loop.run()
    before = copy.deepcopy(loop.groups())
    loop.commands.append(opt_set(**params))
    loop.run()
    (entry,) = loop.entries()
    assert entry.decision == "failed"
    assert error in (entry.error or "")
    assert loop.groups() == before


def test_clip_norm_clips_at_after_backward_only(loop: Any) -> None:
    loop.commands.append(opt_set(group=0, clip_norm=0.5))
    for _ in range(2):
        (loop.w.sum() * 100).backward()
        loop.run("after_backward")
        assert loop.w.grad.norm().item() == pytest.approx(0.5, rel=1e-5)
        loop.optimizer.zero_grad()
    (loop.b * 100).sum().backward()
    loop.run("after_backward")
    assert loop.b.grad.item() == pytest.approx(100)  # group 1 is not clipped
    (loop.w.sum() * 100).backward()
    loop.run("train_step_end")  # not the event: not clipped
    assert loop.w.grad.norm().item() == pytest.approx(200)
    loop.optimizer.zero_grad()
    loop.commands.append(opt_set(clip_norm=None))
    (loop.w.sum() * 100).backward()
    loop.run("after_backward")
    assert loop.w.grad.norm().item() == pytest.approx(200)


def test_without_an_optimizer_in_the_env_the_op_fails_saying_what_to_pass(
    kernel_factory: Callable[..., HotKernel],
) -> None:
    kernel = kernel_factory(modules={"opt": OptModule()})
    CommandStream(kernel.run_dir.commands).append(opt_set(lr=0.1))
    kernel.apply({"step": 1}, ["train_step_end"])
    (entry,) = read_ledger(kernel.run_dir.ledger).entries
    assert entry.decision == "failed" and "env['optimizer']" in (entry.error or "")


def opt_calls(kernel: HotKernel, env: dict[str, Any], event: str) -> list[str]:
    """The opt module's functions that one ``apply`` runs."""
    calls = python_calls(kernel.apply, env, [event])
    return [c.split(":")[1] for c in calls if c.startswith("hotcb.modules.opt")]


def submit_opt(kernel: HotKernel, env: dict[str, Any], **params: Any) -> str:
    return kernel.submit(Op("set", "optimizer", module="opt", params=params), env=env).decision


def test_an_idle_opt_module_is_not_dispatched_until_clip_norm_is_set(
    kernel_factory: Callable[..., HotKernel], tmp_path: Any
) -> None:
    w = torch.nn.Parameter(torch.ones(4))
    optimizer = torch.optim.SGD([w], lr=0.1)
    kernel = kernel_factory(
        modules={"cb": CallbackModule(), "opt": OptModule()}, poll_interval=3600
    )
    callbacks_only = kernel_factory(tmp_path / "bare", poll_interval=3600)
    env: dict[str, Any] = {"step": 1, "optimizer": optimizer}
    kernel.apply(env, ["train_begin"])  # the first apply notes the optimizer as it starts
    callbacks_only.apply(env, ["train_begin"])
    assert kernel.status()["optimizer"]["initial"][0]["lr"] == 0.1

    idle = python_calls(kernel.apply, env, ["after_backward"])
    assert [c for c in idle if "hotcb.modules.opt" in c] == []
    # the same calls as a kernel with the callback module alone: the opt module costs nothing
    assert len(idle) == len(python_calls(callbacks_only.apply, env, ["after_backward"]))

    assert submit_opt(kernel, env, clip_norm=0.5) == "applied"
    (w.sum() * 100).backward()
    assert "OptModule._clip_gradients" in opt_calls(kernel, env, "after_backward")
    assert w.grad is not None and w.grad.norm().item() == pytest.approx(0.5, rel=1e-5)
    assert opt_calls(kernel, env, "train_step_end") == ["OptModule._clip_dispatch"]

    assert submit_opt(kernel, env, clip_norm=None) == "applied"
    assert opt_calls(kernel, env, "after_backward") == []  # nothing to clip: out again


def test_an_optimizer_the_loop_does_not_pass_is_not_looked_for_at_every_step(
    kernel_factory: Callable[..., HotKernel],
) -> None:
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.ones(2))], lr=0.1)
    made: dict[str, Any] = {"optimizer": None}  # e.g. Lightning before configure_optimizers
    asked: list[int] = []

    def resolve_optimizer() -> Any:
        asked.append(env["step"])
        return made["optimizer"]

    env: dict[str, Any] = {"step": 1, "resolve_optimizer": resolve_optimizer}
    kernel = kernel_factory(modules={"opt": OptModule()}, poll_interval=3600)
    kernel.apply(env, ["train_begin"])
    assert asked and set(asked) == {1}  # the first apply looks (its poll, its dispatch)
    for step in range(2, 7):
        env["step"] = step
        kernel.apply(env, ["train_step_end"])
    assert set(asked) == {1}  # not at every step
    made["optimizer"] = optimizer
    assert submit_opt(kernel, env, lr=0.05) == "applied"  # an op looks, and finds it
    assert optimizer.param_groups[0]["lr"] == 0.05
    assert kernel.status()["optimizer"]["optimizer"] == "SGD"
