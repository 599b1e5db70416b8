"""Per-step cost of hotcb in a training loop, against the same loop without it.

Two measurements, each the best of ``--repeats`` runs:

1. **idle overhead**: a loop that does nothing but build the env dict and call
   ``HotKernel.apply`` with the ``timing`` and ``heartbeat`` callbacks loaded (no
   commands arriving, output discarded), minus a bare loop. This is the number hotcb
   promises to keep small (goal: <= 1.5 us per step).
2. **training ratio**: a real tiny torch training step (Linear 64->64, SGD) with and
   without hotcb, reported as a ratio.

The script also times a no-op Python function call, and gives the idle overhead in those
units too, so numbers from machines of different speed can be compared. Last, it runs the
idle loop with both callbacks under the watchdog (``_timeout_``, off by default) and reports
the extra cost of one watched call.

Run: ``python benchmarks/step_overhead.py`` (``--json`` for a machine-readable line).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from typing import Any

from hotcb.kernel import HotKernel
from hotcb.ops import CallbackTarget, Op

CALLBACKS = {
    "timing": ("hotcb.modules.cb.callbacks.timing", "TimingCallback", {"every": 1000}),
    "heartbeat": ("hotcb.modules.cb.callbacks.heartbeat", "HeartbeatCallback", {"every": 1000}),
}


def _kernel(run_dir: str, timeout: float | None = None) -> HotKernel:
    kernel = HotKernel(run_dir=run_dir, register=False)
    for cb_id, (path, symbol, init) in CALLBACKS.items():
        if timeout is not None:
            init = {**init, "_timeout_": timeout}
        kernel.submit(
            Op(op="load", id=cb_id, target=CallbackTarget("module", path, symbol), init=init)
        )
    return kernel


def _discard(_: str) -> None:
    pass


def idle_loop(steps: int, kernel: HotKernel | None) -> float:
    """Seconds for ``steps`` iterations; with a kernel, each one builds env and applies."""
    events = ["train_step_end"]
    t0 = time.perf_counter()
    if kernel is None:
        for _ in range(steps):
            pass
    else:
        apply = kernel.apply
        for step in range(steps):
            apply({"step": step, "epoch": 0, "loss": 0.0, "log": _discard}, events)
    return time.perf_counter() - t0


def torch_loop(steps: int, kernel: HotKernel | None) -> float:
    import torch

    torch.manual_seed(0)
    model = torch.nn.Linear(64, 64)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    x = torch.randn(32, 64)
    events = ["train_step_end"]
    t0 = time.perf_counter()
    for step in range(steps):
        opt.zero_grad(set_to_none=True)
        loss = model(x).pow(2).mean()
        loss.backward()
        opt.step()
        if kernel is not None:
            kernel.apply(
                {
                    "step": step,
                    "epoch": 0,
                    "loss": loss,
                    "model": model,
                    "optimizer": opt,
                    "log": _discard,
                },
                events,
            )
    return time.perf_counter() - t0


def _noop(event: str, env: dict[str, Any]) -> None:
    pass


def noop_call_loop(steps: int, kernel: HotKernel | None = None) -> float:
    """Seconds for ``steps`` calls of a no-op function: this machine's Python speed."""
    call, events, env = _noop, "train_step_end", {}
    t0 = time.perf_counter()
    for _ in range(steps):
        call(events, env)
    return time.perf_counter() - t0


def best(fn: Any, steps: int, kernel: HotKernel | None, repeats: int) -> float:
    return min(fn(steps, kernel) for _ in range(repeats))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=1_000_000)
    parser.add_argument("--torch-steps", type=int, default=5_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as run_dir:
        kernel = _kernel(run_dir)
        bare = best(idle_loop, args.steps, None, args.repeats)
        hot = best(idle_loop, args.steps, kernel, args.repeats)
        overhead_us = (hot - bare) / args.steps * 1e6
        call_us = (best(noop_call_loop, args.steps, None, args.repeats) - bare) / args.steps * 1e6
        t_bare = best(torch_loop, args.torch_steps, None, args.repeats)
        t_hot = best(torch_loop, args.torch_steps, kernel, args.repeats)
        kernel.close()
    with tempfile.TemporaryDirectory() as run_dir:
        watched_kernel = _kernel(run_dir, timeout=60.0)
        watched = best(idle_loop, args.steps, watched_kernel, args.repeats)
        watched_kernel.close()
    watched_call_us = (watched - hot) / args.steps / len(CALLBACKS) * 1e6

    result = {
        "idle_overhead_us_per_step": round(overhead_us, 3),
        "idle_bare_us_per_step": round(bare / args.steps * 1e6, 3),
        "idle_hot_us_per_step": round(hot / args.steps * 1e6, 3),
        "noop_call_us": round(call_us, 4),
        "idle_overhead_in_noop_calls": round(overhead_us / call_us, 1) if call_us > 0 else None,
        "torch_bare_us_per_step": round(t_bare / args.torch_steps * 1e6, 2),
        "torch_hot_us_per_step": round(t_hot / args.torch_steps * 1e6, 2),
        "torch_ratio": round(t_hot / t_bare, 4),
        "watched_hot_us_per_step": round(watched / args.steps * 1e6, 3),
        "watched_call_extra_us": round(watched_call_us, 3),
        "watched_call_extra_in_noop_calls": (
            round(watched_call_us / call_us, 1) if call_us > 0 else None
        ),
        "callbacks": sorted(CALLBACKS),
    }
    if args.json:
        print(json.dumps(result))
        return
    print(
        f"idle: bare loop {result['idle_bare_us_per_step']} us/step, with hotcb "
        f"{result['idle_hot_us_per_step']} us/step -> overhead {result['idle_overhead_us_per_step']} "
        f"us/step (goal <= 1.5)"
    )
    print(
        f"calibration: a no-op Python call costs {result['noop_call_us']} us here; the idle "
        f"overhead is {result['idle_overhead_in_noop_calls']} such calls"
    )
    print(
        f"torch Linear(64,64) step: bare {result['torch_bare_us_per_step']} us, with hotcb "
        f"{result['torch_hot_us_per_step']} us -> ratio {result['torch_ratio']}"
    )
    print(
        f"watchdog: with both callbacks watched (_timeout_) {result['watched_hot_us_per_step']} "
        f"us/step -> {result['watched_call_extra_us']} us more per watched call "
        f"({result['watched_call_extra_in_noop_calls']} no-op calls)"
    )


if __name__ == "__main__":
    main()
