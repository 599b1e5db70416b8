"""From a composed Hydra config to the initial callback set: one ``load`` op per node.

(The kernel is built from them by :func:`hotcb.launch.kernel_from_config`.)

Each node under ``hotcb.callbacks`` is one callback, keyed by its id::

    hotcb:
      callbacks:
        heartbeat:
          _target_: hotcb.modules.cb.callbacks.heartbeat.HeartbeatCallback   # kind: module
          every: 100
        feat_viz:
          _target_: tools/viz.py:FeatureViz        # kind: python_file (relative to the launch dir)
          every: 50
          _enabled_: false                         # loaded, but disabled
          _set_: {armed: true}                     # hot params set_params takes, __init__ not

A file target may start with ``config://``: relative to the app's primary config dir
(``config://hotcb/sources/<sha256>.py:FeatureViz``, what ``hotcb export-config`` writes), so
the option and the source it loads travel together with ``git add conf/``.

Other keys are constructor kwargs, checked against the constructor's signature; those under
``_set_`` go through ``set_params`` right after construction (recorded with the load).
Kernel settings may sit beside ``callbacks``: ``poll_interval``, ``auto_disable_on_error``,
``fsync``, ``state_interval``, ``run_dir``, ``allowed_factories``, ``freeze``, ``debounce_steps``,
``log_path``.

A ``_target_`` must name a class with ``handle`` and ``set_params``, or a factory marked
with ``@hot_factory`` or listed in ``hotcb.allowed_factories`` (the target rule, checked
before anything is called). Any other target (``timeit.timeit``, ``io.open``, ...) fails
the start with :class:`HydrationError` (``strict=False``: the run starts without it).

Example:
    >>> from omegaconf import OmegaConf
    >>> cfg = OmegaConf.create({"hotcb": {"callbacks": {"hb": {
    ...     "_target_": "hotcb.modules.cb.callbacks.heartbeat.HeartbeatCallback", "every": 5}}}})
    >>> [(op.op, op.id, op.target.symbol, dict(op.init)) for op in ops_from_config(cfg)]
    [('load', 'hb', 'HeartbeatCallback', {'every': 5})]
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf

from hotcb.errors import HotcbError
from hotcb.files import write_private
from hotcb.freeze import parse_freeze
from hotcb.ops import CallbackTarget, CommandError, Op, check_id
from hotcb.replay import effective_schedule
from hotcb.rundir import LAUNCH_FILE
from hotcb.schedule import Schedule, ScheduleError
from hotcb.schedule_file import merge_entries, read_entries

if TYPE_CHECKING:
    from hotcb.kernel import Kernel

__all__ = [
    "CONFIG_SCHEME",
    "ENABLED_KEY",
    "KERNEL_KEYS",
    "SET_KEY",
    "HydrationError",
    "KernelConfig",
    "app_config_dir",
    "callback_nodes",
    "configured_schedule",
    "kernel_config",
    "kernel_from_config",
    "ops_from_config",
    "parse_target",
    "record_launch",
    "resolve_schedule",
    "target_string",
]

log = logging.getLogger("hotcb")

#: A file path relative to the app's primary config dir: ``config://hotcb/sources/<sha>.py``.
CONFIG_SCHEME = "config://"
#: Reserved node key: ``_enabled_: false`` keeps a callback loaded but disabled.
ENABLED_KEY = "_enabled_"
#: Reserved node key: ``_set_: {name: value}`` are hot params that are not constructor
#: kwargs; they go through ``set_params`` right after construction (the load's ``params``).
SET_KEY = "_set_"
#: Keys of the ``hotcb`` node that configure the kernel.
KERNEL_KEYS = (
    "poll_interval",
    "auto_disable_on_error",
    "fsync",
    "state_interval",
    "sync_every",
    "allowed_factories",
    "freeze",
    "debounce_steps",
    "log_path",
)
#: Hydra's instantiate keys that make no sense for a hot callback.
_UNSUPPORTED = ("_args_", "_partial_", "_recursive_", "_convert_")


class HydrationError(HotcbError, ValueError):
    """The ``hotcb`` config node is invalid: its ``key`` names the callback's node
    (``hotcb.callbacks.<id>``), ``target`` a ``_target_`` that cannot be read. Several
    problems at once are reported together, each with its own location."""

    @classmethod
    def of(cls, problems: list[HotcbError]) -> HydrationError:
        """One error for ``problems`` (at least one): the problem itself when there is one
        (its location kept in the fields), else all of them, each with its location."""
        if len(problems) == 1:
            return cls.from_error(problems[0])
        return cls("; ".join(str(p) for p in problems))


def parse_target(
    value: str,
    *,
    base_dir: str | os.PathLike[str] | None = None,
    config_dir: str | os.PathLike[str] | None = None,
) -> CallbackTarget:
    """``a.b.C`` -> module target; ``path/to/file.py:C`` -> python_file target (a relative
    path is relative to ``base_dir``, one starting ``config://`` to ``config_dir``,
    default :func:`app_config_dir`).

    >>> parse_target("hotcb.modules.cb.callbacks.timing.TimingCallback").to_dict()
    {'kind': 'module', 'path': 'hotcb.modules.cb.callbacks.timing', 'symbol': 'TimingCallback'}
    >>> parse_target("viz.py:FeatureViz", base_dir="/work").to_dict()
    {'kind': 'python_file', 'path': '/work/viz.py', 'symbol': 'FeatureViz'}
    >>> parse_target("config://hotcb/sources/a.py:V", config_dir="/app/conf").path
    '/app/conf/hotcb/sources/a.py'
    """
    if not isinstance(value, str) or not value:
        raise HydrationError(f"_target_ must be a non-empty string, got {value!r}")
    if ":" in value:
        path, _, symbol = value.rpartition(":")
        if not path.endswith(".py"):
            raise HydrationError("a file target is written path/to/file.py:Symbol", target=value)
        return CallbackTarget("python_file", file_path(path, base_dir, config_dir), symbol)
    module, _, symbol = value.rpartition(".")
    if not module:
        raise HydrationError("expected a dotted path like package.module.Class", target=value)
    return CallbackTarget("module", module, symbol)


def app_config_dir() -> Path | None:
    """The app's primary config dir (where its ``config.yaml`` is) under ``@hydra.main``
    or Hydra's compose API; None outside Hydra or for a config in a package."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    for source in HydraConfig.get().runtime.config_sources:
        if source.provider == "main" and source.schema == "file":
            return Path(source.path)
    return None


