"""``EntryRecorder``: one way to write a ledger entry stamped with where the loop is.

The kernel tells the recorder where the loop is at each poll (:meth:`EntryRecorder.at`:
the env's ``step`` and ``epoch``, and the event being applied); every entry written
between two polls gets those, unless the call says otherwise (an ``env`` of its own, an
``event``). A command line's number, byte offset and file fingerprint are filled in from
the :class:`~hotcb.stream.CommandLine` itself.

Example:
    >>> import tempfile, os
    >>> from hotcb.ledger import Ledger
    >>> entries = EntryRecorder(Ledger(os.path.join(tempfile.mkdtemp(), "hotcb.applied.jsonl")))
    >>> entries.at({"step": 12, "epoch": 1}, "train_step_end")
    >>> e = entries.record(module="kernel", op="warn", error="careful")
    >>> (e.seq, e.step, e.epoch, e.event, e.source, e.decision)
    (1, 12, 1, 'train_step_end', 'auto', 'applied')
    >>> entries.record(module="cb", op="set", id="hb", source="config", env={"step": 0},
    ...                event=None).step
    0
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from hotcb.ledger import Ledger, LedgerEntry
from hotcb.modules.base import OpResult
from hotcb.ops import Op
from hotcb.stream import CommandLine

__all__ = ["EntryRecorder", "op_payload"]


class _Here:
    """The default of ``event``: the one given to the last :meth:`EntryRecorder.at`."""

    def __repr__(self) -> str:
        return "HERE"


HERE = _Here()


class EntryRecorder:
    """Writes ledger entries with the step, epoch and event filled in.

    Args:
        ledger: where entries go.
    """

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        #: where the loop is: set by :meth:`at`
        self.step: Any = None
        self.epoch: Any = None
        self.phase: Any = None
        self.event: str | None = None

    def at(self, env: Mapping[str, Any], event: str | None) -> None:
        """Remember where the loop is (the kernel calls this at each poll)."""
        self.step = env.get("step")
        self.epoch = env.get("epoch")
        self.phase = env.get("phase")
        self.event = event

    def record(
        self,
        *,
        module: str,
        op: str,
        id: str | None = None,
        source: str = "auto",
        decision: str = "applied",
        error: str | BaseException | None = None,
        payload: Mapping[str, Any] | None = None,
        env: Mapping[str, Any] | None = None,
        event: str | _Here | None = HERE,
        line: CommandLine | None = None,
    ) -> LedgerEntry:
        """Write one entry and return it.

        ``env``: take ``step`` / ``epoch`` from it (each falls back to :meth:`at`'s);
        ``event``: this entry's event (default: :meth:`at`'s); ``line``: the command line
        the entry is about (its number, offset and fingerprint are recorded).
        """
        if line is not None:
            payload = {**(payload or {}), **line.mark()}
        return self.ledger.record(
            module=module,
            op=op,
            id=id,
            source=source,
            decision=decision,
            error=error,
            payload=payload,
            step=env.get("step", self.step) if env is not None else self.step,
            epoch=env.get("epoch", self.epoch) if env is not None else self.epoch,
            phase=env.get("phase", self.phase) if env is not None else self.phase,
            event=self.event if isinstance(event, _Here) else event,
            line=line.lineno if line is not None else None,
            offset=line.offset if line is not None else None,
        )

    def for_module(
        self, module: str, on_record: Callable[[], None] | None = None
    ) -> Callable[..., LedgerEntry]:
        """A ``record(op=, id=, source=, decision=, payload=, error=, env=)`` function for
        changes ``module`` makes on its own (auto-disable, reload, stuck). Such a change
        happens during dispatch, not at a poll: its event is None unless given.
        ``on_record`` is called after each entry (the kernel marks its state changed)."""

        def record(**fields: Any) -> LedgerEntry:
            fields.setdefault("event", None)
            entry = self.record(module=module, **fields)
            if on_record is not None:
                on_record()
            return entry

        return record


def op_payload(op: Op, result: OpResult, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The payload of an op's ledger entry: the op's fields (all but module, op and id),
    what applying it found out (``result.details``) and ``extra``.

    >>> op_payload(Op(op="set", id="hb", params={"every": 5}), OpResult("applied"))
    {'params': {'every': 5}}
    """
    payload = {k: v for k, v in op.to_dict().items() if k not in ("module", "op", "id")}
    payload.update(result.details)
    payload.update(extra or {})
    return payload
