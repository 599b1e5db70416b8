"""Hot callbacks: the ``cb`` module.

Public API: :class:`HotCallback` (the protocol a callback implements),
:func:`hot_factory` (marks a function as a loadable callback factory),
:class:`HotController` (registry + dispatch, usable standalone),
:class:`CallbackModule` (the kernel's ``cb`` module) and :class:`CallbackTarget`
(where a callback class lives; defined in :mod:`hotcb.ops`).
"""

from hotcb.modules.cb.controller import HotController, OpResult
from hotcb.modules.cb.module import CallbackModule
from hotcb.modules.cb.protocol import Env, HotCallback, hot_factory
from hotcb.ops import CallbackTarget

__all__ = [
    "CallbackModule",
    "CallbackTarget",
    "Env",
    "HotCallback",
    "HotController",
    "OpResult",
    "hot_factory",
]
