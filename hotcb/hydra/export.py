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
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from hotcb.errors import HotcbError
from hotcb.files import write_private
from hotcb.hydra.adopted import adopted_overrides, merge_overrides, split_adopted
from hotcb.hydra.deltas import DeltaError, baseline_nodes, compute_deltas, final_nodes
from hotcb.hydra.hydrate import CONFIG_SCHEME
from hotcb.hydra.module_overrides import module_overrides
from hotcb.hydra.nextrun import HydraApp, NameTaken, one_line
from hotcb.hydra.portable import SourceCopier, SourceCopyError
from hotcb.ledger import read_ledger
from hotcb.replay import schedule_yaml
from hotcb.rundir import RunDir, read_launch
from hotcb.schedule import Schedule, schedule_from_ledger
from hotcb.schedule_file import ENTRIES_SUFFIX, INLINE_MAX, entries_jsonl, file_node
from hotcb.state import read_state
from hotcb.trust import check_control_file, foreign_owner, make_private_dirs

__all__ = [
    "NOTHING_CHANGED",
    "ExportError",
    "ExportResult",
    "export_config",
    "write_schedule_option",
]

_HOTCB_OVERRIDE = re.compile(r"^(\+\+|\+|~)?hotcb[./]callbacks")
# checked with fullmatch: `$` would also accept a name that ends in a newline
_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_\-]*")


class ExportError(HotcbError):
    """The run cannot be exported as asked; the message says why and what to do, ``path``
    which file."""


