"""Resolve a :class:`~hotcb.ops.CallbackTarget` to a class and build a callback from it.

The target rule, decided from what the target *is*, before anything calls it
(:func:`check_target`): a target must be a class that has ``handle`` and ``set_params``
(on the class or a base class), or a factory marked with
:func:`~hotcb.modules.cb.protocol.hot_factory`, or one named in ``allowed_factories``.
Anything else (a function, a value, a class without ``set_params``) is refused with what
it is and what to do. Every call into user code here (import, ``__init__``) catches
``BaseException``: only the user's own Ctrl-C gets through (see :mod:`hotcb.interrupts`).

Two kinds of target:

* ``module``: ``importlib.import_module(path)``, then ``getattr(module, symbol)``.
  Modules whose callables run programs or arbitrary code (``os``, ``subprocess``,
  ``builtins.exec`` / ``eval``, ...) are refused before the import, as hydra-core 1.3.4+
  refuses them for ``_target_``: defence in depth, the rule above is the gate.
* ``python_file``: the file's bytes are read once, hashed (sha256), captured to
  ``hotcb.sources/<sha256>.py`` in the run dir, compiled with the original file name
  (tracebacks point at the user's file) and executed as a fresh module. A file whose
  name is a sha256 (a captured source, e.g. from ``hotcb export-config``) must still
  hash to that name, so a replay loads exactly the bytes it recorded.

Every failure is a :class:`LoadError` that names the file and line (its ``path`` and
``line`` fields), or the missing module or attribute, and what to do.

Example:
    >>> from hotcb.ops import CallbackTarget
    >>> t = CallbackTarget("module", "hotcb.modules.cb.callbacks.heartbeat", "HeartbeatCallback")
    >>> factory = resolve(t).factory
    >>> cb = instantiate(factory, "hb", {"every": 5})
    >>> cb.id, cb.every
    ('hb', 5)
    >>> resolve(CallbackTarget("module", "timeit", "timeit"))
    Traceback (most recent call last):
    ...
    hotcb.modules.cb.loader.LoadError: target 'timeit.timeit' is a function, not a hot callback: ...
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import inspect
import os
import re
import stat
import sys
import traceback
import types
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hotcb.errors import HotcbError
from hotcb.files import NotRegularFileError, open_regular, write_private
from hotcb.interrupts import is_user_interrupt
from hotcb.modules.cb.foreign import WRAPPERS, foreign_kind
from hotcb.modules.cb.protocol import PROTOCOL_METHODS, HotCallback, is_hot_factory
from hotcb.ops import CallbackTarget
from hotcb.trust import check_source_file

__all__ = [
    "LoadError",
    "Resolved",
    "SourceFile",
    "blocked_message",
    "capture_source",
    "check_target",
    "describe_exception",
    "describe_target",
    "instantiate",
    "is_blocked_target",
    "is_sha256",
    "named_parameters",
    "not_a_callback",
    "read_source",
    "resolve",
    "sha256_bytes",
]

_SHA_NAME = re.compile(r"[0-9a-f]{64}")

#: Modules whose callables run programs, replace the process, or evaluate code.
_BLOCKED_MODULES = (
    "subprocess",
    "pty",
    "os",
    "posix",
    "nt",
    "shutil",
    "ctypes",
    "runpy",
    "code",
    "webbrowser",
    "antigravity",  # opens a web browser when imported
)
#: Exact dotted names (after following re-exports) that are refused.
_BLOCKED_NAMES = frozenset(
    {
        "builtins.exec",
        "builtins.eval",
        "builtins.compile",
        "builtins.__import__",
        "builtins.open",
        "builtins.exit",
        "builtins.quit",
        "importlib.import_module",
        "importlib.__import__",
        "pickle.loads",
        "pickle.load",
        "marshal.loads",
    }
)
_BLOCKED_PREFIXES = ("os.exec", "os.spawn", "yaml.", "logging.config.", "pdb.", "inspect.")


class LoadError(HotcbError):
    """A callback could not be loaded or built. The message is meant for a person; a
    problem in a file carries its ``path`` (and ``line``)."""


@dataclass(frozen=True)
class Resolved:
    """The result of :func:`resolve`."""

    factory: Callable[..., Any]
    #: sha256 of the file's bytes (python_file targets only).
    sha256: str | None = None
    #: Where the bytes were captured (python_file targets only, when a sources dir is given).
    captured: Path | None = None
    #: ``(mtime_ns, size)`` of the file when it was read, to notice edits.
    signature: tuple[int, int] | None = None


def is_sha256(text: object) -> bool:
    """True for a hex sha256 as hotcb names captured sources by.

    >>> is_sha256("0" * 64), is_sha256("../../etc/passwd")
    (True, False)
    """
    return isinstance(text, str) and _SHA_NAME.fullmatch(text) is not None


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of ``data``.

    >>> sha256_bytes(b"")[:12]
    'e3b0c44298fc'
    """
    return hashlib.sha256(data).hexdigest()


