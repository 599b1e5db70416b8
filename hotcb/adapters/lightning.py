"""Drive hotcb from a Lightning ``Trainer``: ``HotCallbackController``.

Add it to the trainer's callbacks (or to a lightning-hydra-template ``callbacks:`` config;
it is Hydra-instantiable) and change the run live with ``hotcb``::

    trainer = L.Trainer(callbacks=[HotCallbackController(callbacks={
        "heartbeat": {"_target_": "hotcb.modules.cb.callbacks.heartbeat.HeartbeatCallback",
                      "every": 50}})])

    # lightning-hydra-template: one line in configs/callbacks/default.yaml
    defaults:
      - hotcb        # hotcb's callbacks/hotcb.yaml: the controller reads the `hotcb` node

Events: ``train_begin`` (on_train_start), ``after_backward`` (on_after_backward),
``train_step_end`` (on_train_batch_end), ``val_end`` (on_validation_end), ``train_end``.
The env: ``step`` (``trainer.global_step``; at ``after_backward`` the step in progress,
``global_step + 1``, so both events of one step share its number), ``epoch``, ``loss``, ``model`` (the
LightningModule), ``optimizer`` (the first one), ``optimizers``, ``scheduler`` (the
first LR scheduler, or None), ``log``, ``loggers``
(``trainer.loggers``, so scalars reach them), ``metrics`` (``trainer.callback_metrics``,
read only when a callback looks: :class:`LazyMetrics`),
``rank``, ``trainer``, ``run_dir``. A stop request (``hotcb.requests``) sets
``trainer.should_stop``. Lightning callbacks loaded into hotcb get every hook they override,
forwarded with its real arguments (:mod:`hotcb.adapters.lightning_callbacks`).

Rank-aware: under DDP every rank runs a :class:`~hotcb.distributed.DistributedHotKernel`
(rank 0 reads commands and writes the ledger; every rank applies each op at the same
step; see docs/scaling-out.md).

Requires ``pip install 'hydra-hotcb[lightning]'``; importing :mod:`hotcb` never imports Lightning.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from pathlib import Path
from typing import Any

try:
    from lightning.pytorch import Callback
except ImportError:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "hotcb.adapters.lightning needs Lightning: pip install 'hydra-hotcb[lightning]'"
    ) from None

from hotcb.adapters.lightning_callbacks import ADOPTED_SYMBOL, HOOKS, PREFIX, adoptable
from hotcb.adapters.session import AdapterSession
from hotcb.kernel import Kernel
from hotcb.requests import REQUESTS_KEY
from hotcb.scalar import to_scalar

__all__ = ["HotCBLightning", "HotCallbackController", "LazyMetrics"]

log = logging.getLogger("hotcb")

#: The hooks that are hotcb events (the others are only forwarded to wrapped callbacks).
_EVENTS = {
    "on_train_start": "train_begin",
    "on_after_backward": "after_backward",
    "on_train_batch_end": "train_step_end",
    "on_validation_end": "val_end",
    "on_train_end": "train_end",
}

#: ``kernel.apply``'s events at the safe point (one tuple, not a list per step).
_STEP_END = ("train_step_end",)


def _loss(outputs: Any) -> Any:
    # Lightning's automatic optimization hands a dict: skip the ABC isinstance for it
    if type(outputs) is dict or isinstance(outputs, Mapping):
        outputs = outputs.get("loss")
    return to_scalar(outputs)


class LazyMetrics(Mapping[str, Any]):
    """``env["metrics"]``: ``trainer.callback_metrics``, read only when a callback looks.

    (Reading it costs about as much as the rest of a hook; most hooks never need it.)
    """

    def __init__(self, trainer: Any) -> None:
        self._trainer = trainer

    def __getitem__(self, key: str) -> Any:
        return self._trainer.callback_metrics[key]

    def __iter__(self) -> Iterator[str]:
        return iter(dict(self._trainer.callback_metrics))

    def __len__(self) -> int:
        return len(self._trainer.callback_metrics)

    def __repr__(self) -> str:
        return f"LazyMetrics({dict(self._trainer.callback_metrics)!r})"


def _hydra_output_dir() -> Path | None:
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        return Path(HydraConfig.get().runtime.output_dir)
    return None


def _config_nodes(group: str) -> dict[str, Any]:
    """The app's ``<group>`` config nodes (the Hydra job's saved ``config.yaml``)."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import DictConfig, OmegaConf

    if not HydraConfig.initialized():
        raise LookupError(
            "hotcb.adopt names config ids, which need a Hydra app; outside one pass "
            "adopt={id: callback_instance}"
        )
    hc = HydraConfig.get()
    path = Path(hc.runtime.output_dir) / str(hc.output_subdir or ".hydra") / "config.yaml"
    loaded = OmegaConf.load(path)
    nodes = loaded.get(group) if isinstance(loaded, DictConfig) else None
    return {str(k): v for k, v in nodes.items()} if isinstance(nodes, DictConfig) else {}