#: What an export of a run without a live change says (and it writes nothing).
NOTHING_CHANGED = "nothing changed since the run's config"


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_config` produced."""

    #: The file written (None for ``fmt="overrides"``, and when nothing changed).
    path: Path | None
    #: The YAML written, or the override line ("" when nothing changed).
    text: str
    #: The command that starts the next run from the export, composed with Hydra first
    #: (None when it cannot be given: ``problem`` says why).
    next_command: str | None
    #: False when the run ended with the callbacks it started with (nothing is written).
    changed: bool = True
    #: Why there is no next command (None when there is one, or none was asked for).
    problem: str | None = None
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


def _hydra_doc(run: RunDir) -> dict[str, Any]:
    """The ``hydra`` node of the run's ``.hydra/hydra.yaml`` ({} if there is none)."""
    try:
        doc = yaml.safe_load(_trusted(run.path / ".hydra" / "hydra.yaml").read_text("utf-8"))
    except (OSError, yaml.YAMLError):
        return {}
    node = doc.get("hydra") if isinstance(doc, dict) else None
    return node if isinstance(node, dict) else {}


def _config_dir(run: RunDir, launch: dict[str, Any], hydra: dict[str, Any]) -> Path:
    sources = (hydra.get("runtime") or {}).get("config_sources") or []
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
        path=run.path / ".hydra" / "hydra.yaml",
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
    return _config_dir(run, _launch(run), _hydra_doc(run))


def _default_name(run: RunDir) -> str:
    raw = f"{run.path.parent.name}_{run.path.name}"
    name = re.sub(r"[^A-Za-z0-9_]+", "_", raw).strip("_")
    return f"live_{name}" if name else "live"


def _script(launch: dict[str, Any]) -> str | None:
    """The training script as the next command shows it (relative when near), or None."""
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
    return str(script) if shown.startswith("../../..") else shown


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

    ``force``: overwrite the file if it exists (else that is an error). A run that ended
    with the callbacks it started with exports nothing (``changed`` is False).
    ``schedule``: also write the run's trajectory as a ``hotcb/schedule`` option (group
    form, no ``out``).
    """
    run = RunDir(run_dir)
    if fmt not in ("group", "overrides"):
        raise ExportError(f"unknown format {fmt!r}: use group or overrides")
    if schedule and (fmt != "group" or out is not None):
        raise ExportError(
            "--schedule writes a hotcb/schedule option into the app's config dir: "
            "use it without --out and --format overrides"
        )
    try:
        base, _ = split_adopted(baseline_nodes(run.path))
        plain, adopted = split_adopted(final_nodes(run.path))
        # overrides of the app's own config: adopted trainer callbacks' nodes, and the keys
        # kernel modules (opt, loss) change (hotcb.hydra.module_overrides)
        app_changes = adopted_overrides(adopted) + module_overrides(run.path)
        deltas = compute_deltas(base, plain) + app_changes
    except DeltaError as exc:
        raise ExportError.from_error(exc) from None
    if name is not None and not _NAME_RE.fullmatch(name):
        raise ExportError(f"invalid name {name!r}: use letters, digits, '_' or '-'")
    if not deltas and not schedule:
        return ExportResult(path=None, text="", next_command=None, changed=False)
    if fmt == "overrides":
        line = " ".join(shlex.quote(d) for d in deltas)
        return ExportResult(path=None, text=line, next_command=None)
    if out is not None:
        text = _option_text(run, plain)
        path = Path(out).expanduser().absolute()  # a symlink there is replaced, not followed
        _write_new(path, text.encode("utf-8"), force=force)
        return ExportResult(path=path, text=text, next_command=None)
    copier = SourceCopier(run.path, lambda: _own_config_dir(run))
    try:
        nodes, _ = split_adopted(final_nodes(run.path, source_path=copier))
    except (DeltaError, SourceCopyError) as exc:
        raise ExportError.from_error(exc) from None
    _own_config_dir(run)  # refuses another user's run before anything is written
    option = name or _default_name(run)
    trajectory = _trajectory(run, copier) if schedule else None
    text = _option_text(run, nodes)
    result = _export_option(run, option, nodes, text, force, app_changes)
    if trajectory is not None:
        return _export_schedule(run, trajectory, option, result, force=force)
    return result


def _option_text(run: RunDir, nodes: dict[str, Any], command: str | None = None) -> str:
    state = read_state(run.state) or {}
    header = [
        "# @package hotcb.callbacks",
        f"# Exported by `hotcb export-config` from {run.path}",
        f"# (step {state.get('step')}, {time.strftime('%Y-%m-%d %H:%M:%S')}).",
    ]
    if command:
        header.append(f"# Next run: {command}")
    body = yaml.safe_dump(nodes, sort_keys=False, default_flow_style=False) if nodes else "{}\n"
    return "\n".join(header) + "\n" + body


def _export_option(
    run: RunDir,
    option: str,
    nodes: dict[str, Any],
    text: str,
    force: bool,
    extra: list[str],
) -> ExportResult:
    """Write ``option`` into the app's ``hotcb/callbacks`` group, after Hydra says the name
    is free, and compose the next command with Hydra (:mod:`hotcb.hydra.nextrun`); the
    next command also carries the ``extra`` overrides (replacing the run's own for the
    same keys)."""
    launch = _launch(run)
    hydra = _hydra_doc(run)
    conf = _config_dir(run, launch, hydra)
    path = conf / "hotcb" / "callbacks" / f"{option}.yaml"
    job = hydra.get("job") or {}
    overrides = (hydra.get("overrides") or {}).get("task") or launch.get("overrides") or []
    overrides = [str(o) for o in overrides]
    kept = merge_overrides([o for o in overrides if not _HOTCB_OVERRIDE.match(o)], extra)
    plus = any(o.startswith("+hotcb/callbacks") for o in overrides)
    script = _script(launch)
    app = HydraApp(
        conf,
        job.get("config_name") or launch.get("config_name"),
        overrides,
        version_base=str((hydra.get("runtime") or {}).get("version_base") or "1.3"),
    )
    try:
        app.__enter__()
    except Exception as exc:
        raise ExportError(
            f"Hydra cannot open the app's config dir ({one_line(exc)}), so the option name "
            "cannot be checked; write the export elsewhere with --out FILE",
            path=conf,
        ) from None
    try:
        try:
            app.refuse_taken_name(option)
        except NameTaken as exc:
            raise ExportError.from_error(exc) from None
        _write_new(path, text.encode("utf-8"), force=force)
        if script is None:
            return ExportResult(path=path, text=text, next_command=None)
        found = app.next_command(script, kept, option, nodes, plus)
    finally:
        app.__exit__(None, None, None)
    if found.command is not None:
        text = _option_text(run, nodes, found.command)
        _write_new(path, text.encode("utf-8"), force=True)
    return ExportResult(path=path, text=text, next_command=found.command, problem=found.problem)


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


def _trajectory(run: RunDir, copier: SourceCopier) -> Schedule:
    """The run's trajectory, every op applied during the run at its step and event (its
    ``.py`` sources copied beside the option). Raises :class:`ExportError` if it is empty."""
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
    return trajectory


def _export_schedule(
    run: RunDir, trajectory: Schedule, option: str, written: ExportResult, *, force: bool
) -> ExportResult:
    """Write the run's trajectory as ``hotcb/schedule/<option>`` (beside the callbacks
    option ``written``); the next command replays it from the run's own starting config."""
    path = _own_config_dir(run) / "hotcb" / "schedule" / f"{option}.yaml"
    command = _replay_command(run, _launch(run), option)
    comments = [
        f"The trajectory of {run.path}: {len(trajectory)} ops, each at the step and event",
        "it was applied at.",
    ]
    if command:
        comments.append(f"Replay: {command}")
    write_schedule_option(path, trajectory, comments, force=force)
    return replace(
        written, next_command=command, schedule_path=path, schedule_entries=len(trajectory)
    )


def write_schedule_option(
    path: Path, schedule: Schedule, comments: list[str], *, force: bool
) -> None:
    """Write ``schedule`` as the ``hotcb/schedule`` option ``path`` (``# @package
    hotcb.schedule``, then ``comments`` and how to adjust it, as ``#`` lines): a new file,
    mode 0600, or with ``force`` a replacement. Raises :class:`ExportError`.

    Over :data:`~hotcb.schedule_file.INLINE_MAX` entries (Hydra would take ~3 ms an entry
    to compose them), the entries go to ``<name>.entries.jsonl`` beside the option, which
    names it (``config://``) with its sha256 (see :mod:`hotcb.schedule_file`)."""
    if len(schedule) > INLINE_MAX:
        entries = path.with_name(path.stem + ENTRIES_SUFFIX)
        if not force and os.path.lexists(path):  # refused before its entries file is written
            raise ExportError("already exists; pass --force to overwrite it", path=path)
        data = entries_jsonl(schedule)
        _write_new(entries, data, force=force)
        how = [
            f"The entries are in {entries.name} (one a line). Adjust one:",
            "+hotcb.schedule.<key>.params.<name>=..., drop one: +hotcb.schedule.<key>=null,",
            "or add rules under hotcb.schedule.adjust. See docs/replay.md (big schedules).",
        ]
        relative = entries.relative_to(path.parents[2]).as_posix()  # <conf>/hotcb/schedule/
        body = schedule_yaml(file_node(schedule, f"{CONFIG_SCHEME}{relative}", data))
    else:
        how = [
            "Adjust one: hotcb.schedule.<key>.params.<name>=..., drop one: ~hotcb.schedule.<key>,",
            "or add rules under hotcb.schedule.adjust. See docs/replay.md.",
        ]
        body = schedule_yaml(schedule)
    header = ["# @package hotcb.schedule", *(f"# {line}" for line in [*comments, *how])]
    _write_new(path, ("\n".join(header) + "\n" + body).encode("utf-8"), force=force)


_SCHEDULE_OVERRIDE = re.compile(r"^(\+\+|\+|~)?hotcb([./]schedule\b|\.schedule\.)")
_RUN_DIR_OVERRIDE = re.compile(r"^(\+\+|\+)?hydra\.(run|sweep)\.dir=")


def _replay_command(run: RunDir, launch: dict[str, Any], option: str) -> str | None:
    """The run's own command (its overrides, but not its run dir nor an earlier schedule)
    plus ``hotcb/schedule=<option>`` (with ``+`` unless the app's defaults list has the
    group)."""
    script = _script(launch)
    if script is None:
        return None
    kept = [
        o
        for o in launch.get("overrides") or []
        if not _SCHEDULE_OVERRIDE.match(o) and not _RUN_DIR_OVERRIDE.match(o)
    ]
    plus = "" if _has_schedule_default(run) else "+"
    parts = ["python", script, *kept, f"{plus}hotcb/schedule={option}"]
    return " ".join(shlex.quote(p) for p in parts)


def _has_schedule_default(run: RunDir) -> bool:
    """True if the run's defaults list chose a ``hotcb/schedule`` option itself."""
    hydra = _hydra_doc(run)
    choices = (hydra.get("runtime") or {}).get("choices")
    overrides = (hydra.get("overrides") or {}).get("task") or []
    chosen_here = any(str(o).startswith("+hotcb/schedule=") for o in overrides)
    return isinstance(choices, dict) and "hotcb/schedule" in choices and not chosen_here
