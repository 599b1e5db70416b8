"""Cost of hotcb's Lightning controller, as Lightning's own profiler sees it.

Two measurements on a tiny CPU model (Linear 16->16, synthetic data, no logger, no
checkpoint):

* **per hook**: ``Trainer(profiler="simple")`` times every callback hook;
  ``[Callback]HotCallbackController.<hook>`` median µs per call is reported for the
  controller with nothing to do (``idle``: no hotcb callback loaded) and with the built-in
  ``timing`` + ``heartbeat`` loaded (``loaded``). Goal: an idle hook <= 2 µs.
* **epoch ratio**: wall time of ``--epochs`` epochs with the controller (timing +
  heartbeat) over the same without it, best of ``--repeats`` interleaved rounds.
  Goal: <= 1.01.

    python benchmarks/lightning_overhead.py            # prints one JSON object
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import tempfile
import time
from typing import Any

import lightning.pytorch as L
import torch

from hotcb.adapters.lightning import HotCallbackController

BUILTINS = {
    "timing": {"_target_": "hotcb.modules.cb.callbacks.timing.TimingCallback", "every": 10**9},
    "heartbeat": {
        "_target_": "hotcb.modules.cb.callbacks.heartbeat.HeartbeatCallback",
        "every": 10**9,
    },
}


class Tiny(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Linear(16, 16)

    def training_step(self, batch: Any, batch_idx: int) -> Any:
        return self.net(batch[0]).pow(2).mean()

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD(self.parameters(), lr=0.01)


def _loader(batches: int) -> Any:
    x = torch.randn(batches * 8, 16, generator=torch.Generator().manual_seed(0))
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x), batch_size=8)


def _fit(callbacks: list[Any], epochs: int, batches: int, profiler: Any = None) -> float:
    trainer = L.Trainer(
        accelerator="cpu",
        max_epochs=epochs,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=callbacks,
        profiler=profiler,
    )
    start = time.perf_counter()
    trainer.fit(Tiny(), _loader(batches))
    return time.perf_counter() - start


class NoOp(L.Callback):  # type: ignore[misc]
    """The profiler's floor: a callback whose hooks do nothing."""

    def on_train_batch_start(self, *args: Any) -> None:
        pass

    def on_train_batch_end(self, *args: Any) -> None:
        pass


def _controller(loaded: bool) -> HotCallbackController:
    return HotCallbackController(
        run_dir=tempfile.mkdtemp(), callbacks=BUILTINS if loaded else {}, register=False
    )


def per_hook_us(callback: Any, batches: int) -> dict[str, float]:
    """Median µs per call of each controller hook, from Lightning's SimpleProfiler (the
    median: the kernel's periodic file reads and state writes are rare outliers)."""
    from lightning.pytorch.profilers import SimpleProfiler

    profiler = SimpleProfiler()
    _fit([callback], 1, batches, profiler)
    prefix = f"[Callback]{type(callback).__qualname__}."
    out = {}
    for action, durations in profiler.recorded_durations.items():
        if action.startswith(prefix) and len(durations) >= batches:
            out[action[len(prefix) :]] = round(1e6 * statistics.median(durations), 2)
    return dict(sorted(out.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batches", type=int, default=400)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    for name in ("lightning", "lightning.pytorch"):
        logging.getLogger(name).setLevel(logging.ERROR)
    logging.getLogger("hotcb").addHandler(logging.NullHandler())  # stdout is the JSON
    floor = per_hook_us(NoOp(), args.batches)
    idle = per_hook_us(_controller(False), args.batches)
    loaded = per_hook_us(_controller(True), args.batches)
    with_hotcb, without = [], []
    for _ in range(args.repeats):
        without.append(_fit([], args.epochs, args.batches))
        with_hotcb.append(_fit([_controller(True)], args.epochs, args.batches))
    print(
        json.dumps(
            {
                "per_hook_us_noop_callback": floor,
                "per_hook_us_idle": idle,
                "per_hook_us_timing_heartbeat": loaded,
                "max_idle_hook_us": max(idle.values()),
                "epoch_seconds_without": round(min(without) / args.epochs, 4),
                "epoch_seconds_with": round(min(with_hotcb) / args.epochs, 4),
                "epoch_ratio": round(min(with_hotcb) / min(without), 4),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