def _adopt(trainer: Any, adopt: Any, group: str) -> dict[str, dict[str, Any]]:
    """Offer the trainer's configured callbacks named in ``adopt`` for adoption; the
    ``hotcb.callbacks`` nodes that load them. A problem is logged, never raised."""
    found: dict[str, Any] = {}
    if isinstance(adopt, Mapping):
        found = {str(k): v for k, v in adopt.items()}
    else:
        try:
            nodes = _config_nodes(group)
        except (LookupError, OSError, ValueError) as exc:
            log.error("hotcb: cannot adopt %s: %s", ", ".join(map(str, adopt)), exc)
            return {}
        targets = {k: n.get("_target_") for k, n in nodes.items() if hasattr(n, "get")}
        for cb_id in map(str, adopt):
            instance = _configured(trainer, cb_id, targets, group)
            if instance is not None:
                found[cb_id] = instance
    out = {}
    for cb_id, instance in found.items():
        key = f"{group}.{cb_id}"
        adoptable(key, instance)
        out[cb_id] = {"_target_": ADOPTED_SYMBOL, "key": key}
    return out


def _configured(trainer: Any, cb_id: str, targets: dict[str, Any], group: str) -> Any:
    """The trainer's instance built from ``<group>.<cb_id>`` (by class, in config order)."""
    from hydra.utils import get_class

    target = targets.get(cb_id)
    if not isinstance(target, str):
        log.error(
            "hotcb: cannot adopt %r: no %s.%s node with a _target_ (have: %s)",
            cb_id,
            group,
            cb_id,
            ", ".join(k for k, t in targets.items() if t) or "none",
        )
        return None
    try:
        cls = get_class(target)
    except Exception as exc:
        log.error("hotcb: cannot adopt %r: %s", cb_id, exc)
        return None
    same = [k for k, t in targets.items() if t == target]
    instances = [cb for cb in trainer.callbacks if type(cb) is cls]
    index = same.index(cb_id)
    if index >= len(instances):
        log.error(
            "hotcb: cannot adopt %r: the trainer has no %s built from %s.%s",
            cb_id,
            target,
            group,
            cb_id,
        )
        return None
    return instances[index]