def is_blocked_target(dotted: str) -> bool:
    """True for targets that would let config data run programs or arbitrary code.

    >>> is_blocked_target("os.system"), is_blocked_target("subprocess.Popen")
    (True, True)
    >>> is_blocked_target("hotcb.modules.cb.callbacks.timing.TimingCallback")
    False
    """
    head = dotted.split(".", 1)[0]
    if head in _BLOCKED_MODULES:
        return True
    return dotted in _BLOCKED_NAMES or dotted.startswith(_BLOCKED_PREFIXES)


def _blocked_identity(obj: Any) -> str | None:
    """The canonical name of ``obj`` if it is a blocked callable re-exported elsewhere."""
    module = getattr(obj, "__module__", None)
    name = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None)
    if isinstance(module, str) and isinstance(name, str):
        dotted = f"{module}.{name}"
        if is_blocked_target(dotted):
            return dotted
    if obj in (exec, eval, compile, __import__):
        return f"builtins.{obj.__name__}"
    return None


def blocked_message(dotted: str) -> str:
    """The one-line refusal of a target :func:`is_blocked_target` blocks."""
    return (
        f"target {dotted!r} is refused: it would let a command run programs or arbitrary code "
        "(hotcb blocks the same targets as Hydra's instantiate). Wrap what you need in a "
        "callback class and load that instead."
    )


def _refuse(dotted: str) -> LoadError:
    return LoadError(blocked_message(dotted))


def resolve(
    target: CallbackTarget,
    *,
    sources_dir: Path | None = None,
    allowed_factories: Collection[str] = (),
) -> Resolved:
    """Find the class (or marked factory) a target names, and check it against the target
    rule (:func:`check_target`) without calling it. Raises :class:`LoadError`."""
    if target.kind == "module":
        return Resolved(factory=_resolve_module(target, allowed_factories))
    return _resolve_file(target, sources_dir, allowed_factories)


def _resolve_module(target: CallbackTarget, allowed: Collection[str]) -> Callable[..., Any]:
    dotted = f"{target.path}.{target.symbol}"
    if is_blocked_target(dotted) or is_blocked_target(target.path + "."):
        raise _refuse(dotted)
    try:
        module = importlib.import_module(target.path)
    except ModuleNotFoundError as exc:
        if exc.name and target.path.startswith(exc.name):
            raise LoadError(
                f"cannot import module {target.path!r}: no module named {exc.name!r}. "
                "Check the dotted path, or that the package is installed in the training "
                "environment."
            ) from None
        raise LoadError(f"importing {target.path!r} failed: {describe_exception(exc)}") from None
    except BaseException as exc:  # SystemExit in an imported module must not end training
        if is_user_interrupt(exc):
            raise
        raise LoadError(f"importing {target.path!r} failed: {describe_exception(exc)}") from None
    return _get_symbol(module, target, dotted, allowed)


def _get_symbol(
    module: types.ModuleType,
    target: CallbackTarget,
    dotted: str,
    allowed: Collection[str],
    *,
    path: Path | None = None,
) -> Callable[..., Any]:
    """``module.<symbol>``, checked against the target rule; ``path``: the file it was
    loaded from (a ``python_file`` target), named in the errors."""
    try:
        obj = getattr(module, target.symbol)
    except AttributeError:
        names = sorted(
            n for n, v in vars(module).items() if not n.startswith("_") and isinstance(v, type)
        )
        hint = f" (classes there: {', '.join(names[:12])})" if names else ""
        missing = f"has no attribute {target.symbol!r}{hint}"
        if path is None:
            raise LoadError(f"module {target.path!r} {missing}") from None
        raise LoadError(missing, path=path) from None
    except BaseException as exc:  # a module __getattr__ that raises
        if is_user_interrupt(exc):
            raise
        raised = f"getting {target.symbol!r} raised {describe_exception(exc)}"
        if path is None:
            raise LoadError(f"module {target.path!r}: {raised}") from None
        raise LoadError(raised, path=path) from None
    blocked = _blocked_identity(obj)
    if blocked is not None:
        raise _refuse(blocked)
    check_target(obj, dotted, allowed)
    return obj


