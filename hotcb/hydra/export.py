"""``hotcb export-config``: freeze a run's live changes into Hydra config.

Two forms:

* ``fmt="group"`` (default): a new option of the app's ``hotcb/callbacks`` config group,
  written to ``<primary config dir>/hotcb/callbacks/<name>.yaml`` (the dir is read from
  the run's ``.hydra/hydra.yaml``), holding the final state of every callback. The next
  run starts from it with ``hotcb/callbacks=<name>``; the exact command is returned.
* ``fmt="overrides"``: the override deltas (see :mod:`hotcb.hydra.deltas`) on one
  shell-quoted line, to paste after the original command.

A callback loaded from a ``.py`` file exports as its captured source: in the group form
copied to ``<config dir>/hotcb/sources/<sha256>.py`` and named
``config://hotcb/sources/<sha256>.py:Symbol`` (relative to the config dir, so ``git add
conf/`` carries it and a clone of the app at another path loads it; see
:mod:`hotcb.hydra.portable`), otherwise ``<run_dir>/hotcb.sources/<sha256>.py:Symbol``.
The next run loads the same bytes (the loader checks the sha256 in the name).

``schedule=True`` (``--schedule``, group form only) also writes the run's trajectory, every
op applied during the run at its step and event, as the option
``<config dir>/hotcb/schedule/<name>.yaml`` (see :mod:`hotcb.schedule`); the next command
is then the run's own command plus ``+hotcb/schedule=<name>``, which replays it.

The export is a new file, mode 0600 (directories it creates 0700) whatever the umask; an
existing file is overwritten only with ``force``. The group form reads where to write and
which script to print from the run's own files, so it is refused for a run dir another
user owns, and when those files are not the run owner's own (or others can write them);
``--out FILE`` and ``fmt="overrides"`` only read the run.
"""

from __future__ import annotations

import os
import re
import shlex
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from hotcb.errors import HotcbError
from hotcb.files import write_private
from hotcb.hydra.deltas import DeltaError, deltas_for_run, final_nodes
from hotcb.hydra.hydrate import CONFIG_SCHEME
from hotcb.hydra.portable import SourceCopier, SourceCopyError
from hotcb.ledger import read_ledger
from hotcb.replay import schedule_yaml
from hotcb.rundir import RunDir, read_launch
from hotcb.schedule import schedule_from_ledger
from hotcb.schedule_file import ENTRIES_SUFFIX, INLINE_MAX, entries_jsonl, file_node
from hotcb.state import read_state
from hotcb.trust import check_control_file, foreign_owner, make_private_dirs

__all__ = ["ExportError", "ExportResult", "export_config"]

_HOTCB_OVERRIDE = re.compile(r"^(\+\+|\+|~)?hotcb[./]callbacks")
# checked with fullmatch: `$` would also accept a name that ends in a newline
_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_\-]*")


