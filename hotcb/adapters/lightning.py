"""Drive hotcb from a Lightning ``Trainer``: ``HotCallbackController``.

Add it to the trainer's callbacks (or to a lightning-hydra-template ``callbacks:`` config;
it is Hydra-instantiable) and change the run live with ``hotcb``::

    trainer = L.Trainer(callbacks=[HotCallbackController(callbacks={
        "heartbeat": {"_target_": "hotcb.modules.cb.callbacks.heartbeat.HeartbeatCallback",
                      "every": 50}})])

    # configs/callbacks/hotcb.yaml
    hotcb:
      _target_: hotcb.adapters.lightning.HotCallbackController
      callbacks:
        grad_stats: {_target_: hotcb.modules.cb.callbacks.grad_stats.GradStatsCallback, every: 50}

Events: ``train_begin`` (on_train_start), ``after_backward`` (on_after_backward),
``train_step_end`` (on_train_batch_end), ``val_end`` (on_validation_end), ``train_end``.
The env: ``step`` (``trainer.global_step``; at ``after_backward`` the step in progress,
``global_step + 1``, so both events of one step share its number), ``epoch``, ``loss``, ``model`` (the
LightningModule), ``optimizer`` (the first one), ``optimizers``, ``scheduler`` (the
first LR scheduler, or None), ``log``, ``loggers``
(``trainer.loggers``, so scalars reach them), ``metrics`` (``trainer.callback_metrics``),
``rank``, ``trainer``, ``run_dir``. A stop request (``hotcb.requests``) sets
``trainer.should_stop``.

Rank-aware: under DDP every rank runs a :class:`~hotcb.distributed.DistributedHotKernel`
(rank 0 reads commands and writes the ledger; every rank applies each op at the same
step; see docs/scaling-out.md).

Requires ``pip install 'hydra-hotcb[lightning]'``; importing :mod:`hotcb` never imports Lightning.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

try:
    from lightning.pytorch import Callback
except ImportError:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "hotcb.adapters.lightning needs Lightning: pip install 'hydra-hotcb[lightning]'"
    ) from None

from hotcb.adapters.session import AdapterSession
from hotcb.scalar import to_scalar

__all__ = ["HotCallbackController"]


def _loss(outputs: Any) -> Any:
    if isinstance(outputs, Mapping):
        outputs = outputs.get("loss")
    return to_scalar(outputs)


class HotCallbackController(Callback):
    """A Lightning callback that runs a :class:`~hotcb.kernel.HotKernel`.

    Args:
        run_dir: the hotcb run dir (default: ``<trainer.log_dir or default_root_dir>/hotcb``).
        callbacks: the initial set, as ``hotcb.callbacks`` nodes (id -> ``{_target_, ...}``).
        log: a ``print``-like sink for callback output (default ``print``).
        **kernel_kwargs: passed to ``HotKernel`` (``poll_interval``, ``fsync``, ...).
    """

    def __init__(
        self,
        run_dir: str | os.PathLike[str] | None = None,
        callbacks: Mapping[str, Any] | None = None,
        log: Any = None,
        **kernel_kwargs: Any,
    ) -> None:
        super().__init__()
        self.session = AdapterSession(
            "HotCallbackController", run_dir, callbacks, log, **kernel_kwargs
        )

    def _apply(self, trainer: Any, pl_module: Any, event: str, **extra: Any) -> None:
        if not self.session.running:
            return
        reason = self.session.apply(
            event,
            # global_step counts completed optimizer steps; after_backward belongs to the next
            step=trainer.global_step + (event == "after_backward"),
            epoch=trainer.current_epoch,
            model=pl_module,
            trainer=trainer,
            optimizers=trainer.optimizers,
            optimizer=trainer.optimizers[0] if trainer.optimizers else None,
            # the opt module keeps its schedule consistent with a live lr (docs/opt-loss.md)
            scheduler=configs[0].scheduler if (configs := trainer.lr_scheduler_configs) else None,
            loggers=trainer.loggers,
            metrics=trainer.callback_metrics,
            **extra,
        )
        if reason:
            trainer.should_stop = True

    # -- hooks ----------------------------------------------------------------------------

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        # every rank: under DDP the kernel is a DistributedHotKernel (rank 0 writes)
        default = Path(trainer.log_dir or trainer.default_root_dir) / "hotcb"
        self.session.start(default, rank=trainer.global_rank)
        self._apply(trainer, pl_module, "train_begin")

    def on_after_backward(self, trainer: Any, pl_module: Any) -> None:
        self._apply(trainer, pl_module, "after_backward")

    def on_train_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self._apply(trainer, pl_module, "train_step_end", loss=_loss(outputs))

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if not trainer.sanity_checking:
            self._apply(trainer, pl_module, "val_end")

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        self._apply(trainer, pl_module, "train_end")
        self.session.close()

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        self.session.close()

    def teardown(self, trainer: Any, pl_module: Any, stage: str) -> None:
        if stage == "fit":
            self.session.close()
