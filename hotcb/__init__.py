"""hotcb: live, hot-swappable instrumentation callbacks for PyTorch training.

Importing ``hotcb`` is cheap: it imports neither torch nor Hydra, nor any of its own
modules. The names below are loaded on first use (``hotcb.HotKernel`` imports
:mod:`hotcb.kernel` then), so ``import hotcb`` and the CLI stay light::

    from hotcb import HotKernel, Op, CallbackTarget, request_stop

The training side lives in :mod:`hotcb.kernel` and :mod:`hotcb.modules.cb`; the CLI in
:mod:`hotcb.cli`; a map of the layout is in docs/protocol.md.

>>> import hotcb
>>> hotcb.Op(op="disable", id="timing").to_dict()
{'module': 'cb', 'op': 'disable', 'id': 'timing'}
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: public name -> the module that defines it (imported on first access)
_EXPORTS: dict[str, str] = {
    "HotKernel": "hotcb.kernel",
    "Kernel": "hotcb.kernel",
    "HotCallback": "hotcb.modules.cb.protocol",
    "hot_factory": "hotcb.modules.cb.protocol",
    "Op": "hotcb.ops",
    "CallbackTarget": "hotcb.ops",
    "request_stop": "hotcb.requests",
    "stop_requested": "hotcb.requests",
    "CommandError": "hotcb.ops",
    "LoadError": "hotcb.modules.cb.loader",
    "HydrationError": "hotcb.hydra.hydrate",
    "RunDirBusy": "hotcb.runlock",
    "HotcbError": "hotcb.errors",
}

__all__ = [
    "CallbackTarget",
    "CommandError",
    "HotCallback",
    "HotKernel",
    "HotcbError",
    "HydrationError",
    "Kernel",
    "LoadError",
    "Op",
    "RunDirBusy",
    "__version__",
    "hot_factory",
    "request_stop",
    "stop_requested",
]

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time __getattr__ loads them
    from hotcb.errors import HotcbError
    from hotcb.hydra.hydrate import HydrationError
    from hotcb.kernel import HotKernel, Kernel
    from hotcb.modules.cb.loader import LoadError
    from hotcb.modules.cb.protocol import HotCallback, hot_factory
    from hotcb.ops import CallbackTarget, CommandError, Op
    from hotcb.requests import request_stop, stop_requested
    from hotcb.runlock import RunDirBusy


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'hotcb' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next access is a plain lookup
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
