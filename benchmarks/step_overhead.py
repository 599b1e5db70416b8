"""Per-step cost of hotcb in a training loop, in no-op Python calls and microseconds.

**The figure hotcb promises to keep small** is the idle cost of ``HotKernel.apply``
with the ``timing`` and ``heartbeat`` callbacks loaded (no commands arriving, output
discarded), in units of *one no-op Python function call measured in the same process*:
machines differ 2-3x in Python speed, the count does not. **Goal: at most 25 no-op
calls.** The floor is about four: the ``apply`` call, one dispatch call, the two
callback calls and a clock check.

Loops timed (each the best of ``--repeats`` rounds of ``--steps`` iterations, the loops
interleaved within a round so a busy machine slows them alike, garbage collection off
during timing as :mod:`timeit` does):

* ``empty``: ``for step in range(steps): pass``;
* ``env``: builds the same env dict the hot loop passes (``step``, ``epoch``, ``loss``,
  ``log``) and nothing else;
* ``hot``: builds that env dict and calls ``kernel.apply(env, events)``;
* ``noop``: calls a no-op function ``f(event, env)`` (the unit).

Reported:

* ``apply_us`` = hot - env: what ``apply`` itself costs (**the goal is on this one**,
  ``apply_in_noop_calls``); the env dict is the training loop's data, built whether or
  not hotcb is there;
* ``apply_and_env_us`` = hot - empty: ``apply`` plus building the env dict
  (``apply_and_env_in_noop_calls``), for comparison with figures measured that way;
* ``noop_call_us`` = noop - empty;
* ``torch_ratio``: a real tiny torch training step (Linear 64->64, SGD, building the same
  env dict) with and without ``apply``;
* ``watched_call_extra_in_noop_calls``: the extra cost of one call under the watchdog
  (``_timeout_``, off by default), from a ``watched`` loop with both callbacks watched;
* ``optloss_extra_in_noop_calls``: what the ``opt`` and ``loss`` kernel modules add to
  idle ``apply`` (no ``clip_norm``, no ramp running; the goal is at most one no-op call),
  from an ``optloss`` loop whose kernel runs both beside the callbacks and whose env
  also holds ``optimizer`` (a torch SGD) and ``loss_state``, less an ``env_optloss`` loop
  that builds that env (``--no-optloss`` skips it, and the torch import it needs).

Run: ``python benchmarks/step_overhead.py`` (``--json`` for a machine-readable line).
"""

from __future__ import annotations

import argparse
import gc
import json
import tempfile
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from hotcb.kernel import HotKernel
from hotcb.ops import CallbackTarget, Op

CALLBACKS = {
    "timing": ("hotcb.modules.cb.callbacks.timing", "TimingCallback", {"every": 10**9}),
    "heartbeat": ("hotcb.modules.cb.callbacks.heartbeat", "HeartbeatCallback", {"every": 10**9}),
}

#: The clock of the timed loops: CPU time of this thread, so other processes on a busy
#: machine do not inflate the figures (preemption is not counted).
clock = time.thread_time

#: The goal for ``apply_in_noop_calls``.
GOAL_NOOP_CALLS = 25


def _kernel(
    run_dir: str, timeout: float | None = None, modules: dict[str, Any] | None = None
) -> HotKernel:
    kernel = HotKernel(run_dir=run_dir, register=False, modules=modules)
    for cb_id, (path, symbol, init) in CALLBACKS.items():
        if timeout is not None:
            init = {**init, "_timeout_": timeout}
        kernel.submit(
            Op(op="load", id=cb_id, target=CallbackTarget("module", path, symbol), init=init)
        )
    return kernel


def _discard(_: str) -> None:
    pass


def _noop(event: str, env: dict[str, Any]) -> None:
    pass


def empty_loop(steps: int) -> float:
    """Seconds for ``steps`` iterations of an empty loop."""
    t0 = clock()
    for _ in range(steps):
        pass
    return clock() - t0


def env_loop(steps: int) -> float:
    """Seconds for ``steps`` iterations that build the env dict the hot loop passes."""
    t0 = clock()
    for step in range(steps):
        env = {"step": step, "epoch": 0, "loss": 0.0, "log": _discard}  # noqa: F841
    return clock() - t0


def hot_loop(steps: int, kernel: HotKernel) -> float:
    """Seconds for ``steps`` iterations that build the env dict and call ``apply``."""
    apply, events = kernel.apply, ["train_step_end"]
    t0 = clock()
    for step in range(steps):
        apply({"step": step, "epoch": 0, "loss": 0.0, "log": _discard}, events)
    return clock() - t0


