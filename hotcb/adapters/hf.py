"""Drive hotcb from a Hugging Face ``transformers.Trainer``: ``HotHFCallback``.

::

    trainer = Trainer(model=model, args=args, train_dataset=ds,
                      callbacks=[HotHFCallback(callbacks={"heartbeat": {
                          "_target_": "hotcb.modules.cb.callbacks.heartbeat.HeartbeatCallback",
                          "every": 50}})])

Events: ``train_begin`` (on_train_begin), ``after_backward`` (on_pre_optimizer_step, when
the installed transformers has it), ``train_step_end`` (on_step_end), ``val_end``
(on_evaluate), ``train_end``. The env: ``step`` (``state.global_step``; at ``after_backward`` the step in progress,
``global_step + 1``), ``epoch``,
``loss`` (the most recent logged training loss), ``model``, ``optimizer``,
``lr_scheduler``, ``metrics`` (from evaluation), ``log``, ``run_dir``, ``state``,
``args``, ``rank``. A stop request (``hotcb.requests``) sets ``control.should_training_stop``.

Under DDP every process runs a :class:`~hotcb.distributed.DistributedHotKernel` (process
zero reads commands and writes the ledger; all apply each op at the same step). Requires ``pip install 'hydra-hotcb[hf]'``;
importing :mod:`hotcb` never imports transformers.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, MutableMapping
from pathlib import Path
from typing import Any

try:
    from transformers import TrainerCallback
except ImportError:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "hotcb.adapters.hf needs transformers: pip install 'hydra-hotcb[hf]'"
    ) from None

from hotcb.adapters.hf_callbacks import HOOKS, PREFIX
from hotcb.adapters.session import AdapterSession
from hotcb.kernel import Kernel

__all__ = ["HotCBHFCallback", "HotHFCallback"]


class HotHFCallback(TrainerCallback):
    """A ``TrainerCallback`` that runs a :class:`~hotcb.kernel.HotKernel`.

    Args:
        run_dir: the hotcb run dir (default: ``<args.output_dir>/hotcb``), or a kernel the
            app built (driven as it is, closed at the end; then no ``callbacks`` or kernel
            options).
        callbacks: the initial set, as ``hotcb.callbacks`` nodes (id -> ``{_target_, ...}``).
        log: a ``print``-like sink for callback output (default ``print``).
        loss_state: the mapping the loss reads, ``env["loss_state"]`` for the loss module
            (docs/opt-loss.md); ``mutable_state`` is the reference project's name for it.
        resolve_optimizer: returns the optimizer, ``env["resolve_optimizer"]`` (the opt
            module uses it when the Trainer passes none).
        **kernel_kwargs: passed to ``HotKernel``.
    """

    def __init__(
        self,
        run_dir: str | os.PathLike[str] | Kernel | None = None,
        callbacks: Mapping[str, Any] | None = None,
        log: Any = None,
        *,
        loss_state: MutableMapping[str, Any] | None = None,
        mutable_state: MutableMapping[str, Any] | None = None,
        resolve_optimizer: Callable[[], Any] | None = None,
        **kernel_kwargs: Any,
    ) -> None:
        if loss_state is not None and mutable_state is not None:
            raise ValueError("HotHFCallback: pass loss_state or mutable_state (the same), not both")
        env = {
            "loss_state": mutable_state if loss_state is None else loss_state,
            "resolve_optimizer": resolve_optimizer,
        }
        self.session = AdapterSession(
            "HotHFCallback", run_dir, callbacks, log, env=env, **kernel_kwargs
        )

    def _forward(self, hook: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        kernel = self.session.kernel
        if kernel is None or not kernel.callbacks.declares(PREFIX + hook):
            return
        env = self.session.env
        env["hook_args"], env["hook_kwargs"] = args, kwargs
        kernel.callbacks.dispatch(env, (PREFIX + hook,))

    def _apply(self, args: Any, state: Any, control: Any, event: str, **kwargs: Any) -> None:
        if not self.session.running:
            return
        env: dict[str, Any] = {
            key: kwargs[key]
            for key in ("model", "optimizer", "lr_scheduler", "metrics")
            if kwargs.get(key) is not None
        }
        loss = next((e["loss"] for e in reversed(state.log_history) if "loss" in e), None)
        if loss is not None:
            env["loss"] = loss
        reason = self.session.apply(
            event,
            # global_step counts completed optimizer steps; after_backward belongs to the next
            step=state.global_step + (event == "after_backward"),
            epoch=state.epoch,
            state=state,
            args=args,
            **env,
        )
        if reason:
            control.should_training_stop = True

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        # every process: under DDP the kernel is a DistributedHotKernel (rank 0 writes)
        self.session.start(Path(args.output_dir) / "hotcb", rank=args.process_index)
        self._apply(args, state, control, "train_begin", **kwargs)
        self._forward("on_train_begin", (args, state, control), kwargs)

    def on_pre_optimizer_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._apply(args, state, control, "after_backward", **kwargs)
        self._forward("on_pre_optimizer_step", (args, state, control), kwargs)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._apply(args, state, control, "train_step_end", **kwargs)
        self._forward("on_step_end", (args, state, control), kwargs)

    def on_evaluate(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._apply(args, state, control, "val_end", **kwargs)
        self._forward("on_evaluate", (args, state, control), kwargs)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._apply(args, state, control, "train_end", **kwargs)
        self._forward("on_train_end", (args, state, control), kwargs)
        self.session.close()


def _forwarder(hook: str) -> Any:
    def forward(self: HotHFCallback, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._forward(hook, (args, state, control), kwargs)

    forward.__name__ = forward.__qualname__ = hook
    forward.__doc__ = f"Forward ``{hook}`` to the wrapped TrainerCallbacks that override it."
    return forward


for _hook in HOOKS:
    if _hook not in vars(HotHFCallback):
        setattr(HotHFCallback, _hook, _forwarder(_hook))

#: The reference project's name for the callback (same class).
HotCBHFCallback = HotHFCallback
