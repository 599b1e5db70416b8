"""From a composed Hydra config to a running kernel with its initial callback set.

:func:`kernel_from_config` is the one place a kernel is built from a config: behind
:meth:`HotKernel.from_config <hotcb.kernel.HotKernel.from_config>`,
:func:`hotcb.hydra.hydrate.kernel_from_config` and the trainer adapters. It reads the
``hotcb`` node (:func:`hotcb.hydra.hydrate.kernel_config`), picks the kernel for the
process (a :class:`~hotcb.kernel.HotKernel`, or under an initialized ``torch.distributed``
group of several processes a :class:`~hotcb.distributed.DistributedHotKernel`) and submits
the initial set.

Example:
    >>> import tempfile
    >>> cfg = {"hotcb": {"callbacks": {"hb": {
    ...     "_target_": "hotcb.modules.cb.callbacks.heartbeat.HeartbeatCallback", "every": 2}}}}
    >>> kernel = kernel_from_config(cfg, run_dir=tempfile.mkdtemp(), register=False)
    >>> kernel.apply({"step": 2, "log": print}, ["train_step_end"])
    [hb] train_step_end step=2
    >>> kernel.close()
"""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Any

from hotcb.distributed import DistributedHotKernel, distributed_world
from hotcb.errors import HotcbError
from hotcb.hydra.hydrate import HydrationError, kernel_config, record_launch, resolve_schedule
from hotcb.hydra.kernel_modules import kernel_modules
from hotcb.kernel import HotKernel, Kernel
from hotcb.ledger import read_ledger
from hotcb.replay import write_effective_schedule
from hotcb.schedule import SCHEDULE_SOURCE, Schedule

__all__ = ["kernel_from_config"]

log = logging.getLogger("hotcb")


def kernel_from_config(
    cfg: Any,
    run_dir: str | os.PathLike[str] | None = None,
    *,
    strict: bool = True,
    **kernel_kwargs: Any,
) -> Kernel:
    """Build a :class:`~hotcb.kernel.HotKernel` and load the configured callbacks.

    Under an initialized ``torch.distributed`` group of more than one process it builds a
    :class:`~hotcb.distributed.DistributedHotKernel` instead (``hotcb.sync_every``,
    default 10), on every rank; only rank 0 writes the run dir.

    Each callback is applied at step 0 and recorded in the ledger with
    ``source: config``. With ``strict`` (default) a callback that fails to load raises
    :class:`~hotcb.hydra.hydrate.HydrationError` before training starts (the failure is in
    the ledger too); otherwise it is logged and the run goes on without it. A ``_target_``
    that breaks the target rule (not a class with ``handle`` and ``set_params`` nor a marked
    or allowed factory) is such a failure, refused before anything calls it. A resumed run
    (an existing ledger in ``run_dir``) keeps the state it rebuilt from the ledger instead.
    """
    config = kernel_config(cfg, run_dir, **kernel_kwargs)
    settings = dict(config.settings)
    if "modules" not in settings:  # hotcb.opt / hotcb.loss: their modules beside callbacks
        auto_disable = settings.get("auto_disable_on_error", True)
        modules = kernel_modules(cfg, auto_disable_on_error=auto_disable)
        if modules is not None:
            settings["modules"] = modules
    world = distributed_world()
    kernel: Kernel
    if world is not None and world[1] > 1:
        kernel = DistributedHotKernel(run_dir=config.run_dir, **settings)
    else:
        settings.pop("sync_every", None)  # one process: nothing to sync
        kernel = HotKernel(run_dir=config.run_dir, **settings)
    if kernel.rank == 0:
        record_launch(kernel.run_dir.path)
    try:
        schedule = resolve_schedule(config.schedule) if config.schedule.entries else None
    except HydrationError:
        kernel.close()
        raise
    if kernel.resumed:
        log.info(
            "hotcb: resumed %s from its ledger; the config's callbacks were not re-applied",
            kernel.run_dir.path,
        )
        if schedule is not None:
            _start_schedule(kernel, config.schedule, _still_to_do(kernel, schedule), strict=strict)
        return kernel
    failures: list[HotcbError] = []
    for op in config.ops:
        entry = kernel.submit(op, source="config", env={"step": 0})
        if entry.decision == "failed":
            location = getattr(entry, "location", None) or {}  # a ledger entry's, if any
            failed = HydrationError(entry.error or "failed", **location)
            failures.append(failed.located(key=f"hotcb.callbacks.{op.id}"))
    failures = kernel.agree(failures)  # every rank raises, or none does
    if failures and strict:
        kernel.close()
        raise HydrationError.of(failures)
    for failure in failures:
        log.error("hotcb: %s", failure)
    if schedule is not None:
        _start_schedule(kernel, config.schedule, schedule, strict=strict)
    return kernel


def _still_to_do(kernel: Kernel, schedule: Schedule) -> Schedule:
    """A resumed run's schedule without the entries its ledger already has (applied or
    missed, by ``schedule_key``): those are in the state the ledger rebuilt."""
    done: set[str] = set()
    if kernel.rank == 0:
        for entry in read_ledger(kernel.run_dir.ledger).entries:
            key = entry.payload.get("schedule_key")
            if entry.source == SCHEDULE_SOURCE and isinstance(key, str):
                done.add(key)
    done = kernel.agree(done)  # other ranks do not read the run dir
    entries = {k: e for k, e in schedule.entries.items() if k not in done}
    return dataclasses.replace(schedule, entries=entries)


def _start_schedule(kernel: Kernel, written: Schedule, schedule: Schedule, *, strict: bool) -> None:
    """Write the effective schedule (``written``, as the config spells it) into the run dir
    and have the kernel apply it (``schedule``, its file targets resolved). An entry whose
    op is invalid fails the start with ``strict``, else it is left out."""
    if kernel.rank == 0:
        try:
            write_effective_schedule(kernel.run_dir.path, written)
        except OSError as exc:
            log.warning("hotcb: cannot write the effective schedule: %s", exc)
    problems = kernel.load_schedule(schedule)
    if problems and strict:
        kernel.close()
        raise HydrationError("; ".join(problems), key="hotcb.schedule")
    for problem in problems:
        log.error("hotcb: %s (left out)", problem)
    log.info("hotcb: %d scheduled ops (policy %s)", len(schedule), schedule.policy)