def optloss_env(step: int, optimizer: Any, loss_state: dict[str, Any]) -> dict[str, Any]:
    """The env of an ``optloss`` loop: the hot loop's, with the optimizer and loss state."""
    return {
        "step": step,
        "epoch": 0,
        "loss": 0.0,
        "log": _discard,
        "optimizer": optimizer,
        "loss_state": loss_state,
    }


def env_optloss_loop(steps: int, optimizer: Any, loss_state: dict[str, Any]) -> float:
    """Seconds for ``steps`` iterations that build the env of an ``optloss`` loop."""
    t0 = clock()
    for step in range(steps):
        env = {  # noqa: F841
            "step": step,
            "epoch": 0,
            "loss": 0.0,
            "log": _discard,
            "optimizer": optimizer,
            "loss_state": loss_state,
        }
    return clock() - t0


def optloss_loop(
    steps: int, kernel: HotKernel, optimizer: Any, loss_state: dict[str, Any]
) -> float:
    """Seconds for ``steps`` iterations that build that env and call ``apply`` of a kernel
    running ``cb``, ``opt`` and ``loss``."""
    apply, events = kernel.apply, ["train_step_end"]
    t0 = clock()
    for step in range(steps):
        apply(
            {
                "step": step,
                "epoch": 0,
                "loss": 0.0,
                "log": _discard,
                "optimizer": optimizer,
                "loss_state": loss_state,
            },
            events,
        )
    return clock() - t0


def _optloss_loops(run_dir: str) -> tuple[dict[str, Callable[[int], float]], HotKernel]:
    """The ``env_optloss`` and ``optloss`` loops, and the kernel the second one drives (its
    opt and loss modules idle: the optimizer and loss state seen at a first apply)."""
    import torch

    from hotcb.modules.cb.module import CallbackModule
    from hotcb.modules.loss import LossModule
    from hotcb.modules.opt import OptModule

    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(4))], lr=0.1)
    loss_state: dict[str, Any] = {"weights": {"distill": 0.5}}
    modules: dict[str, Any] = {"cb": CallbackModule(), "opt": OptModule(), "loss": LossModule()}
    kernel = _kernel(run_dir, modules=modules)
    kernel.apply(optloss_env(0, optimizer, loss_state), ["train_begin"])
    loops = {
        "env_optloss": partial(env_optloss_loop, optimizer=optimizer, loss_state=loss_state),
        "optloss": partial(optloss_loop, kernel=kernel, optimizer=optimizer, loss_state=loss_state),
    }
    return loops, kernel


def noop_call_loop(steps: int) -> float:
    """Seconds for ``steps`` calls of a no-op function: this machine's Python speed."""
    call, event, env = _noop, "train_step_end", {}
    t0 = clock()
    for _ in range(steps):
        call(event, env)
    return clock() - t0