def file_path(
    path: str,
    base_dir: str | os.PathLike[str] | None = None,
    config_dir: str | os.PathLike[str] | None = None,
) -> str:
    """The absolute path of a ``.py`` target: ``config://...`` relative to ``config_dir``
    (default :func:`app_config_dir`), another relative path to ``base_dir`` (default cwd).

    >>> file_path("config://hotcb/sources/x.py", config_dir="/app/conf")
    '/app/conf/hotcb/sources/x.py'
    """
    if path.startswith(CONFIG_SCHEME):
        directory = config_dir if config_dir is not None else app_config_dir()
        if directory is None:
            raise HydrationError(
                f"{path} is relative to the app's config dir, and there is none here: start "
                "the run with @hydra.main (or the compose API) from a config dir on disk",
                target=path,
            )
        rest = path.removeprefix(CONFIG_SCHEME)
        if os.path.isabs(rest) or ".." in Path(rest).parts:
            raise HydrationError(f"{path} must stay inside the config dir", target=path)
        return os.path.normpath(Path(directory) / rest)
    file = Path(path).expanduser()
    if not file.is_absolute():
        file = Path(base_dir or os.getcwd()) / file
    return os.path.normpath(file)


def resolve_schedule(
    schedule: Schedule, *, base_dir: str | os.PathLike[str] | None = None
) -> Schedule:
    """``schedule`` with every file target made absolute (see :func:`file_path`), as the
    kernel loads it. Raises :class:`HydrationError` naming the entry."""
    base = base_dir if base_dir is not None else _original_cwd()
    entries = {}
    for key, entry in schedule.entries.items():
        target = entry.target
        if target is not None and target.get("kind") == "python_file":
            path = target.get("path")
            if isinstance(path, str) and path:
                try:
                    path = file_path(path, base)
                except HydrationError as exc:
                    raise exc.located(key=f"hotcb.schedule.{key}") from None
                entry = entry.with_target({**target, "path": path})
        entries[key] = entry
    return dataclasses.replace(schedule, entries=entries)


def configured_schedule(node: Any, *, base_dir: str | os.PathLike[str] | None = None) -> Schedule:
    """The schedule of a ``hotcb.schedule`` node (plain values), with the entries of the
    file its ``file`` names (``config://...``, relative to the app's config dir, or a path;
    checked against ``sha256``) merged in by key (see :mod:`hotcb.schedule_file`). Raises
    :class:`~hotcb.schedule.ScheduleError` (an :class:`EntriesFileError` naming the file
    and line for a corrupt file).

    >>> configured_schedule({"policy": "strict"}).policy
    'strict'
    """
    if not isinstance(node, Mapping) or node.get("file") is None:
        return Schedule.from_config(node)
    name, sha = node["file"], node.get("sha256")
    if not isinstance(name, str) or not name:
        raise ScheduleError(
            f"must be the path of the entries file, got {name!r}", key="hotcb.schedule.file"
        )
    if sha is not None and not isinstance(sha, str):
        raise ScheduleError(
            f"must be the sha256 of the entries file (hex) or null, got {sha!r}",
            key="hotcb.schedule.sha256",
        )
    try:
        path = file_path(name, base_dir if base_dir is not None else _original_cwd())
    except HydrationError as exc:
        raise ScheduleError(exc.message, key="hotcb.schedule.file") from None
    return merge_entries(node, read_entries(path, sha256=sha))


