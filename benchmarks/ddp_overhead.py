"""Per-step cost of hotcb under DDP, against the same DDP loop without it.

Two processes on the gloo backend (CPU) train a DistributedDataParallel Linear(64, 64)
for ``--steps`` steps, in three configurations, each the best of ``--repeats`` runs:

* ``bare``: DDP alone;
* ``sync_every=1`` and ``sync_every=10``: plus a ``DistributedHotKernel`` with ``timing``
  and ``heartbeat`` loaded, ``apply`` called after every step (no commands arriving; a
  sync point then costs one all_reduce of a single int64).

Reported: microseconds per step, the ratio against ``bare`` (configurations interleaved
across repeats), and the time spent inside ``kernel.apply`` per step, measured directly:
the loop ratio of a 2.5 ms gloo step on a shared CPU is noisy to a few percent, the
in-apply time is not.

Run: ``python benchmarks/ddp_overhead.py`` (``--json`` for a machine-readable line).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import socket
import tempfile
import time
from typing import Any

CALLBACKS = {
    "timing": ("hotcb.modules.cb.callbacks.timing", "TimingCallback", {"every": 10**9}),
    "heartbeat": ("hotcb.modules.cb.callbacks.heartbeat", "HeartbeatCallback", {"every": 10**9}),
}


def _discard(_: str) -> None:
    pass


def _run(model: Any, opt: Any, x: Any, steps: int, kernel: Any) -> tuple[float, float]:
    """(seconds for the loop, seconds inside ``kernel.apply``)."""
    events = ["train_step_end"]
    env: dict[str, Any] = {"epoch": 0, "model": model, "optimizer": opt, "log": _discard}
    clock = time.perf_counter
    in_apply = 0.0
    t0 = clock()
    for step in range(1, steps + 1):
        opt.zero_grad(set_to_none=True)
        loss = model(x).pow(2).mean()
        loss.backward()
        opt.step()
        if kernel is not None:
            env["step"], env["loss"] = step, loss
            t = clock()
            kernel.apply(env, events)
            in_apply += clock() - t
    return clock() - t0, in_apply


def _worker(rank: int, world: int, port: int, args: argparse.Namespace, out: Any) -> None:
    import torch
    import torch.distributed as dist

    from hotcb.distributed import DistributedHotKernel
    from hotcb.ops import CallbackTarget, Op

    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world
    )
    torch.manual_seed(0)
    model = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(64, 64))
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    x = torch.randn(32, 64)
    _run(model, opt, x, 50, None)  # warm up
    loops: dict[str, float] = {}
    applies: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as run_dir:
        kernels: dict[str, Any] = {"bare": None}
        for sync_every in (1, 10):
            kernel = DistributedHotKernel(
                run_dir=f"{run_dir}/s{sync_every}", sync_every=sync_every, register=False
            )
            for cb_id, (path, symbol, init) in CALLBACKS.items():
                target = CallbackTarget("module", path, symbol)
                kernel.submit(Op(op="load", id=cb_id, target=target, init=init))
            kernels[f"sync_every={sync_every}"] = kernel
        for _ in range(args.repeats):  # interleaved, so drift hits every configuration
            for name, kernel in kernels.items():
                dist.barrier()
                loop, in_apply = _run(model, opt, x, args.steps, kernel)
                loops[name] = min(loops.get(name, loop), loop)
                applies[name] = min(applies.get(name, in_apply), in_apply)
        for kernel in kernels.values():
            if kernel is not None:
                kernel.close()
    results = {"loops": loops, "applies": applies}
    if rank == 0:
        out.put(results)
    dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--world-size", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    # the stdlib's processes: the ranks import torch, this process (which only collects
    # the figures) need not
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.SimpleQueue()
    port = _free_port()
    procs = [
        ctx.Process(target=_worker, args=(r, args.world_size, port, args, queue))
        for r in range(args.world_size)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=600)
        if p.exitcode != 0:
            raise SystemExit(f"benchmark worker failed (exit code {p.exitcode})")
    measured = queue.get()
    seconds, applies = measured["loops"], measured["applies"]
    bare = seconds["bare"]
    result: dict[str, Any] = {
        "world_size": args.world_size,
        "steps": args.steps,
        "bare_us_per_step": round(bare / args.steps * 1e6, 1),
        "callbacks": sorted(CALLBACKS),
    }
    for name in ("sync_every=1", "sync_every=10"):
        key = name.replace("=", "_")
        result[f"{key}_us_per_step"] = round(seconds[name] / args.steps * 1e6, 1)
        result[f"{key}_overhead_us_per_step"] = round((seconds[name] - bare) / args.steps * 1e6, 1)
        result[f"{key}_ratio"] = round(seconds[name] / bare, 4)
        result[f"{key}_in_apply_us_per_step"] = round(applies[name] / args.steps * 1e6, 2)
    if args.json:
        print(json.dumps(result))
        return
    print(
        f"DDP, {args.world_size} ranks (gloo, CPU), Linear(64,64), {args.steps} steps, best of {args.repeats}"
    )
    print(f"  bare DDP          {result['bare_us_per_step']:>9.1f} us/step")
    for name in ("sync_every=1", "sync_every=10"):
        key = name.replace("=", "_")
        print(
            f"  hotcb {name:<13}{result[f'{key}_us_per_step']:>9.1f} us/step  "
            f"ratio {result[f'{key}_ratio']:.3f}; "
            f"inside kernel.apply {result[f'{key}_in_apply_us_per_step']:.2f} us/step"
        )


if __name__ == "__main__":
    main()
