"""The loss module inside a real kernel: a command changes the mapping the loss function
reads at one safe point (a Hydra config node works as the mapping), refuses keys the
mapping does not have with nothing changed, and runs ramps step by step; it is in the
kernel's dispatch only while a ramp runs (the Python calls an apply makes are counted)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
from omegaconf import OmegaConf

from hotcb.kernel import HotKernel
from hotcb.ledger import read_ledger
from hotcb.modules.loss import LossModule
from hotcb.ops import Op
from hotcb.state import read_state
from hotcb.stream import CommandStream
from tests.calls import python_calls


def loss_set(**params: Any) -> dict[str, Any]:
    return {"module": "loss", "op": "set", "id": "loss_state", "params": params}


class Loop:
    def __init__(self, kernel: HotKernel, state: Any, total_steps: int | None = 100) -> None:
        self.kernel, self.state, self.step = kernel, state, 0
        self.commands = CommandStream(kernel.run_dir.commands)
        self.total = total_steps

    def run(self, steps: int = 1) -> list[float]:
        """Run ``steps`` steps; the weight ``depth`` the loss read at each."""
        seen = []
        for _ in range(steps):
            self.step += 1
            env: dict[str, Any] = {"step": self.step, "loss_state": self.state}
            if self.total is not None:
                env["total_steps"] = self.total
            self.kernel.apply(env, ["after_backward"])
            seen.append(float(self.state["weights"]["depth"]))
            self.kernel.apply(env, ["train_step_end"])
        return seen

    def entries(self) -> list[Any]:
        return [e for e in read_ledger(self.kernel.run_dir.ledger).entries if e.module == "loss"]


@pytest.fixture
def make(kernel_factory: Callable[..., HotKernel]) -> Callable[..., Loop]:
    def build(total_steps: int | None = 100) -> Loop:
        node = OmegaConf.create(
            {"loss": {"weights": {"distill": 0.5, "depth": 1.0}, "terms": {"aux": True}}}
        )
        OmegaConf.set_struct(node, True)  # as Hydra hands it over
        kernel = kernel_factory(modules={"loss": LossModule("loss")})
        return Loop(kernel, node.loss, total_steps)

    return build


def test_weights_and_terms_change_in_the_config_node(make: Callable[..., Loop]) -> None:
    loop = make()
    loop.run()
    loop.commands.append(loss_set(distill_w=0.2, terms={"aux": False}))
    loop.run()
    assert loop.state.weights.distill == 0.2 and loop.state.terms.aux is False
    (entry,) = loop.entries()
    assert (entry.decision, entry.step) == ("applied", 2)
    assert entry.payload["set"] == {"weights.distill": 0.2, "terms.aux": False}
    state = read_state(loop.kernel.run_dir.state)
    assert state is not None
    assert state["loss"]["values"]["weights"]["distill"] == 0.2
    assert state["loss"]["initial"]["weights"]["distill"] == 0.5


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"distil_w": 0.2}, "loss state has no 'weights.distil' (weights has: depth, distill)"),
        ({"terms": {"aux": 0.3}}, "terms.aux is true/false, got 0.3"),
        ({"distill_w": True}, "weights.distill is a number, got True"),
        ({"distill_w": 0.1, "terms": {"extra": True}}, "loss state has no 'terms.extra'"),
        ({"ramps": {"nope": {"end": 1.0, "steps": 5}}}, "ramps.nope ramps weights.nope"),
        ({"ramps": {"depth": {"end": 1.0}}}, "needs warmup_frac"),
        ({"ramps": {"depth": {"end": 1.0, "steps": 5, "type": "cubic"}}}, "type must be one of"),
    ],
)
def test_a_bad_change_fails_and_changes_nothing(
    make: Callable[..., Loop], params: dict[str, Any], error: str
) -> None:
    loop = make()
    before = OmegaConf.to_container(loop.state)
    loop.commands.append(loss_set(**params))
    loop.run()
    (entry,) = loop.entries()
    assert entry.decision == "failed" and error in (entry.error or "")
    assert OmegaConf.to_container(loop.state) == before


def test_a_linear_ramp_over_a_fraction_of_the_run(make: Callable[..., Loop]) -> None:
    loop = make(total_steps=100)
    loop.run(9)
    loop.commands.append(
        loss_set(ramps={"depth": {"type": "linear", "warmup_frac": 0.1, "end": 2.0}})
    )
    seen = loop.run(15)  # applied at step 10: 10 steps (0.1 of 100) from 1.0 to 2.0
    assert seen == pytest.approx([1.0 + 0.1 * i for i in range(11)] + [2.0] * 4)
    state = read_state(loop.kernel.run_dir.state)
    assert state is not None and state["loss"]["ramps"] == {}  # done


def test_a_cosine_ramp_in_steps_and_a_hand_set_weight_ends_it(make: Callable[..., Loop]) -> None:
    loop = make(total_steps=None)
    loop.commands.append(loss_set(ramps={"depth": {"type": "cosine", "steps": 4, "end": 0.0}}))
    seen = loop.run(3)
    assert seen == pytest.approx([1.0, (1 + math.cos(math.pi / 4)) / 2, 0.5])
    loop.commands.append(loss_set(depth_w=0.7))
    assert loop.run(3) == [0.7, 0.7, 0.7]


def test_warmup_frac_needs_the_runs_total_steps(make: Callable[..., Loop]) -> None:
    loop = make(total_steps=None)
    loop.commands.append(loss_set(ramps={"depth": {"warmup_frac": 0.5, "end": 2.0}}))
    assert loop.run(2) == [1.0, 1.0]
    (entry,) = loop.entries()
    assert entry.decision == "failed" and "total_steps" in (entry.error or "")


def test_the_loss_module_is_dispatched_only_while_a_ramp_runs(
    kernel_factory: Callable[..., HotKernel],
) -> None:
    state: dict[str, Any] = {"weights": {"depth": 1.0, "aux": 1.0}}
    kernel = kernel_factory(modules={"loss": LossModule()}, poll_interval=3600)
    env: dict[str, Any] = {"step": 1, "loss_state": state}

    def loss_calls(step: int) -> list[str]:
        env["step"] = step
        calls = python_calls(kernel.apply, env, ["train_step_end"])
        return [c.split(":")[1] for c in calls if c.startswith("hotcb.modules.loss")]

    def submit(**params: Any) -> str:
        op = Op("set", "loss_state", module="loss", params=params)
        return kernel.submit(op, env=env).decision

    kernel.apply(env, ["train_begin"])
    assert kernel.status()["loss"]["initial"] == state  # noted at the first apply
    assert loss_calls(2) == []  # idle: not dispatched
    assert submit(ramps={"depth": {"type": "linear", "steps": 2, "end": 2.0}}) == "applied"
    assert "LossModule._advance" in loss_calls(3)
    assert state["weights"]["depth"] == 1.5
    assert "LossModule._advance" in loss_calls(4)  # the ramp reaches its end: it is done
    assert state["weights"]["depth"] == 2.0 and kernel.status()["loss"]["ramps"] == {}
    assert loss_calls(5) == []  # the last ramp done takes the module out

    assert submit(ramps={"aux": {"type": "linear", "steps": 10, "end": 0.0}}) == "applied"
    assert "LossModule._advance" in loss_calls(6)
    assert submit(aux_w=0.3) == "applied"  # a weight set by hand ends its ramp
    assert loss_calls(7) == [] and state["weights"]["aux"] == 0.3
