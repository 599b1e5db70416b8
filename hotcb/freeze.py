"""Freeze modes: whether a run takes commands from outside.

``off`` (default): every command is applied. ``prod`` and ``replay``: commands from the
command file are refused: each is recorded in the ledger as ``ignored`` with the reason and
changes nothing. ``replay`` is meant for a run that replays a recorded schedule (see
docs/replay.md); to the command file it is the same as ``prod``.

The mode is a kernel setting (``HotKernel(freeze=...)``, ``hotcb.freeze`` in Hydra config)
and is switched live with the one command a frozen run always takes, ``hotcb freeze --mode
MODE``: an op of the kernel itself (module ``kernel``, op ``freeze``), recorded in the ledger.
The mode is written to ``hotcb.state.json`` (``freeze``), where the CLI reads it.

Example:
    >>> parse_freeze("prod"), parse_freeze(False)
    ('prod', 'off')
    >>> freeze_op("replay").to_dict()
    {'module': 'kernel', 'op': 'freeze', 'id': 'kernel', 'params': {'mode': 'replay'}}
    >>> frozen_mode({"freeze": "prod"}), frozen_mode({"freeze": "off"}), frozen_mode(None)
    ('prod', None, None)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hotcb.ops import Op, OpSpec, register_ops

__all__ = [
    "FREEZE_MODES",
    "FREEZE_OPS",
    "KERNEL_MODULE",
    "freeze_op",
    "frozen_mode",
    "frozen_reason",
    "parse_freeze",
]

#: The modes, in order of strictness.
FREEZE_MODES: tuple[str, ...] = ("off", "prod", "replay")
#: The ``module`` of the kernel's own ops (and ledger entries).
KERNEL_MODULE = "kernel"
#: The kernel's own ops: ``freeze`` (``params: {mode: ...}``).
FREEZE_OPS: tuple[OpSpec, ...] = (
    OpSpec(
        "freeze",
        takes=frozenset({"params"}),
        needs={"params": "a mode: params {mode: off | prod | replay}"},
    ),
)

register_ops(KERNEL_MODULE, FREEZE_OPS)


def parse_freeze(value: Any) -> str:
    """The freeze mode ``value`` names (``False``, as YAML may read ``off``, is ``off``).
    Raises ``ValueError`` naming the modes.

    >>> parse_freeze("thaw")
    Traceback (most recent call last):
    ...
    ValueError: freeze must be one of off, prod, replay; got 'thaw'
    """
    if value is False or value is None:
        return "off"
    if isinstance(value, str) and value in FREEZE_MODES:
        return value
    raise ValueError(f"freeze must be one of {', '.join(FREEZE_MODES)}; got {value!r}")


def freeze_op(mode: str) -> Op:
    """The command that switches a run to ``mode``."""
    return Op(op="freeze", id=KERNEL_MODULE, module=KERNEL_MODULE, params={"mode": mode})


def frozen_mode(state: Mapping[str, Any] | None) -> str | None:
    """The mode of a run's state snapshot if it refuses commands (``prod``, ``replay``),
    else None."""
    mode = state.get("freeze") if isinstance(state, Mapping) else None
    return mode if mode in FREEZE_MODES and mode != "off" else None


def frozen_reason(mode: str) -> str:
    """Why a frozen run ignored a command (the ``error`` of its ``ignored`` entry).

    >>> frozen_reason("prod")
    'the run is frozen (freeze: prod): it takes no command from outside; `hotcb freeze --mode off` lets changes in again'
    """
    return (
        f"the run is frozen (freeze: {mode}): it takes no command from outside; "
        "`hotcb freeze --mode off` lets changes in again"
    )