class HotCallbackController(Callback):
    """A Lightning callback that runs a :class:`~hotcb.kernel.HotKernel`.

    Args:
        run_dir: the hotcb run dir (default: Hydra's output dir inside a Hydra app, else
            ``<trainer.log_dir or default_root_dir>/hotcb``), or a kernel the app built
            (driven as it is, closed at the end; then no ``callbacks`` or kernel options).
        callbacks: the initial set, as ``hotcb.callbacks`` nodes (id -> ``{_target_, ...}``).
        log: a ``print``-like sink for callback output (default: the ``hotcb`` logger).
        config: the composed ``hotcb`` node (what ``callbacks=[default,hotcb]`` passes):
            its ``callbacks``, ``adopt``, ``run_dir`` and kernel settings.
        adopt: ids of the app's ``callbacks`` config nodes to put under live control
            (``[early_stopping, model_checkpoint]``), or a mapping id -> callback instance.
        adopt_group: the config group the trainer's callbacks come from (``callbacks``).
        loss_state: the mapping the loss reads, ``env["loss_state"]`` for the loss module
            (docs/opt-loss.md).
        **kernel_kwargs: passed to ``HotKernel`` (``poll_interval``, ``fsync``, ...).
    """

    def __init__(
        self,
        run_dir: str | os.PathLike[str] | Kernel | None = None,
        callbacks: Mapping[str, Any] | None = None,
        log: Any = None,
        *,
        config: Mapping[str, Any] | None = None,
        adopt: Any = None,
        adopt_group: str = "callbacks",
        loss_state: MutableMapping[str, Any] | None = None,
        **kernel_kwargs: Any,
    ) -> None:
        super().__init__()
        node = dict(config or {})
        if callbacks is None:
            callbacks = node.get("callbacks")
        self.adopt = adopt if adopt is not None else (node.get("adopt") or ())
        self.adopt_group = adopt_group
        self.session = AdapterSession(
            "HotCallbackController",
            run_dir,
            callbacks,
            log,
            settings=node,
            env={"loss_state": loss_state},
            **kernel_kwargs,
        )
        self._states: dict[str, Any] = {}
        self._ctl: Any = None
        self._kernel: Any = None  # the session's kernel while it runs (one lookup per step)
        self._env: dict[str, Any] = {}  # the session's env while it runs
        self._all_events = False

    def _apply(self, trainer: Any, event: str, **extra: Any) -> None:
        env = self.session.env
        # global_step counts completed optimizer steps; after_backward belongs to the next
        env["step"] = trainer.global_step + (event == "after_backward")
        env["epoch"] = trainer.current_epoch
        if extra:
            env.update(extra)
        reason = self.session.apply(event)
        if reason:
            trainer.should_stop = True

    def _stop_if_requested(self, trainer: Any) -> None:
        if self.session.take_stop_request():
            trainer.should_stop = True

    def _forward(self, hook: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        ctl = self._ctl
        key = PREFIX + hook
        if ctl is not None and ctl.declares(key):
            self._dispatch_hook(ctl, key, args, kwargs)

    def _dispatch_hook(
        self, ctl: Any, key: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        env = self.session.env
        env["hook_args"], env["hook_kwargs"] = args, kwargs
        ctl.dispatch(env, (key,))

    # -- hooks ----------------------------------------------------------------------------

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        if not self.session.running:
            # every rank: under DDP the kernel is a DistributedHotKernel (rank 0 writes)
            if self.adopt:
                adopted = _adopt(trainer, self.adopt, self.adopt_group)
                self.session.callbacks = {**adopted, **self.session.callbacks}
            default = _hydra_output_dir() or (
                Path(trainer.log_dir or trainer.default_root_dir) / "hotcb"
            )
            self.session.start(
                default,
                rank=trainer.global_rank,
                model=pl_module,
                trainer=trainer,
                optimizers=trainer.optimizers,
                optimizer=trainer.optimizers[0] if trainer.optimizers else None,
                # the opt module keeps its schedule consistent with a live lr (docs/opt-loss.md)
                scheduler=configs[0].scheduler
                if (configs := trainer.lr_scheduler_configs)
                else None,
                loggers=trainer.loggers,
                metrics=LazyMetrics(trainer),
            )
            kernel = self.session.kernel
            self._ctl = kernel.callbacks if kernel is not None else None
            self._kernel, self._env = kernel, self.session.env
            # other kernel modules (opt's clip_norm, loss's ramps) take every event
            self._all_events = kernel is not None and len(kernel.modules) > 1
            self._restore_states()
        self._apply(trainer, "train_begin")
        self._forward("on_train_start", (trainer, pl_module), {})

    def on_after_backward(self, trainer: Any, pl_module: Any) -> None:
        ctl = self._ctl
        if ctl is None:
            return
        if self._all_events or ctl.handlers("after_backward"):
            self._apply(trainer, "after_backward")
        if ctl.declares(_AFTER_BACKWARD):
            self._dispatch_hook(ctl, _AFTER_BACKWARD, (trainer, pl_module), {})

    def on_train_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        ctl = self._ctl
        if ctl is None:
            return
        # the safe point: commands are read here. Every step, so the session's `apply`
        # inlined: the env written in place, one global_step read, one kernel call.
        env = self._env
        env["step"] = trainer.global_step
        env["epoch"] = trainer.current_epoch
        # the loss is read (a device sync) only when a callback takes the event
        env["loss"] = _loss(outputs) if ctl.handlers("train_step_end") else None
        self._kernel.apply(env, _STEP_END)
        if REQUESTS_KEY in env:
            self._stop_if_requested(trainer)
        if ctl.declares(_BATCH_END):
            self._dispatch_hook(
                ctl, _BATCH_END, (trainer, pl_module, outputs, batch, batch_idx), {}
            )

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if self._ctl is not None and not trainer.sanity_checking:
            self._apply(trainer, "val_end")
        self._forward("on_validation_end", (trainer, pl_module), {})

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        if self._ctl is not None:
            self._apply(trainer, "train_end")
            self._forward("on_train_end", (trainer, pl_module), {})
        self._close()

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        self._forward("on_exception", (trainer, pl_module, exception), {})
        self._close()

    def teardown(self, trainer: Any, pl_module: Any, stage: str) -> None:
        self._forward("teardown", (trainer, pl_module, stage), {})
        if stage == "fit":
            self._close()

    def _close(self) -> None:
        self._ctl = self._kernel = None
        self.session.close()

    # -- the wrapped callbacks' state in Lightning checkpoints ----------------------------

    def state_dict(self) -> dict[str, Any]:
        ctl = self._ctl
        if ctl is None:
            return {}
        out: dict[str, Any] = {}
        for cb_id in ctl.ids:
            instance = ctl.get(cb_id)
            if getattr(instance, "adopted_key", "") is None and hasattr(instance, "state_dict"):
                out[cb_id] = instance.state_dict()
        return {"wrapped": out} if out else {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._states = dict(state_dict.get("wrapped") or {})
        if self._ctl is not None:
            self._restore_states()

    def _restore_states(self) -> None:
        states, self._states = self._states, {}
        for cb_id, state in states.items():
            instance = self._ctl.get(cb_id) if self._ctl is not None else None
            if instance is not None and hasattr(instance, "load_state_dict"):
                instance.load_state_dict(state)


_BATCH_END = PREFIX + "on_train_batch_end"
_AFTER_BACKWARD = PREFIX + "on_after_backward"


def _forwarder(hook: str) -> Callable[..., None]:
    key = PREFIX + hook

    def forward(self: HotCallbackController, *args: Any, **kwargs: Any) -> None:
        # called by Lightning at every hook, overridden or not: idle, one check
        ctl = self._ctl
        if ctl is not None and ctl.declares(key):
            self._dispatch_hook(ctl, key, args, kwargs)

    forward.__name__ = forward.__qualname__ = hook
    forward.__doc__ = f"Forward ``{hook}`` to the wrapped Lightning callbacks that override it."
    return forward


for _hook in HOOKS:
    if _hook not in vars(HotCallbackController):
        setattr(HotCallbackController, _hook, _forwarder(_hook))

#: The reference project's name for the controller (same class).
HotCBLightning = HotCallbackController