def torch_loop(steps: int, kernel: HotKernel | None) -> float:
    """Seconds (this thread's CPU time) for ``steps`` tiny training steps; torch runs on
    this thread only (``set_num_threads(1)``: the step is too small to gain from more),
    so a busy machine does not make the ratio a coin toss."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        model = torch.nn.Linear(64, 64)
        opt = torch.optim.SGD(model.parameters(), lr=1e-3)
        x = torch.randn(32, 64)
        events = ["train_step_end"]
        t0 = clock()
        for step in range(steps):
            opt.zero_grad(set_to_none=True)
            loss = model(x).pow(2).mean()
            loss.backward()
            opt.step()
            env = {"step": step, "epoch": 0, "loss": loss, "model": model, "optimizer": opt}
            if kernel is not None:
                kernel.apply(env, events)
        return clock() - t0
    finally:
        torch.set_num_threads(threads)


def best_interleaved(
    loops: dict[str, Callable[[int], float]], steps: int, repeats: int
) -> dict[str, float]:
    """The best time of each loop over ``repeats`` rounds (each round runs every loop)."""
    best = dict.fromkeys(loops, float("inf"))
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeats):
            for name, loop in loops.items():
                best[name] = min(best[name], loop(steps))
    finally:
        if gc_was_enabled:
            gc.enable()
    return best


def measure(steps: int, torch_steps: int, repeats: int, optloss: bool = True) -> dict[str, Any]:
    """All figures, as the ``--json`` line reports them (``optloss``: also the ``opt`` and
    ``loss`` modules' idle cost)."""
    with (
        tempfile.TemporaryDirectory() as run_dir,
        tempfile.TemporaryDirectory() as watched_dir,
        tempfile.TemporaryDirectory() as optloss_dir,
    ):
        kernel = _kernel(run_dir)
        watched_kernel = _kernel(watched_dir, timeout=60.0)
        loops: dict[str, Callable[[int], float]] = {
            "empty": empty_loop,
            "env": env_loop,
            "hot": partial(hot_loop, kernel=kernel),
            "noop": noop_call_loop,
            "watched": partial(hot_loop, kernel=watched_kernel),
        }
        optloss_kernel = None
        if optloss:
            more, optloss_kernel = _optloss_loops(optloss_dir)
            loops.update(more)
        t = best_interleaved(loops, steps, repeats)
        watched_kernel.close()
        if optloss_kernel is not None:
            optloss_kernel.close()
        torch_t = {"bare": float("inf"), "hot": float("inf")}
        if torch_steps:
            torch_t = best_interleaved(
                {
                    "bare": partial(torch_loop, kernel=None),
                    "hot": partial(torch_loop, kernel=kernel),
                },
                torch_steps,
                repeats,
            )
        kernel.close()

    def us(seconds: float, n: int = steps) -> float:
        return seconds / n * 1e6

    apply_us = us(t["hot"] - t["env"])
    apply_and_env_us = us(t["hot"] - t["empty"])
    noop_us = us(t["noop"] - t["empty"])
    watched_call_us = us(t["watched"] - t["hot"]) / len(CALLBACKS)
    optloss_figures: dict[str, Any] = {}
    if optloss:
        optloss_apply_us = us(t["optloss"] - t["env_optloss"])
        optloss_figures = {
            "optloss_apply_in_noop_calls": round(optloss_apply_us / noop_us, 1),
            "optloss_extra_in_noop_calls": round((optloss_apply_us - apply_us) / noop_us, 1),
            "optloss_apply_us": round(optloss_apply_us, 4),
            "env_optloss_us_per_step": round(us(t["env_optloss"]), 4),
            "optloss_hot_us_per_step": round(us(t["optloss"]), 4),
        }
    return {
        "apply_in_noop_calls": round(apply_us / noop_us, 1),
        "apply_and_env_in_noop_calls": round(apply_and_env_us / noop_us, 1),
        "goal_noop_calls": GOAL_NOOP_CALLS,
        "apply_us": round(apply_us, 4),
        "apply_and_env_us": round(apply_and_env_us, 4),
        "noop_call_us": round(noop_us, 4),
        "empty_us_per_step": round(us(t["empty"]), 4),
        "env_us_per_step": round(us(t["env"]), 4),
        "hot_us_per_step": round(us(t["hot"]), 4),
        "torch_bare_us_per_step": round(us(torch_t["bare"], torch_steps or 1), 2),
        "torch_hot_us_per_step": round(us(torch_t["hot"], torch_steps or 1), 2),
        "torch_ratio": round(torch_t["hot"] / torch_t["bare"], 4) if torch_steps else None,
        "watched_hot_us_per_step": round(us(t["watched"]), 4),
        "watched_call_extra_us": round(watched_call_us, 4),
        "watched_call_extra_in_noop_calls": round(watched_call_us / noop_us, 1),
        **optloss_figures,
        "steps": steps,
        "repeats": repeats,
        "callbacks": sorted(CALLBACKS),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=200_000, help="iterations per timed loop")
    parser.add_argument("--torch-steps", type=int, default=2_000, help="0 skips the torch loop")
    parser.add_argument("--repeats", type=int, default=15, help="rounds; the best is reported")
    parser.add_argument(
        "--no-optloss",
        dest="optloss",
        action="store_false",
        help="skip the loop with the opt and loss modules on (it imports torch)",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    r = measure(args.steps, args.torch_steps, args.repeats, args.optloss)
    if args.json:
        print(json.dumps(r))
        return
    print(
        f"idle apply (timing + heartbeat): {r['apply_in_noop_calls']} no-op calls "
        f"({r['apply_us']} us; goal <= {GOAL_NOOP_CALLS} no-op calls)"
    )
    print(
        f"idle apply + building the env dict: {r['apply_and_env_in_noop_calls']} no-op calls "
        f"({r['apply_and_env_us']} us)"
    )
    print(f"a no-op Python call costs {r['noop_call_us']} us here")
    if args.torch_steps:
        print(
            f"torch Linear(64,64) step: bare {r['torch_bare_us_per_step']} us, with hotcb "
            f"{r['torch_hot_us_per_step']} us -> ratio {r['torch_ratio']}"
        )
    print(
        f"watchdog: one watched call (_timeout_) costs {r['watched_call_extra_in_noop_calls']} "
        f"no-op calls more ({r['watched_call_extra_us']} us)"
    )
    if args.optloss:
        print(
            f"idle apply with the opt and loss modules on too: "
            f"{r['optloss_apply_in_noop_calls']} no-op calls, "
            f"{r['optloss_extra_in_noop_calls']} more than callbacks only (goal <= 1)"
        )


if __name__ == "__main__":
    main()