def describe_target(obj: object) -> str:
    """What ``obj`` is, in the words of a refusal (its code is not run).

    >>> import timeit, io
    >>> describe_target(timeit.timeit), describe_target(io.open), describe_target(1.5)
    ('a function', 'a built-in function', 'a float')
    >>> class Half:
    ...     def handle(self, event, env): ...
    >>> describe_target(Half)
    'a class without set_params()'
    """
    if isinstance(obj, type):
        missing = _missing_methods(obj)
        if missing:
            return f"a class without {' and '.join(m + '()' for m in missing)}"
        return "a hot callback class"
    if inspect.isbuiltin(obj):
        return "a built-in function"
    if inspect.isfunction(obj):
        return "a function"
    if inspect.ismethod(obj):
        return "a method"
    if inspect.ismodule(obj):
        return "a module"
    name = type(obj).__name__
    kind = f"callable {name} object" if callable(obj) else name
    return f"{'an' if kind[0] in 'aeiou' else 'a'} {kind}"


def _missing_methods(cls: type) -> list[str]:
    """The protocol methods ``cls`` (or a base class) does not define, looked up without
    running any of its code (no metaclass ``__getattr__``, no descriptors)."""
    missing = []
    for name in PROTOCOL_METHODS:
        member = inspect.getattr_static(cls, name, None)
        if not (callable(member) or isinstance(member, (staticmethod, classmethod))):
            missing.append(name)
    return missing


def not_a_callback(dotted: str, what: str) -> str:
    """The one-line refusal of a target that breaks the target rule.

    >>> not_a_callback("timeit.timeit", "a function")[:60]
    "target 'timeit.timeit' is a function, not a hot callback: ho"
    """
    return (
        f"target {dotted!r} is {what}, not a hot callback: hotcb loads a class with "
        "handle() and set_params(), or a factory marked with @hot_factory (from "
        "hotcb.modules.cb) or listed in allowed_factories; see docs/protocol.md"
    )


def check_target(obj: object, dotted: str, allowed_factories: Collection[str] = ()) -> None:
    """Enforce the target rule on ``obj`` (named ``dotted``) before anything calls it.

    Accepted: a class with callable ``handle`` and ``set_params`` (checked on the class,
    inherited ones included), a subclass of a Lightning ``Callback`` or an HF
    ``TrainerCallback`` (:mod:`hotcb.modules.cb.foreign`: built, then wrapped), or anything marked with
    :func:`~hotcb.modules.cb.protocol.hot_factory`, or a factory whose target name is in
    ``allowed_factories``. Raises :class:`LoadError` saying what ``obj`` is otherwise.

    >>> from hotcb.modules.cb.callbacks.timing import TimingCallback
    >>> check_target(TimingCallback, "hotcb.modules.cb.callbacks.timing.TimingCallback")
    >>> import timeit
    >>> check_target(timeit.timeit, "timeit.timeit", allowed_factories=["timeit.timeit"])
    >>> check_target(print, "builtins.print")
    Traceback (most recent call last):
    ...
    hotcb.modules.cb.loader.LoadError: target 'builtins.print' is a built-in function, not a hot callback: ...
    """
    if isinstance(obj, type) and (not _missing_methods(obj) or foreign_kind(obj)):
        return  # a hot callback class, or a Lightning / HF callback class (wrapped)
    if is_hot_factory(obj) or (dotted in allowed_factories and callable(obj)):
        return
    raise LoadError(f"{not_a_callback(dotted, describe_target(obj))}; it was not called")


@dataclass(frozen=True)
class SourceFile:
    """The bytes of a ``python_file`` target, as read (after the trust check)."""

    path: Path
    data: bytes
    sha256: str
    signature: tuple[int, int]


