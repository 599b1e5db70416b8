"""Records that cross process boundaries, and the parsing that produces them.

Everything a user (or the CLI) writes into ``hotcb.commands.jsonl`` is parsed here,
at the edge, into a frozen :class:`Op`. The kernel and the callback controller only
ever see valid ops; anything malformed becomes a :class:`CommandError` whose message
says what was wrong and what to do.

Which ops exist is declared by the kernel modules themselves: each module registers an
:class:`OpSpec` per op it owns (:func:`register_ops`), and :meth:`Op.from_dict` checks a
command against the table of the module it names. The ``cb`` module's table is built in
(:data:`CALLBACK_OPS`, under :data:`DEFAULT_MODULE`, the module of a command that names
none), so the CLI can check cb commands without importing the cb package.

This module must stay light: the CLI imports it, and the CLI never imports torch.

Example:
    >>> op = parse_command('{"op": "set", "id": "heartbeat", "params": {"every": 5}}')
    >>> op.op, op.id, dict(op.params)
    ('set', 'heartbeat', {'every': 5})
    >>> parse_assignments(["every=5", "lr=3e-4", "on=true", "tags=[a,b]"])
    {'every': 5, 'lr': 0.0003, 'on': True, 'tags': ['a', 'b']}
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from hotcb.defaults import DEFAULT_MODULE
from hotcb.errors import HotcbError

__all__ = [
    "CALLBACK_OPS",
    "DEFAULT_MODULE",
    "MAX_DEPTH",
    "OPS",
    "OP_ALIASES",
    "OP_FIELDS",
    "TARGET_KINDS",
    "CallbackTarget",
    "CommandError",
    "Op",
    "OpSpec",
    "check_id",
    "check_text",
    "known_modules",
    "module_hint",
    "module_ops",
    "parse_assignments",
    "parse_command",
    "parse_scalar",
    "register_ops",
]

#: Where a callback class can come from.
TARGET_KINDS: tuple[str, ...] = ("module", "python_file")

#: How deep a value in ``params`` or ``init`` may nest (each list or object is a level).
MAX_DEPTH = 32

# Names are checked with fullmatch: `$` would also accept a trailing newline.
_ID_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*")
_PARAM_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_COMMAND_KEYS = frozenset(
    {"module", "op", "id", "params", "target", "init", "enabled", "at_step", "undoes"}
)


class CommandError(HotcbError, ValueError):
    """A command (or part of one) is invalid. The message is meant for a person; where
    the command is (file and line) is in the fields of :class:`~hotcb.errors.HotcbError`."""


def check_id(value: object, *, what: str = "callback id") -> str:
    """Return ``value`` if it is a valid callback id, else raise :class:`CommandError`.

    Ids double as Hydra config keys (``hotcb.callbacks.<id>``), so they follow Hydra's
    key grammar: a letter or ``_``, then letters, digits, ``_`` or ``-``.

    >>> check_id("feat_viz")
    'feat_viz'
    """
    if not isinstance(value, str) or not _ID_RE.fullmatch(value):
        raise CommandError(
            f"invalid {what} {value!r}: use letters, digits, '_' or '-', starting with a letter or '_'"
        )
    return value


def check_text(value: str, where: str) -> str:
    r"""Return ``value`` if it is valid Unicode text, else raise :class:`CommandError`.

    A lone surrogate (``"\ud800"`` in JSON, or how Python spells a byte that is not
    UTF-8 in a command-line argument) cannot be written to a UTF-8 file: such text is
    refused at the edge, with ``where`` naming the field.

    >>> check_text("caf\u00e9", "params.msg")
    'café'
    >>> check_text("caf\udce9", "params.msg")
    Traceback (most recent call last):
    ...
    hotcb.ops.CommandError: params.msg contains a lone surrogate (\udce9, the non-UTF-8 byte 0xe9): not valid Unicode text
    """
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        code = ord(value[exc.start])
        byte = f", the non-UTF-8 byte 0x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else ""
        raise CommandError(
            f"{where} contains a lone surrogate (\\u{code:04x}{byte}): not valid Unicode text"
        ) from None
    return value


def _check_value(value: Any, where: str, depth: int, top: str) -> None:
    """Refuse text that is not valid Unicode, and nesting deeper than :data:`MAX_DEPTH`.

    ``where`` is the path to ``value`` (``params.x[0].y``), ``top`` the parameter it is in.
    """
    if isinstance(value, str):
        check_text(value, where)
        return
    if isinstance(value, Mapping):
        items: Iterable[tuple[Any, Any]] = value.items()
    elif isinstance(value, (list, tuple)):
        items = enumerate(value)
    else:
        return
    if depth > MAX_DEPTH:
        raise CommandError(
            f"{top} is nested more than {MAX_DEPTH} levels deep (each list or object is a "
            "level): flatten it"
        )
    for key, item in items:
        if isinstance(key, str):
            check_text(key, f"a key in {where}")
        if isinstance(item, (str, Mapping, list, tuple)):
            sub = f"{where}.{key}" if isinstance(key, str) else f"{where}[{key}]"
            _check_value(item, sub, depth + 1, top)


def _check_params(value: object, *, field_name: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise CommandError(
            f"'{field_name}' must be an object of name: value, got {type(value).__name__}"
        )
    out: dict[str, Any] = {}
    for key, val in value.items():
        if not isinstance(key, str) or not _PARAM_RE.fullmatch(key):
            raise CommandError(
                f"invalid parameter name {key!r} in '{field_name}': must be a Python identifier"
            )
        _check_value(val, f"{field_name}.{key}", 1, f"{field_name}.{key}")
        out[key] = val
    return out


#: The fields an op may carry besides ``module``, ``op`` and ``id``.
OP_FIELDS: tuple[str, ...] = ("target", "init", "params", "enabled")


@dataclass(frozen=True)
class OpSpec:
    """One op a kernel module owns, and the command fields it takes.

    ``takes``: the fields of :data:`OP_FIELDS` the op accepts (any other one given is an
    error); ``needs``: the fields it cannot do without, each with what to tell a person who
    left it out (``"'<op>' of '<id>' needs <that>"``); ``aliases``: other spellings that
    mean this op.

    >>> spec = OpSpec("incr", takes=frozenset({"params"}))
    >>> spec.name, sorted(spec.takes)
    ('incr', ['params'])
    """

    name: str
    takes: frozenset[str] = frozenset()
    needs: Mapping[str, str] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        unknown = (set(self.takes) | set(self.needs)) - set(OP_FIELDS)
        if unknown:
            raise ValueError(
                f"op {self.name!r}: unknown field(s) {sorted(unknown)}; ops carry {list(OP_FIELDS)}"
            )
        if not set(self.needs) <= set(self.takes):
            raise ValueError(f"op {self.name!r}: a field it needs must be one it takes")

    def check(self, op_id: str, given: Iterable[str]) -> None:
        """Refuse a command of this op that carries a field it does not take, or lacks one
        it needs (``given``: the fields the command carries). Raises :class:`CommandError`."""
        present = set(given)
        extra = [k for k in OP_FIELDS if k in present and k not in self.takes]
        if extra:
            raise CommandError(f"'{self.name}' does not take {', '.join(extra)}")
        for key, what in self.needs.items():
            if key not in present:
                raise CommandError(f"'{self.name}' of {op_id!r} needs {what}")


#: The ``cb`` module's ops (registered under :data:`DEFAULT_MODULE`).
CALLBACK_OPS: tuple[OpSpec, ...] = (
    OpSpec(
        "load",
        takes=frozenset(OP_FIELDS),
        needs={
            "target": "a 'target' {kind, path, symbol} "
            "(CLI: --path MODULE or --file FILE.py, with --symbol NAME)"
        },
    ),
    OpSpec(
        "set",
        takes=frozenset({"params"}),
        needs={"params": "at least one parameter, e.g. every=5"},
        aliases=("set_params",),
    ),
    OpSpec("enable"),
    OpSpec("disable"),
    OpSpec("unload"),
)
#: Operations the ``cb`` module understands.
OPS: tuple[str, ...] = tuple(spec.name for spec in CALLBACK_OPS)
#: Accepted spellings that normalise to a canonical op.
OP_ALIASES: dict[str, str] = {a: spec.name for spec in CALLBACK_OPS for a in spec.aliases}

#: What to say about a module a command names that is not here: hotcb's own modules that
#: run only when turned on, and the reference project's (sidphbot/hotcb) that hotcb has not.
_MODULE_HINTS = {
    **dict.fromkeys(
        ("opt", "loss"),
        " (hotcb's optimizer and loss modules run when the run turns them on: a hotcb.opt "
        "or hotcb.loss node; see docs/opt-loss.md)",
    ),
    "core": " (the reference project's core module: its freeze is `hotcb freeze` here; "
    "see docs/migrating.md)",
    "tune": " (the reference project's tuning module is not part of hotcb; see docs/migrating.md)",
}


def module_hint(module: str) -> str:
    """What to add to "unknown module": how to get it, where it is documented ("" if
    hotcb knows nothing of it).

    >>> module_hint("tune")
    " (the reference project's tuning module is not part of hotcb; see docs/migrating.md)"
    """
    return _MODULE_HINTS.get(module, "")


#: module -> (op name or alias -> spec): every op a command may name
_REGISTRY: dict[str, dict[str, OpSpec]] = {}


def register_ops(module: str, specs: Iterable[OpSpec]) -> None:
    """Declare the ops ``module`` owns, so commands naming them parse (idempotent).

    A kernel registers the ``ops`` of each module it is given; a module may also call this
    itself when it is imported. Registering a different table under a name already taken
    raises ``ValueError``.

    >>> register_ops("doc_counter", [OpSpec("incr", takes=frozenset({"params"}))])
    >>> parse_command('{"module": "doc_counter", "op": "incr", "id": "c"}').module
    'doc_counter'
    """
    check_text(module, "module")
    table: dict[str, OpSpec] = {}
    for spec in specs:
        for name in (spec.name, *spec.aliases):
            if name in table:
                raise ValueError(f"module {module!r} declares op {name!r} twice")
            table[name] = spec
    existing = _REGISTRY.get(module)
    if existing is not None and existing != table:
        raise ValueError(
            f"module {module!r} is already registered with other ops "
            f"({', '.join(sorted({s.name for s in existing.values()}))})"
        )
    _REGISTRY[module] = table


def module_ops(module: str) -> Mapping[str, OpSpec] | None:
    """The ops ``module`` registered (names and aliases), or None for an unknown module.

    >>> sorted({spec.name for spec in module_ops("cb").values()})
    ['disable', 'enable', 'load', 'set', 'unload']
    """
    return _REGISTRY.get(module)


def known_modules() -> list[str]:
    """The modules whose ops can be parsed in this process, sorted."""
    return sorted(_REGISTRY)


register_ops(DEFAULT_MODULE, CALLBACK_OPS)


@dataclass(frozen=True)
class CallbackTarget:
    """Where a callback class (or factory) lives.

    ``kind="module"``: ``path`` is an importable dotted module path.
    ``kind="python_file"``: ``path`` is a ``.py`` file on disk.

    >>> t = CallbackTarget("module", "hotcb.modules.cb.callbacks.timing", "TimingCallback")
    >>> CallbackTarget.from_dict(t.to_dict()) == t
    True
    """

    kind: Literal["module", "python_file"]
    path: str
    symbol: str

    def __post_init__(self) -> None:
        if self.kind not in TARGET_KINDS:
            raise CommandError(
                f"target kind must be one of {list(TARGET_KINDS)}, got {self.kind!r}"
            )
        if not isinstance(self.path, str) or not self.path:
            raise CommandError("target 'path' must be a non-empty string")
        check_text(self.path, "target.path")
        if not isinstance(self.symbol, str) or not self.symbol.isidentifier():
            raise CommandError(f"target 'symbol' must be a Python identifier, got {self.symbol!r}")

    def to_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "path": self.path, "symbol": self.symbol}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CallbackTarget:
        if not isinstance(data, Mapping):
            raise CommandError(f"'target' must be an object with kind, path, symbol; got {data!r}")
        missing = [k for k in ("kind", "path", "symbol") if k not in data]
        if missing:
            raise CommandError(
                f"'target' is missing {', '.join(missing)} (needs kind, path, symbol)"
            )
        return cls(kind=data["kind"], path=data["path"], symbol=data["symbol"])

    def describe(self) -> str:
        """``module.path:Symbol`` or ``/file.py:Symbol``, as shown by ``hotcb status``."""
        return f"{self.path}:{self.symbol}"


@dataclass(frozen=True)
class Op:
    """One validated operation for a kernel module (:data:`DEFAULT_MODULE` by default).

    Which fields an op carries is its module's :class:`OpSpec`. For ``cb``: ``load``
    carries ``target`` (and optional ``init``, ``params``, ``enabled``); ``set`` carries
    ``params``; ``enable`` / ``disable`` / ``unload`` carry only ``id``.

    ``at_step`` (any op of any module): apply it when the run reaches that step instead of
    at the next safe point (``hotcb cb ... --at-step N``; see docs/replay.md).
    """

    op: str
    id: str
    module: str = DEFAULT_MODULE
    params: Mapping[str, Any] = field(default_factory=dict)
    target: CallbackTarget | None = None
    init: Mapping[str, Any] = field(default_factory=dict)
    enabled: bool | None = None
    at_step: int | None = None
    #: ``hotcb undo``: the ledger ``seq`` of the change this op reverts (any module's op
    #: may carry it; it is recorded in the entry's payload and changes nothing else)
    undoes: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form written to the command stream (empty fields omitted)."""
        out: dict[str, Any] = {"module": self.module, "op": self.op, "id": self.id}
        if self.target is not None:
            out["target"] = self.target.to_dict()
        if self.init:
            out["init"] = dict(self.init)
        if self.params:
            out["params"] = dict(self.params)
        if self.enabled is not None:
            out["enabled"] = self.enabled
        if self.at_step is not None:
            out["at_step"] = self.at_step
        if self.undoes is not None:
            out["undoes"] = self.undoes
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Op:
        """Validate a decoded command object. Raises :class:`CommandError`."""
        if not isinstance(data, Mapping):
            raise CommandError(f"a command must be a JSON object, got {type(data).__name__}")
        module = data.get("module", DEFAULT_MODULE)
        if not isinstance(module, str) or not module:
            raise CommandError(f"'module' must be a non-empty string, got {module!r}")
        check_text(module, "module")
        table = module_ops(module)
        if table is None:  # said first: a module's own fields are unknown here too
            raise CommandError(
                f"unknown module {module!r}: the modules here are {', '.join(known_modules())}"
                + module_hint(module)
            )
        unknown = sorted(set(data) - _COMMAND_KEYS)
        if unknown:
            raise CommandError(
                f"unknown field(s) {', '.join(map(repr, unknown))}; a command may have "
                f"{', '.join(sorted(_COMMAND_KEYS))}"
            )
        names = list(dict.fromkeys(spec.name for spec in table.values()))
        aliases = [a for a, spec in table.items() if a != spec.name]
        raw_op = data.get("op")
        if raw_op is None:
            raise CommandError(f"missing 'op' (one of {', '.join(names)})")
        spec = table.get(raw_op) if isinstance(raw_op, str) else None
        if spec is None:
            raise CommandError(
                f"unknown op {raw_op!r}: expected one of {', '.join(names)}"
                + (f" (or {', '.join(aliases)})" if aliases else "")
            )
        op = spec.name
        if "id" not in data:
            raise CommandError("missing 'id' (the callback id)")
        cb_id = check_id(data["id"])
        params = _check_params(data.get("params"), field_name="params")
        init = _check_params(data.get("init"), field_name="init")
        enabled = data.get("enabled")
        if enabled is not None and not isinstance(enabled, bool):
            raise CommandError(f"'enabled' must be true or false, got {enabled!r}")
        undoes = data.get("undoes")
        if undoes is not None and (
            not isinstance(undoes, int) or isinstance(undoes, bool) or undoes < 1
        ):
            raise CommandError(f"'undoes' must be a ledger seq (an integer >= 1), got {undoes!r}")
        raw_target = data.get("target")
        given = [k for k, v in (("target", raw_target), ("init", init), ("params", params)) if v]
        spec.check(cb_id, [*given, "enabled"] if enabled is not None else given)
        target = CallbackTarget.from_dict(raw_target) if raw_target else None
        at_step = data.get("at_step")
        if at_step is not None and (
            isinstance(at_step, bool) or not isinstance(at_step, int) or at_step < 0
        ):
            raise CommandError(f"'at_step' must be a step number >= 0, got {at_step!r}")
        return cls(
            op=op,
            id=cb_id,
            module=module,
            params=params,
            target=target,
            init=init,
            enabled=enabled,
            at_step=at_step,
            undoes=undoes,
        )