class ExportError(HotcbError):
    """The run cannot be exported as asked; the message says why and what to do, ``path``
    which file."""


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_config` produced."""

    #: The file written (None for ``fmt="overrides"``).
    path: Path | None
    #: The YAML written, or the override line.
    text: str
    #: The command that starts the next run from the export (when it can be derived).
    next_command: str | None
    #: The schedule option written (``schedule=True``), and how many entries it has.
    schedule_path: Path | None = None
    schedule_entries: int = 0


def _trusted(path: Path) -> Path:
    """``path``, unless others could have written it (then :class:`ExportError`)."""
    refused = check_control_file(path).refused
    if refused is not None:
        raise ExportError(
            f"{refused}. export-config reads from it where to write and what to run next"
        )
    return path


def _launch(run: RunDir) -> dict[str, Any]:
    return read_launch(_trusted(run.launch))


def _config_dir(run: RunDir, launch: dict[str, Any]) -> Path:
    hydra_yaml = run.path / ".hydra" / "hydra.yaml"
    sources: list[Any] = []
    try:
        doc = yaml.safe_load(_trusted(hydra_yaml).read_text(encoding="utf-8")) or {}
        sources = doc.get("hydra", {}).get("runtime", {}).get("config_sources", []) or []
    except (OSError, yaml.YAMLError):
        pass
    for source in sources:
        if isinstance(source, dict) and source.get("provider") == "main":
            path, schema = str(source.get("path", "")), source.get("schema")
            if schema == "file" or path.startswith("file://"):
                return Path(path.removeprefix("file://"))
            raise ExportError(
                f"the app's config lives in a package ({schema}://{path}); write the export "
                "elsewhere with --out FILE"
            )
    if launch.get("config_dir"):
        return Path(str(launch["config_dir"]).removeprefix("file://"))
    raise ExportError(
        f"not found: {run.path} was not a Hydra run dir; use --out FILE or --format overrides",
        path=hydra_yaml,
    )


def _own_config_dir(run: RunDir) -> Path:
    """The config dir of the user's own run (another user's run is refused)."""
    owner = foreign_owner(run.path)
    if owner is not None:
        raise ExportError(
            f"run dir {run.path} belongs to {owner}, not to you: exporting it into the "
            "config dir its files name (and printing the script it ran) is refused; "
            "read it with --format overrides, or write it to a file you choose with --out FILE"
        )
    return _config_dir(run, _launch(run))


def _default_name(run: RunDir) -> str:
    raw = f"{run.path.parent.name}_{run.path.name}"
    name = re.sub(r"[^A-Za-z0-9_]+", "_", raw).strip("_")
    return f"live_{name}" if name else "live"


def _next_command(launch: dict[str, Any], name: str) -> str | None:
    argv = launch.get("argv") or []
    if not argv:
        return None
    script = Path(argv[0])
    if not script.is_absolute():
        script = Path(launch.get("cwd") or os.getcwd()) / script
    try:
        shown = os.path.relpath(script)
    except ValueError:
        shown = str(script)
    if shown.startswith("../../.."):
        shown = str(script)
    kept = [o for o in launch.get("overrides") or [] if not _HOTCB_OVERRIDE.match(o)]
    parts = ["python", shown, *kept, f"hotcb/callbacks={name}"]
    return " ".join(shlex.quote(p) for p in parts)


def export_config(
    run_dir: str | os.PathLike[str],
    *,
    name: str | None = None,
    out: str | os.PathLike[str] | None = None,
    fmt: str = "group",
    force: bool = False,
    schedule: bool = False,
) -> ExportResult:
    """Export the run in ``run_dir``; see the module docstring. Raises :class:`ExportError`.

    ``force``: overwrite the file if it exists (else that is an error). ``schedule``: also
    write the run's trajectory as a ``hotcb/schedule`` option (group form, no ``out``).
    """
    run = RunDir(run_dir)
    if fmt not in ("group", "overrides"):
        raise ExportError(f"unknown format {fmt!r}: use group or overrides")
    if schedule and (fmt != "group" or out is not None):
        raise ExportError(
            "--schedule writes a hotcb/schedule option into the app's config dir: "
            "use it without --out and --format overrides"
        )
    copier: SourceCopier | None = None
    if fmt == "group" and out is None:
        copier = SourceCopier(run.path, lambda: _own_config_dir(run))
    try:
        if fmt == "overrides":
            line = " ".join(shlex.quote(d) for d in deltas_for_run(run.path))
            return ExportResult(path=None, text=line, next_command=None)
        nodes = final_nodes(run.path, source_path=copier)
    except (DeltaError, SourceCopyError) as exc:
        raise ExportError.from_error(exc) from None
    if name is not None and not _NAME_RE.fullmatch(name):
        raise ExportError(f"invalid name {name!r}: use letters, digits, '_' or '-'")
    option = name or _default_name(run)
    if out is not None:
        path = Path(out).expanduser().absolute()  # a symlink there is replaced, not followed
        command = None
    else:
        path = _own_config_dir(run) / "hotcb" / "callbacks" / f"{option}.yaml"
        command = _next_command(_launch(run), option)
    state = read_state(run.state) or {}
    header = [
        "# @package hotcb.callbacks",
        f"# Exported by `hotcb export-config` from {run.path}",
        f"# (step {state.get('step')}, {time.strftime('%Y-%m-%d %H:%M:%S')}).",
    ]
    if command:
        header.append(f"# Next run: {command}")
    body = yaml.safe_dump(nodes, sort_keys=False, default_flow_style=False) if nodes else "{}\n"
    text = "\n".join(header) + "\n" + body
    if schedule:
        assert copier is not None
        return _export_schedule(run, copier, option, path, text, force=force)
    _write_new(path, text.encode("utf-8"), force=force)
    return ExportResult(path=path, text=text, next_command=command)


def _export_schedule(
    run: RunDir, copier: SourceCopier, option: str, callbacks_path: Path, text: str, *, force: bool
) -> ExportResult:
    """Write the callbacks option and the run's trajectory as ``hotcb/schedule/<option>``;
    the next command replays the trajectory from the run's own starting config."""
    try:
        trajectory = schedule_from_ledger(
            read_ledger(_trusted(run.ledger)).entries,
            source=lambda sha, target: {**target, "path": copier(sha)},
        )
    except SourceCopyError as exc:
        raise ExportError.from_error(exc) from None
    if not trajectory.entries:
        raise ExportError(
            "no op was applied during the run (only its starting config): nothing to "
            "replay; export without --schedule",
            path=run.ledger,
        )
    path = _own_config_dir(run) / "hotcb" / "schedule" / f"{option}.yaml"
    command = _replay_command(run, _launch(run), option)
    header = [
        "# @package hotcb.schedule",
        f"# The trajectory of {run.path}: {len(trajectory)} ops, each at the step and event",
    ]
    if len(trajectory) > INLINE_MAX:  # Hydra would take ~3 ms an entry to compose them
        entries = path.with_name(option + ENTRIES_SUFFIX)
        if not force and os.path.lexists(path):  # refused before its entries file is written
            raise ExportError("already exists; pass --force to overwrite it", path=path)
        data = entries_jsonl(trajectory)
        _write_new(entries, data, force=force)
        header += [
            f"# it was applied at, in {entries.name} (one entry a line). Adjust one:",
            "# +hotcb.schedule.<key>.params.<name>=..., drop one: +hotcb.schedule.<key>=null.",
            "# See docs/replay.md (big schedules).",
        ]
        body = schedule_yaml(
            file_node(trajectory, f"{CONFIG_SCHEME}hotcb/schedule/{entries.name}", data)
        )
    else:
        header += [
            "# it was applied at. Adjust one: hotcb.schedule.<key>.params.<name>=...,",
            "# drop one: ~hotcb.schedule.<key>. See docs/replay.md.",
        ]
        body = schedule_yaml(trajectory)
    if command:
        header.append(f"# Replay: {command}")
    _write_new(path, ("\n".join(header) + "\n" + body).encode("utf-8"), force=force)
    _write_new(callbacks_path, text.encode("utf-8"), force=force)
    return ExportResult(
        path=callbacks_path,
        text=text,
        next_command=command,
        schedule_path=path,
        schedule_entries=len(trajectory),
    )


_SCHEDULE_OVERRIDE = re.compile(r"^(\+\+|\+|~)?hotcb([./]schedule\b|\.schedule\.)")
_RUN_DIR_OVERRIDE = re.compile(r"^(\+\+|\+)?hydra\.(run|sweep)\.dir=")


def _replay_command(run: RunDir, launch: dict[str, Any], option: str) -> str | None:
    """The run's own command (its overrides, but not its run dir nor an earlier schedule)
    plus ``hotcb/schedule=<option>`` (with ``+`` unless the app's defaults list has the
    group)."""
    argv = launch.get("argv") or []
    if not argv:
        return None
    script = Path(argv[0])
    if not script.is_absolute():
        script = Path(launch.get("cwd") or os.getcwd()) / script
    try:
        shown = os.path.relpath(script)
    except ValueError:
        shown = str(script)
    if shown.startswith("../../.."):
        shown = str(script)
    kept = [
        o
        for o in launch.get("overrides") or []
        if not _SCHEDULE_OVERRIDE.match(o) and not _RUN_DIR_OVERRIDE.match(o)
    ]
    plus = "" if _has_schedule_default(run) else "+"
    parts = ["python", shown, *kept, f"{plus}hotcb/schedule={option}"]
    return " ".join(shlex.quote(p) for p in parts)


def _has_schedule_default(run: RunDir) -> bool:
    """True if the run's defaults list chose a ``hotcb/schedule`` option itself."""
    try:
        doc = yaml.safe_load((run.path / ".hydra" / "hydra.yaml").read_text(encoding="utf-8"))
        choices = doc["hydra"]["runtime"]["choices"]
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return False
    overrides = [o for o in (doc["hydra"].get("overrides", {}).get("task") or [])]
    chosen_here = any(str(o).startswith("+hotcb/schedule=") for o in overrides)
    return isinstance(choices, dict) and "hotcb/schedule" in choices and not chosen_here


def _write_new(path: Path, data: bytes, *, force: bool) -> None:
    """Write ``path`` (mode 0600, its new parent dirs 0700): a new file, or with ``force``
    an atomic replacement (a symlink there is replaced, never written through)."""
    try:
        make_private_dirs(path.parent)
        write_private(path, data, replace=force)
    except FileExistsError:
        raise ExportError("already exists; pass --force to overwrite it", path=path) from None
    except OSError as exc:
        raise ExportError(f"cannot write it: {exc.strerror or exc}", path=path) from None