def target_string(target: CallbackTarget | Mapping[str, Any]) -> str:
    """The ``_target_`` spelling of a target (inverse of :func:`parse_target`).

    >>> target_string({"kind": "python_file", "path": "/w/viz.py", "symbol": "V"})
    '/w/viz.py:V'
    """
    t = target if isinstance(target, CallbackTarget) else CallbackTarget.from_dict(target)
    return f"{t.path}:{t.symbol}" if t.kind == "python_file" else f"{t.path}.{t.symbol}"


def _original_cwd() -> str:
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        return str(HydraConfig.get().runtime.cwd)
    return os.getcwd()


def _node(cfg: Any, *, schedule: bool = False) -> dict[str, Any]:
    """The ``hotcb`` node as plain values; its ``schedule`` (which may be large: OmegaConf
    converts ~5,000 nodes a second) only with ``schedule``, else left out."""
    node = cfg.get("hotcb") if isinstance(cfg, (DictConfig, Mapping)) else None
    if node is None:
        return {}
    if isinstance(node, Mapping) and not isinstance(node, DictConfig):
        node = OmegaConf.create(dict(node))  # may hold DictConfigs (e.g. from instantiate)
    if isinstance(node, DictConfig) and not schedule and "schedule" in node:
        node = OmegaConf.masked_copy(node, [str(k) for k in node if k != "schedule"])
    container = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node
    if not isinstance(container, Mapping):
        raise HydrationError(f"'hotcb' must be a mapping, got {type(container).__name__}")
    return dict(container)


def ops_from_config(cfg: Any, *, base_dir: str | os.PathLike[str] | None = None) -> list[Op]:
    """One ``load`` op per node of ``cfg.hotcb.callbacks`` (plain Python values only).

    Raises :class:`HydrationError` listing every invalid node.
    """
    callbacks = _node(cfg).get("callbacks") or {}
    if not isinstance(callbacks, Mapping):
        raise HydrationError("'hotcb.callbacks' must be a mapping of id -> callback node")
    base = base_dir if base_dir is not None else _original_cwd()
    config_dir = app_config_dir()
    ops: list[Op] = []
    problems: list[HotcbError] = []
    for cb_id, node in callbacks.items():
        if node is None:
            continue  # e.g. hotcb.callbacks.timing=null: not loaded
        try:
            ops.append(_op_from_node(str(cb_id), node, base, config_dir))
        except (HydrationError, CommandError) as exc:
            problems.append(exc.located(key=f"hotcb.callbacks.{cb_id}"))
    if problems:
        raise HydrationError.of(problems)
    return ops


def _op_from_node(
    cb_id: str, node: Any, base_dir: str | os.PathLike[str], config_dir: Path | None
) -> Op:
    check_id(cb_id)
    if not isinstance(node, Mapping):
        raise HydrationError(f"expected a mapping with _target_, got {node!r}")
    if "_target_" not in node:
        raise HydrationError("missing _target_ (a dotted class path, or path/to/file.py:Class)")
    bad = [k for k in _UNSUPPORTED if k in node]
    if bad:
        raise HydrationError(f"{', '.join(bad)} not supported for hot callbacks")
    enabled = node.get(ENABLED_KEY, True)
    if not isinstance(enabled, bool):
        raise HydrationError(f"{ENABLED_KEY} must be true or false, got {enabled!r}")
    hot = node.get(SET_KEY)
    if hot is not None and not isinstance(hot, Mapping):
        raise HydrationError(
            f"{SET_KEY} must be a mapping of name: value (hot params passed to set_params "
            f"right after construction), got {hot!r}"
        )
    init = {k: v for k, v in node.items() if k not in ("_target_", ENABLED_KEY, SET_KEY)}
    target = parse_target(node["_target_"], base_dir=base_dir, config_dir=config_dir)
    data = {"op": "load", "id": cb_id, "target": target.to_dict(), "init": init}
    return Op.from_dict({**data, "params": dict(hot or {}), "enabled": enabled})