def parse_command(line: str | bytes) -> Op:
    """Parse one line of ``hotcb.commands.jsonl`` into an :class:`Op`.

    Raises :class:`CommandError` naming the problem (bad JSON with its column, a missing
    or unknown field, a bad value).

    >>> parse_command('{"op": "disable", "id": "timing"}').to_dict()
    {'module': 'cb', 'op': 'disable', 'id': 'timing'}
    """
    if isinstance(line, bytes):
        try:
            line = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CommandError(
                f"line is not UTF-8 text ({exc.reason} at byte {exc.start})"
            ) from None
    text = line.strip()
    if not text:
        raise CommandError("empty line")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CommandError(f"not valid JSON: {exc.msg} at column {exc.colno}") from None
    except RecursionError:
        raise CommandError("not valid JSON: nested too deeply") from None
    except ValueError:  # the only other one: an integer too long to convert
        raise CommandError(f"not valid JSON: a number has over {_MAX_DIGITS} digits") from None
    return Op.from_dict(data)


_MAX_DIGITS = sys.get_int_max_str_digits()


def parse_scalar(text: str) -> Any:
    """Parse a ``key=value`` value as Hydra's override grammar does
    (:func:`hotcb.overrides.parse_value`): ``5`` an int, ``3e-4`` a float, ``true`` (any
    case) a bool, ``null`` None, ``[a,b]`` a list, ``{k:1}`` a dict, ``'5'`` a string, and
    any other text a string as written (``yes``, ``0x10``, ``2024-01-01``).

    >>> [parse_scalar(s) for s in ["5", "3e-4", "true", "[a,b]", "hello world", "'5'", "yes"]]
    [5, 0.0003, True, ['a', 'b'], 'hello world', '5', 'yes']
    """
    from hotcb.overrides import ValueSyntaxError, parse_value

    try:
        return parse_value(text)
    except ValueSyntaxError as exc:
        raise CommandError(str(exc)) from None


def parse_assignments(items: Iterable[str]) -> dict[str, Any]:
    """Parse ``["every=5", "lr=3e-4"]`` into ``{"every": 5, "lr": 0.0003}``.

    Raises :class:`CommandError` for an item without ``=`` or with a bad name.
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep:
            raise CommandError(f"expected name=value, got {item!r} (e.g. every=5)")
        if not _PARAM_RE.fullmatch(key):
            raise CommandError(
                f"invalid parameter name {key!r} in {item!r}: must be a Python identifier"
            )
        out[key] = parse_scalar(check_text(raw, key))
    return out
