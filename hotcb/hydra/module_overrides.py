"""Each kernel module's share of ``hotcb export-config``: overrides of the app's own config.

The callback set exports as ``hotcb.callbacks...`` (:mod:`hotcb.hydra.deltas`). Other
modules change things the app's config keeps elsewhere (``optimizer.lr``,
``loss.weights.distill``): each contributes its overrides from its ledger entries and its
section of ``hotcb.state.json``. A module ``NAME`` contributes through a hook registered
with :func:`register_override_hook`, or else a function ``config_overrides(facts)`` in
``hotcb.modules.NAME.overrides`` (how ``opt`` and ``loss`` do it). Nothing here imports
torch: the CLI runs it.

Example:
    >>> register_override_hook("doc_mod", lambda facts: ["model.width=64"])
    >>> facts = ModuleFacts(state={"modules": ["doc_mod"]}, entries=[], config=None)
    >>> overrides_of("doc_mod", facts)
    ['model.width=64']
    >>> override_key("+optimizer.lr=0.1"), override_key("~hotcb.callbacks.timing")
    ('optimizer.lr', 'hotcb.callbacks.timing')
"""

from __future__ import annotations

import importlib
import importlib.util
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from hotcb.files import read_regular
from hotcb.ledger import LedgerEntry, read_ledger
from hotcb.rundir import RunDir
from hotcb.state import read_state

__all__ = [
    "ModuleFacts",
    "config_value",
    "import_modules",
    "is_missing",
    "module_overrides",
    "override_key",
    "overrides_of",
    "register_override_hook",
]

_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MISSING = object()


@dataclass(frozen=True)
class ModuleFacts:
    """What a module's hook gets: the run's state snapshot, the module's ``applied``
    ledger entries in order, and the run's composed config (``.hydra/config.yaml``,
    unresolved; None when the run dir has none)."""

    state: Mapping[str, Any]
    entries: list[LedgerEntry]
    config: Mapping[str, Any] | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "state": dict(self.state),
            "entries": [e.to_dict() for e in self.entries],
            "config": self.config,
        }


OverrideHook = Callable[[ModuleFacts], list[str]]
_HOOKS: dict[str, OverrideHook] = {}


def register_override_hook(module: str, hook: OverrideHook) -> None:
    """Make ``hook(facts) -> [override, ...]`` the export of kernel module ``module``."""
    _HOOKS[module] = hook


def _import(name: str) -> Any:
    """Module ``name`` if it exists (None otherwise)."""
    try:
        if importlib.util.find_spec(name) is None:
            return None
    except ModuleNotFoundError:
        return None
    return importlib.import_module(name)


def import_modules(names: Iterable[str]) -> None:
    """Import the packages of hotcb's kernel modules ``names`` (``hotcb.modules.NAME``),
    which register their ops: after it, :func:`hotcb.modules.base.op_from_entry` rebuilds
    their ledger entries in this process (the CLI's, say). Unknown names are skipped."""
    for module in names:
        if isinstance(module, str) and _NAME_RE.fullmatch(module):
            _import(f"hotcb.modules.{module}")


def _hook(module: str) -> OverrideHook | None:
    if module in _HOOKS:
        return _HOOKS[module]
    if not _NAME_RE.fullmatch(module):
        return None
    found = _import(f"hotcb.modules.{module}.overrides")
    hook = getattr(found, "config_overrides", None)
    return hook if callable(hook) else None


def overrides_of(module: str, facts: ModuleFacts) -> list[str]:
    """The overrides module ``module`` contributes ([] when it has no hook)."""
    hook = _hook(module)
    return list(hook(facts)) if hook is not None else []


def config_value(config: Mapping[str, Any] | None, dotted: str) -> Any:
    """The value at ``dotted`` in ``config``, or a sentinel (``is_missing``) if absent.

    >>> config_value({"optimizer": {"lr": 0.1}}, "optimizer.lr")
    0.1
    """
    node: Any = config
    for key in dotted.split("."):
        if not isinstance(node, Mapping) or key not in node:
            return _MISSING
        node = node[key]
    return node


def is_missing(value: Any) -> bool:
    """True for what :func:`config_value` returns for an absent key."""
    return value is _MISSING


def override_key(override: str) -> str:
    """The config key an override sets (without ``+``, ``++``, ``~`` or the value)."""
    key = override.lstrip("+~").partition("=")[0]
    return key.strip()


def _composed_config(run: RunDir) -> Mapping[str, Any] | None:
    path = run.path / ".hydra" / "config.yaml"
    try:
        doc = yaml.safe_load(read_regular(path).decode("utf-8"))
    except (OSError, ValueError, yaml.YAMLError):
        return None
    return doc if isinstance(doc, Mapping) else None


def module_overrides(run_dir: str | Path) -> list[str]:
    """Every module's overrides for the run in ``run_dir``, in the order of its modules."""
    run = RunDir(run_dir)
    state = read_state(run.state)
    if state is None:
        return []
    modules = [m for m in state.get("modules") or [] if isinstance(m, str)]
    if not modules:
        return []
    import_modules(modules)  # their ops parse here, e.g. for a schedule built from the ledger
    entries = [e for e in read_ledger(run.ledger).entries if e.decision == "applied"]
    config = _composed_config(run)
    out: list[str] = []
    for module in modules:
        mine = [e for e in entries if e.module == module]
        out.extend(overrides_of(module, ModuleFacts(state=state, entries=mine, config=config)))
    return out