def callback_nodes(callbacks: Mapping[str, Any] | None, owner: str) -> dict[str, Any]:
    """An adapter's initial set as config nodes (id -> ``{_target_, ...}``).

    Refuses callbacks that Hydra already instantiated (a nested ``_target_`` under an
    instantiated adapter), since hotcb must load them itself to record and replay them.

    >>> callback_nodes({"hb": {"_target_": "a.B"}}, "HotCallbackController")
    {'hb': {'_target_': 'a.B'}}
    """
    nodes = dict(callbacks or {})
    for cb_id, node in nodes.items():
        if not isinstance(node, Mapping):
            raise TypeError(
                f"{owner}: callbacks.{cb_id} arrived already built (a {type(node).__name__}): Hydra "
                f"instantiates nested _target_ nodes. Add `_recursive_: false` to the {owner} node "
                "so hotcb loads (and records) them itself."
            )
    return nodes


def _default_run_dir() -> Path:
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        return Path(HydraConfig.get().runtime.output_dir)
    raise HydrationError(
        "no run_dir: pass HotKernel.from_config(cfg, run_dir=...) or set hotcb.run_dir, "
        "or call it inside a @hydra.main app (the run dir is then Hydra's output dir)"
    )


def record_launch(run_dir: Path) -> None:
    """Remember how this run was started, for `hotcb export-config`'s next command."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return
    hc = HydraConfig.get()
    main = next((s for s in hc.runtime.config_sources if s.provider == "main"), None)
    data: dict[str, Any] = {
        "argv": list(sys.argv),
        "cwd": str(hc.runtime.cwd),
        "config_name": hc.job.config_name,
        "config_dir": str(main.path) if main is not None else None,
        "overrides": list(hc.overrides.task),
    }
    if str(hc.mode) == "RunMode.MULTIRUN":  # a sweep job: the sweep dir holds its siblings
        data["sweep_dir"] = str(Path(hc.runtime.cwd) / hc.sweep.dir)
        data["job_num"] = hc.job.num
    try:  # never through a symlink planted at that name
        write_private(run_dir / LAUNCH_FILE, json.dumps(data, indent=1).encode("utf-8"))
    except OSError as exc:
        log.warning("hotcb: cannot write %s: %s", run_dir / LAUNCH_FILE, exc)


@dataclass(frozen=True)
class KernelConfig:
    """What a composed config's ``hotcb`` node asks for: where the run goes, the kernel's
    settings (:data:`KERNEL_KEYS`, overridden by the caller's kwargs) and the initial ops."""

    run_dir: Path
    settings: dict[str, Any]
    ops: list[Op]
    #: ``hotcb.schedule`` after the adjustments (its file targets as written)
    schedule: Schedule = dataclasses.field(default_factory=Schedule)


def kernel_config(
    cfg: Any, run_dir: str | os.PathLike[str] | None = None, **kernel_kwargs: Any
) -> KernelConfig:
    """Read the ``hotcb`` node of ``cfg`` (see :func:`hotcb.launch.kernel_from_config`,
    which builds the kernel). Raises :class:`HydrationError` for an invalid node.

    >>> kc = kernel_config({"hotcb": {"poll_interval": 0.5, "callbacks": {}}}, run_dir="/r")
    >>> kc.run_dir, kc.settings, kc.ops
    (PosixPath('/r'), {'poll_interval': 0.5}, [])
    """
    node = _node(cfg)
    ops = ops_from_config(cfg)
    settings = {k: node[k] for k in KERNEL_KEYS if node.get(k) is not None}
    allowed = settings.get("allowed_factories", [])
    if not isinstance(allowed, list) or not all(isinstance(a, str) for a in allowed):
        raise HydrationError(
            f"hotcb.allowed_factories must be a list of target names "
            f"(package.module.function), got {allowed!r}"
        )
    if "freeze" in settings:
        try:
            settings["freeze"] = parse_freeze(settings["freeze"])
        except ValueError as exc:
            raise HydrationError(f"hotcb.freeze: {exc}") from None
    settings.update(kernel_kwargs)
    try:
        node_schedule = (
            _node(cfg, schedule=True).get("schedule")
            if "schedule" in (cfg.get("hotcb") or {})
            else None
        )
        schedule = effective_schedule(configured_schedule(node_schedule))
    except CommandError as exc:
        raise HydrationError.from_error(exc) from None
    directory = Path(run_dir or node.get("run_dir") or _default_run_dir())
    return KernelConfig(run_dir=directory, settings=settings, ops=ops, schedule=schedule)


def kernel_from_config(
    cfg: Any,
    run_dir: str | os.PathLike[str] | None = None,
    *,
    strict: bool = True,
    **kernel_kwargs: Any,
) -> Kernel:
    """Build a kernel and load the configured callbacks: the same function as
    :func:`hotcb.launch.kernel_from_config` (documented there), reachable from here."""
    from hotcb.launch import kernel_from_config as build  # launch imports this module

    return build(cfg, run_dir, strict=strict, **kernel_kwargs)