def read_source(path: str | os.PathLike[str]) -> SourceFile:
    """Read a callback source file, refusing one that others can change.

    Raises :class:`LoadError` naming the file and what to do.

    >>> import tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "cb.py"
    >>> _ = f.write_bytes(b"X = 1" + bytes([10]))
    >>> read_source(f).sha256[:12]
    '0abae1e0ae72'
    """
    path = Path(path).expanduser()
    if not path.is_absolute():
        path = Path.cwd() / path
    refused = check_source_file(path)
    if refused:
        raise LoadError(refused)
    real = os.path.realpath(path)  # a symlink the user made is followed here, explicitly
    try:
        fd = open_regular(real, os.O_RDONLY)  # a FIFO is refused, not waited on
        with os.fdopen(fd, "rb") as fh:
            st = os.fstat(fh.fileno())
            data = fh.read()
    except FileNotFoundError:
        raise LoadError("file not found", path=path) from None
    except NotRegularFileError as exc:
        via = f" (reached from {path})" if real != str(path) else ""
        raise LoadError(f"{exc}{via}; a callback must be a regular .py file") from None
    except OSError as exc:
        raise LoadError(f"cannot read it: {exc.strerror}", path=path) from None
    return SourceFile(path, data, sha256_bytes(data), (st.st_mtime_ns, st.st_size))


def capture_source(sources_dir: Path, data: bytes, sha256: str | None = None) -> Path:
    """Store ``data`` as ``<sources_dir>/<sha256>.py`` (owner-only, written atomically).

    A regular file already there has those bytes (it is named by their hash) and is kept;
    anything else at that name (a planted symlink) is replaced, never written through.
    """
    sha = sha256 or sha256_bytes(data)
    captured = sources_dir / f"{sha}.py"
    try:
        if stat.S_ISREG(os.lstat(captured).st_mode):
            return captured
    except FileNotFoundError:
        pass
    write_private(captured, data)
    return captured


def _resolve_file(
    target: CallbackTarget, sources_dir: Path | None, allowed: Collection[str]
) -> Resolved:
    source = read_source(target.path)
    path, data, sha, sig = source.path, source.data, source.sha256, source.signature
    if is_sha256(path.stem) and path.stem != sha:
        raise LoadError(
            f"a captured source named by its sha256, but its content hashes to "
            f"{sha[:12]}...: the file was modified after capture; refusing to load it",
            path=path,
        )
    captured = capture_source(sources_dir, data, sha) if sources_dir is not None else None
    filename = str(path)
    try:
        code = compile(data, filename, "exec", dont_inherit=True)
    except SyntaxError as exc:
        column = f" (column {exc.offset})" if exc.offset else ""
        raise LoadError(
            f"syntax error{column}: {exc.msg}. Fix the file and load it again.",
            path=exc.filename or filename,
            line=exc.lineno,
        ) from None
    except ValueError as exc:  # e.g. null bytes
        raise LoadError(f"cannot compile it: {exc}", path=filename) from None
    mod_name = f"hotcb_file_{path.stem.replace('-', '_')}_{sha[:12]}"
    module = types.ModuleType(mod_name)
    module.__file__ = filename
    sys.modules[mod_name] = module  # dataclasses, pickling and typing look modules up here
    try:
        exec(code, module.__dict__)
    except BaseException as exc:  # SystemExit in a user file must not end training
        sys.modules.pop(mod_name, None)
        if is_user_interrupt(exc):
            raise
        raise LoadError(
            f"running the file failed: {describe_exception(exc)}",
            path=filename,
            line=_line_in(exc, filename),
        ) from None
    dotted = f"{target.path}:{target.symbol}"
    factory = _get_symbol(module, target, dotted, allowed, path=path)
    return Resolved(factory=factory, sha256=sha, captured=captured, signature=sig)


def _line_in(exc: BaseException, filename: str) -> int | None:
    """The line of ``filename`` the traceback of ``exc`` was last in (None if none)."""
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if frame.filename == filename:
            return frame.lineno
    return None


