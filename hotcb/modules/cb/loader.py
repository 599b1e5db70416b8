"""Resolve a :class:`~hotcb.ops.CallbackTarget` to a class and build a callback from it.

Two kinds of target:

* ``module``: ``importlib.import_module(path)``, then ``getattr(module, symbol)``.
  Targets that would hand config data a way to run programs or arbitrary code
  (``os.system``, ``subprocess.*``, ``builtins.exec`` / ``eval``, ...) are refused,
  as hydra-core 1.3.4+ refuses them for ``_target_``.
* ``python_file``: the file's bytes are read once, hashed (sha256), captured to
  ``hotcb.sources/<sha256>.py`` in the run dir, compiled with the original file name
  (tracebacks point at the user's file) and executed as a fresh module. A file whose
  name is a sha256 (a captured source, e.g. from ``hotcb export-config``) must still
  hash to that name, so a replay loads exactly the bytes it recorded.

Every failure is a :class:`LoadError` whose message names the file and line, or the
missing module or attribute, and what to do.

Example:
    >>> from hotcb.ops import CallbackTarget
    >>> t = CallbackTarget("module", "hotcb.modules.cb.callbacks.heartbeat", "HeartbeatCallback")
    >>> factory = resolve(t).factory
    >>> cb = instantiate(factory, "hb", {"every": 5})
    >>> cb.id, cb.every
    ('hb', 5)
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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hotcb.files import NotRegularFileError, open_regular, write_private
from hotcb.modules.cb.protocol import HotCallback
from hotcb.ops import CallbackTarget
from hotcb.trust import check_source_file

__all__ = [
    "LoadError",
    "Resolved",
    "SourceFile",
    "capture_source",
    "instantiate",
    "is_blocked_target",
    "read_source",
    "resolve",
    "sha256_bytes",
]

_SHA_NAME = re.compile(r"^[0-9a-f]{64}$")

#: Modules whose callables run programs, replace the process, or evaluate code.
_BLOCKED_MODULES = ("subprocess", "pty", "os", "posix", "nt", "shutil", "ctypes", "runpy", "code")
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


class LoadError(Exception):
    """A callback could not be loaded or built. The message is meant for a person."""


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


def _refuse(dotted: str) -> LoadError:
    return LoadError(
        f"target {dotted!r} is refused: it would let a command run programs or arbitrary code "
        "(hotcb blocks the same targets as Hydra's instantiate). Wrap what you need in a "
        "callback class and load that instead."
    )


def resolve(target: CallbackTarget, *, sources_dir: Path | None = None) -> Resolved:
    """Find the class (or factory) a target names. Raises :class:`LoadError`."""
    if target.kind == "module":
        return Resolved(factory=_resolve_module(target))
    return _resolve_file(target, sources_dir)


def _resolve_module(target: CallbackTarget) -> Callable[..., Any]:
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
        raise LoadError(f"importing {target.path!r} failed: {_describe(exc)}") from None
    except Exception as exc:
        raise LoadError(f"importing {target.path!r} failed: {_describe(exc)}") from None
    return _get_symbol(module, target, where=f"module {target.path!r}")


def _get_symbol(
    module: types.ModuleType, target: CallbackTarget, *, where: str
) -> Callable[..., Any]:
    try:
        obj = getattr(module, target.symbol)
    except AttributeError:
        names = sorted(
            n for n, v in vars(module).items() if not n.startswith("_") and isinstance(v, type)
        )
        hint = f" (classes there: {', '.join(names[:12])})" if names else ""
        raise LoadError(f"{where} has no attribute {target.symbol!r}{hint}") from None
    blocked = _blocked_identity(obj)
    if blocked is not None:
        raise _refuse(blocked)
    if not callable(obj):
        raise LoadError(
            f"{where}: {target.symbol!r} is a {type(obj).__name__}, not a class or factory"
        )
    return obj


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
        raise LoadError(f"file not found: {path}") from None
    except NotRegularFileError as exc:
        via = f" (reached from {path})" if real != str(path) else ""
        raise LoadError(f"{exc}{via}; a callback must be a regular .py file") from None
    except OSError as exc:
        raise LoadError(f"cannot read {path}: {exc.strerror}") from None
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


def _resolve_file(target: CallbackTarget, sources_dir: Path | None) -> Resolved:
    source = read_source(target.path)
    path, data, sha, sig = source.path, source.data, source.sha256, source.signature
    if _SHA_NAME.match(path.stem) and path.stem != sha:
        raise LoadError(
            f"{path} is a captured source named by its sha256, but its content hashes to "
            f"{sha[:12]}...: the file was modified after capture; refusing to load it"
        )
    captured = capture_source(sources_dir, data, sha) if sources_dir is not None else None
    filename = str(path)
    try:
        code = compile(data, filename, "exec", dont_inherit=True)
    except SyntaxError as exc:
        where = f"{exc.filename or filename} line {exc.lineno}"
        if exc.offset:
            where += f", column {exc.offset}"
        raise LoadError(
            f"syntax error in {where}: {exc.msg}. Fix the file and load it again."
        ) from None
    except ValueError as exc:  # e.g. null bytes
        raise LoadError(f"cannot compile {filename}: {exc}") from None
    mod_name = f"hotcb_file_{path.stem.replace('-', '_')}_{sha[:12]}"
    module = types.ModuleType(mod_name)
    module.__file__ = filename
    sys.modules[mod_name] = module  # dataclasses, pickling and typing look modules up here
    try:
        exec(code, module.__dict__)
    except KeyboardInterrupt:
        sys.modules.pop(mod_name, None)
        raise
    except BaseException as exc:  # SystemExit in a user file must not end training
        sys.modules.pop(mod_name, None)
        line = _line_in(exc, filename)
        raise LoadError(f"running {filename}{line} failed: {_describe(exc)}") from None
    factory = _get_symbol(module, target, where=str(path))
    return Resolved(factory=factory, sha256=sha, captured=captured, signature=sig)


def _line_in(exc: BaseException, filename: str) -> str:
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if frame.filename == filename:
            return f" (line {frame.lineno})"
    return ""


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


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

    Raises :class:`LoadError` for an unknown init key, a constructor that raises, or a
    result that is not a :class:`~hotcb.modules.cb.protocol.HotCallback`.
    """
    check_init_kwargs(factory, cb_id, init)
    kwargs = dict(init)
    takes_id = _accepts(factory, "id")
    if takes_id:
        kwargs["id"] = cb_id
    try:
        instance = factory(**kwargs)
    except Exception as exc:
        name = getattr(factory, "__name__", repr(factory))
        raise LoadError(f"callback {cb_id!r}: {name}(...) raised {_describe(exc)}") from None
    if not takes_id or getattr(instance, "id", None) != cb_id:
        with contextlib.suppress(AttributeError):
            instance.id = cb_id
    missing = [m for m in ("handle", "set_params") if not callable(getattr(instance, m, None))]
    if missing:
        raise LoadError(
            f"callback {cb_id!r}: {type(instance).__name__} is not a HotCallback "
            f"(missing {', '.join(missing)}); see docs/callbacks.md for the protocol"
        )
    return instance


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
