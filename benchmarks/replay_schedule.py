"""What deterministic replay costs with a big schedule (default 10,000 entries).

Measured, each the best of ``--repeats`` rounds:

* ``ledger_s``: a real kernel applying ``--entries`` ``set`` commands, one per step (only to
  produce the run to export; not a figure of replay);
* ``export_s``: :func:`hotcb.hydra.export.export_config` with ``schedule=True`` on that run
  (reads the ledger, writes ``conf/hotcb/callbacks/<name>.yaml`` and
  ``conf/hotcb/schedule/<name>.yaml``); ``export_cli_s``: the same through a real
  ``hotcb export-config --schedule`` process (its start-up included);
* ``compose_s``: Hydra's compose API composing the app's config with
  ``+hotcb/schedule=<name>`` (the option names its entries file, which Hydra does not read;
  with ``--inline`` the entries are in the option, as before hotcb.schedule_file, and Hydra
  reads the 10,000-entry YAML);
* ``start_s``: :func:`hotcb.launch.kernel_from_config` on that config: the kernel, the
  initial set, the schedule read (its entries file too), written to the run dir and loaded; ``start_s`` +
  ``compose_s`` is the time to start a replayed run (before the first step);
* ``idle_apply_pending_in_noop_calls``: idle ``apply`` (timing + heartbeat, as
  ``step_overhead.py``) while all the entries are pending (the next one far ahead), in
  no-op calls; ``idle_apply_in_noop_calls`` the same kernel without a schedule.

Run: ``python benchmarks/replay_schedule.py`` (``--json`` for one machine-readable line).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from step_overhead import (
    _kernel,
    best_interleaved,
    empty_loop,
    env_loop,
    hot_loop,
    noop_call_loop,
)

from hotcb.hydra.export import export_config
from hotcb.kernel import HotKernel
from hotcb.launch import kernel_from_config
from hotcb.ops import CallbackTarget, Op
from hotcb.schedule import Schedule
from hotcb.stream import CommandStream

HEARTBEAT = CallbackTarget("module", "hotcb.modules.cb.callbacks.heartbeat", "HeartbeatCallback")


def make_run(root: Path, entries: int) -> Path:
    """A run of an app in ``root`` whose ledger holds ``entries`` live ``set`` ops."""
    conf = root / "app" / "conf"
    conf.mkdir(parents=True)
    (conf / "config.yaml").write_text(
        "hotcb:\n  callbacks:\n    heartbeat:\n"
        f"      _target_: {HEARTBEAT.path}.{HEARTBEAT.symbol}\n"
        "      every: 1000000\n"
    )
    run_dir = root / "app" / "outputs" / "a"
    kernel = HotKernel(run_dir=run_dir, poll_interval=0, register=False)
    kernel.submit(Op(op="load", id="heartbeat", target=HEARTBEAT, init={"every": 10**6}))
    stream = CommandStream(kernel.run_dir.commands)
    env: dict[str, Any] = {"log": lambda m: None}
    for step in range(1, entries + 1):  # one live op per step
        stream.append({"op": "set", "id": "heartbeat", "params": {"every": 10**6 + step}})
        env["step"] = step
        kernel.apply(env, ["train_step_end"])
    kernel.close()
    one_per_step(run_dir, entries)
    launch = {
        "argv": [str(root / "app" / "train.py")],
        "cwd": str(root / "app"),
        "config_name": "config",
        "config_dir": str(conf),
        "overrides": [],
    }
    (run_dir / "hotcb.launch.json").write_text(json.dumps(launch))
    return run_dir


def one_per_step(run_dir: Path, entries: int) -> None:
    """Check the run is what it should be: ``entries`` ops at ``entries`` distinct steps."""
    from hotcb.ledger import read_ledger

    steps = {
        e.step
        for e in read_ledger(run_dir / "hotcb.applied.jsonl").entries
        if e.source == "external"
    }
    if len(steps) != entries:
        raise SystemExit(f"the run applied its ops at {len(steps)} steps, not {entries}")


def measure(entries: int, repeats: int, steps: int, inline: bool = False) -> dict[str, Any]:
    if inline:  # every entry in the option itself (the format of small schedules)
        import hotcb.hydra.export
        import hotcb.replay

        hotcb.hydra.export.INLINE_MAX = hotcb.replay.INLINE_MAX = entries  # type: ignore[misc]
    root = Path(tempfile.mkdtemp(prefix="hotcb-replay-bench-"))
    try:
        t0 = time.perf_counter()
        run_dir = make_run(root, entries)
        ledger_s = time.perf_counter() - t0
        conf = root / "app" / "conf"
        export_s = cli_s = float("inf")
        for i in range(repeats):
            t0 = time.perf_counter()
            export_config(run_dir, name="bench", schedule=True, force=True)
            export_s = min(export_s, time.perf_counter() - t0)
            t0 = time.perf_counter()
            subprocess.run(
                [
                    shutil.which("hotcb") or "hotcb",
                    "--dir",
                    str(run_dir),
                    "export-config",
                    "--schedule",
                    "--name",
                    f"cli{i}",
                ],
                check=True,
                capture_output=True,
            )
            cli_s = min(cli_s, time.perf_counter() - t0)
        from hydra import compose, initialize_config_dir
        from hydra.core.hydra_config import HydraConfig

        compose_s = start_s = float("inf")
        count = 0
        for i in range(repeats):
            t0 = time.perf_counter()
            with initialize_config_dir(config_dir=str(conf), version_base=None):
                cfg = compose(
                    "config", overrides=["+hotcb/schedule=bench"], return_hydra_config=True
                )
            compose_s = min(compose_s, time.perf_counter() - t0)
            t0 = time.perf_counter()
            HydraConfig.instance().set_config(cfg)  # as @hydra.main: config:// resolves
            kernel = kernel_from_config(cfg, run_dir=root / f"b{i}", register=False)
            start_s = min(start_s, time.perf_counter() - t0)
            count = len(kernel.schedule.pending)  # type: ignore[attr-defined]
            kernel.close()
        with tempfile.TemporaryDirectory() as plain_dir, tempfile.TemporaryDirectory() as sd:
            plain = _kernel(plain_dir)
            pending = _kernel(sd)
            far = Schedule.from_config(
                {
                    f"k{n}": {"step": 10**9 + n, "op": "disable", "id": "timing"}
                    for n in range(entries)
                }
            )
            pending.load_schedule(far)
            t = best_interleaved(
                {
                    "empty": empty_loop,
                    "env": env_loop,
                    "plain": partial(hot_loop, kernel=plain),
                    "pending": partial(hot_loop, kernel=pending),
                    "noop": noop_call_loop,
                },
                steps,
                repeats * 3,
            )
            plain.close()
            pending.close()
        noop = t["noop"] - t["empty"]
        return {
            "entries": entries,
            "inline": inline,
            "scheduled_in_replay": count,
            "ledger_s": round(ledger_s, 3),
            "export_s": round(export_s, 3),
            "export_cli_s": round(cli_s, 3),
            "compose_s": round(compose_s, 3),
            "start_s": round(start_s, 3),
            "idle_apply_in_noop_calls": round((t["plain"] - t["env"]) / noop, 1),
            "idle_apply_pending_in_noop_calls": round((t["pending"] - t["env"]) / noop, 1),
        }
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=200_000)
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--inline", action="store_true", help="entries in the option, not in its entries file"
    )
    args = parser.parse_args()
    os.environ.setdefault("HOTCB_HOME", tempfile.mkdtemp(prefix="hotcb-home-"))
    result = measure(args.entries, args.repeats, args.steps, inline=args.inline)
    if args.json:
        print(json.dumps(result))
        return
    where = "inline in the option" if args.inline else "in the option's entries file"
    print(
        f"{result['entries']} ops ({where}): export-config --schedule {result['export_s']:.3f} s "
        f"in-process, {result['export_cli_s']:.3f} s as a `hotcb` process"
    )
    print(
        f"start of the replayed run: compose {result['compose_s']:.3f} s + kernel "
        f"{result['start_s']:.3f} s ({result['scheduled_in_replay']} ops scheduled)"
    )
    print(
        f"idle apply: {result['idle_apply_in_noop_calls']} no-op calls without a schedule, "
        f"{result['idle_apply_pending_in_noop_calls']} with {result['entries']} pending"
    )


if __name__ == "__main__":
    main()