def describe_exception(exc: BaseException) -> str:
    """``Type: message``, or just ``Type`` when there is no message.

    >>> describe_exception(ValueError("bad")), describe_exception(SystemExit())
    ('ValueError: bad', 'SystemExit')
    """
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def check_init_kwargs(factory: Callable[..., Any], cb_id: str, init: Mapping[str, Any]) -> None:
    """Raise :class:`LoadError` if ``init`` has a key ``factory`` does not accept.

    >>> from hotcb.modules.cb.callbacks.timing import TimingCallback
    >>> check_init_kwargs(TimingCallback, "timing", {"evry": 5})
    Traceback (most recent call last):
    ...
    hotcb.modules.cb.loader.LoadError: callback 'timing': TimingCallback() does not accept 'evry'; it accepts: id, every, window
    """
    try:
        sig = inspect.signature(factory)
    except (TypeError, ValueError):
        return  # builtins and C types: let the call itself decide
    params = sig.parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    accepted = [
        n
        for n, p in params.items()
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    ]
    unknown = [k for k in init if k not in accepted]
    if unknown:
        name = getattr(factory, "__name__", repr(factory))
        raise LoadError(
            f"callback {cb_id!r}: {name}() does not accept {', '.join(map(repr, unknown))}; "
            f"it accepts: {', '.join(accepted) or '(no arguments)'}"
        )


def instantiate(factory: Callable[..., Any], cb_id: str, init: Mapping[str, Any]) -> HotCallback:
    """Build a callback: ``factory(id=cb_id, **init)`` if it takes ``id``, else set ``.id``.

    ``factory`` must have passed :func:`check_target` (``resolve`` does that). Raises
    :class:`LoadError` for an unknown init key, a constructor that raises (anything but
    the user's Ctrl-C: ``SystemExit`` too), or a result that is not a
    :class:`~hotcb.modules.cb.protocol.HotCallback`.
    """
    check_init_kwargs(factory, cb_id, init)
    kind = foreign_kind(factory)
    if kind is not None and _missing_methods(factory):  # type: ignore[arg-type]
        return _wrap_foreign(kind, factory, cb_id, init)
    kwargs = dict(init)
    takes_id = _accepts(factory, "id")
    if takes_id:
        kwargs["id"] = cb_id
    name = getattr(factory, "__name__", "the factory")
    try:
        instance = factory(**kwargs)
        if not takes_id or getattr(instance, "id", None) != cb_id:
            with contextlib.suppress(AttributeError):
                instance.id = cb_id
        missing = [m for m in PROTOCOL_METHODS if not callable(getattr(instance, m, None))]
    except BaseException as exc:
        raise _constructor_failed(cb_id, name, exc) from None
    if missing:
        raise LoadError(
            f"callback {cb_id!r}: {name}(...) returned {describe_target(instance)}, not a hot "
            f"callback (missing {', '.join(missing)}); see docs/protocol.md for the protocol"
        )
    return instance


def named_parameters(factory: Callable[..., Any]) -> frozenset[str]:
    """The keyword arguments ``factory`` names (``id`` aside): what a config node may pass
    to the constructor. ``**kwargs`` is not a name; a signature that cannot be read names
    nothing.

    >>> from hotcb.modules.cb.callbacks.timing import TimingCallback
    >>> sorted(named_parameters(TimingCallback))
    ['every', 'window']
    """
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return frozenset()
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return frozenset(n for n, p in params.items() if p.kind in kinds and n != "id")


def _constructor_failed(cb_id: str, name: str, exc: BaseException) -> LoadError:
    """The error for a constructor that raised (the user's own Ctrl-C is raised again)."""
    if is_user_interrupt(exc):
        raise exc
    return LoadError(f"callback {cb_id!r}: {name}(...) raised {describe_exception(exc)}")


def _wrap_foreign(
    kind: str, factory: Callable[..., Any], cb_id: str, init: Mapping[str, Any]
) -> HotCallback:
    """Build a Lightning / HF callback class with ``init`` and wrap it (see
    :mod:`hotcb.modules.cb.foreign`)."""
    module, function = WRAPPERS[kind]
    name = getattr(factory, "__name__", "the class")
    try:
        instance = factory(**init)
        wrapped: HotCallback = getattr(importlib.import_module(module), function)(instance, cb_id)
    except BaseException as exc:
        raise _constructor_failed(cb_id, name, exc) from None
    return wrapped


def _accepts(factory: Callable[..., Any], name: str) -> bool:
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return False
    p = params.get(name)
    return p is not None and p.kind in (
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
        inspect.Parameter.KEYWORD_ONLY,
    )
