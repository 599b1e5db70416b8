"""``hotcb recipe export | import``: the reference's recipe files (see :mod:`hotcb.recipe`).

``export`` writes a run's trajectory as ``hotcb.recipe.jsonl``; ``import`` turns a recipe
into a ``hotcb/schedule`` option of an app's config dir (written as ``export-config
--schedule`` writes one, :func:`hotcb.hydra.export.write_schedule_option`, imported when
the command runs).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import click

from hotcb.cli.app import HotcbGroup, RunSelection, UserError, fail, pass_selection
from hotcb.errors import HotcbError
from hotcb.files import read_regular, write_private
from hotcb.rundir import SOURCES_DIR

# hotcb.recipe (and the ops, PyYAML, Hydra) are imported when a command runs: --help
# stays cheap (tests/cli/test_help_cost.py)

__all__ = ["recipe"]

_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_\-]*")


@click.group(cls=HotcbGroup)
def recipe() -> None:
    """Recipes (hotcb.recipe.jsonl, the reference's replay files): export a run's, import one."""


@recipe.command("export")
@click.option(
    "--out",
    default=None,
    metavar="FILE",
    help="Write the recipe here (default: hotcb.recipe.jsonl in the run dir, replaced).",
)
@click.option("--force", is_flag=True, help="Overwrite --out FILE if it exists.")
@click.option("--json", "as_json", is_flag=True, help="Print {path, entries} as JSON.")
@pass_selection
def recipe_export(selection: RunSelection, out: str | None, force: bool, as_json: bool) -> None:
    """Write the run's trajectory as a recipe: every op applied during the run (from the
    CLI, a schedule or the desired-state file), one JSON line each with the step and event
    it was applied at, in ledger order. A .py load names its captured source in
    source_capture. Its starting config is not in it (a replay starts from the same config).
    """
    from hotcb.ledger import read_ledger
    from hotcb.recipe import RECIPE_FILE, recipe_from_ledger, recipe_text

    rd = selection.run_dir(read_only=True)
    try:
        read = read_ledger(rd.ledger)
    except OSError as exc:
        fail(f"cannot read the ledger: {exc.strerror or exc}", path=rd.ledger)
    for warning in read.warnings():
        click.echo(f"hotcb: warning: {warning}", err=True)
    lines = recipe_from_ledger(read.entries)
    if not lines:
        fail("no op was applied during the run: the recipe would be empty", path=rd.ledger)
    path = Path(out).expanduser().absolute() if out else rd.path / RECIPE_FILE
    try:
        write_private(path, recipe_text(lines).encode("utf-8"), replace=force or out is None)
    except FileExistsError:
        fail("already exists; pass --force to overwrite it", path=path)
    except OSError as exc:
        fail(f"cannot write it: {exc.strerror or exc}", path=path)
    if as_json:
        click.echo(json.dumps({"path": str(path), "entries": len(lines)}))
    else:
        click.echo(f"wrote {path} ({len(lines)} ops)")


def _read_adjust(path: str) -> dict[str, Any]:
    """The adjust overlay file (YAML or JSON), its rules checked."""
    import yaml

    from hotcb.schedule_adjust import parse_rules

    try:
        data = yaml.safe_load(read_regular(path))
    except OSError as exc:
        fail(f"cannot read it: {exc.strerror or exc}", path=path)
    except yaml.YAMLError as exc:
        fail(f"not valid YAML: {str(exc).splitlines()[0]}", path=path)
    if not isinstance(data, dict):
        fail("an adjust overlay is a mapping (version: 1, patches: [...])", path=path)
    try:
        parse_rules(data)
    except HotcbError as exc:
        raise UserError(exc.message, path=path, key=exc.key) from None
    return data


@recipe.command("import")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option(
    "--name", default=None, help="Name of the hotcb/schedule option (default: from FILE)."
)
@click.option(
    "--config-dir",
    default="conf",
    show_default=True,
    metavar="DIR",
    help="The app's config dir (the one @hydra.main's config_path names).",
)
@click.option(
    "--adjust",
    default=None,
    metavar="OVERLAY",
    help="An adjust overlay (version: 1, patches: [...]) to put under hotcb.schedule.adjust.",
)
@click.option("--force", is_flag=True, help="Overwrite the option if it exists.")
@click.option("--json", "as_json", is_flag=True, help="Print {path, entries, override} as JSON.")
def recipe_import(
    file: str,
    name: str | None,
    config_dir: str,
    adjust: str | None,
    force: bool,
    as_json: bool,
) -> None:
    """Turn the recipe FILE into the option <config-dir>/hotcb/schedule/<name>.yaml, which a
    run replays with +hotcb/schedule=<name>. A .py load whose captured source
    (source_capture, relative to FILE's dir) is there is loaded from a copy of it in
    <config-dir>/hotcb/sources/. Nothing is written when a line is invalid.
    """
    option = name or re.sub(r"[^A-Za-z0-9_]+", "_", Path(file).name.removesuffix(".jsonl"))
    if not _NAME_RE.fullmatch(option):
        fail(f"invalid name {option!r}: use letters, digits, '_' or '-' (--name NAME)")
    try:
        text = read_regular(file).decode("utf-8")
    except OSError as exc:
        fail(f"cannot read it: {exc.strerror or exc}", path=file)
    except UnicodeDecodeError:
        fail("not UTF-8 text: a recipe is JSON Lines", path=file)
    overlay = _read_adjust(adjust) if adjust else None
    conf = Path(config_dir).expanduser().absolute()
    if not conf.is_dir():
        fail("the config dir does not exist; pass --config-dir DIR", path=conf)
    from dataclasses import replace

    from hotcb.hydra.export import ExportError, write_schedule_option
    from hotcb.recipe import RecipeError, schedule_from_recipe

    copied: list[str] = []

    def source(capture: Any, target: Any) -> Any:
        return _captured_target(Path(file).absolute().parent, conf, capture, target, copied)

    try:
        schedule = schedule_from_recipe(text, path=file, source=source)
    except RecipeError as exc:
        raise UserError.from_error(exc) from None
    if overlay is not None:
        schedule = replace(schedule, adjust=overlay)
    path = conf / "hotcb" / "schedule" / f"{option}.yaml"
    override = f"+hotcb/schedule={option}"
    comments = [
        f"Imported by `hotcb recipe import` from {Path(file).absolute()}: {len(schedule)} ops."
    ]
    try:
        write_schedule_option(path, schedule, [*comments, f"Replay: add {override}"], force=force)
    except ExportError as exc:
        raise UserError.from_error(exc) from None
    if as_json:
        click.echo(json.dumps({"path": str(path), "entries": len(schedule), "override": override}))
        return
    click.echo(f"wrote {path} ({len(schedule)} scheduled ops)")
    click.echo(f"replay it: add {override} to the training command")


def _captured_target(base: Path, conf: Path, capture: Any, target: Any, copied: list[str]) -> Any:
    """The target of a line with a ``source_capture``: the captured file (relative to the
    recipe's dir) copied into ``conf/hotcb/sources/``, or ``target`` as written when it is
    not there (a warning says so)."""
    from hotcb.hydra.portable import SourceCopier, SourceCopyError

    sha = str(capture.get("sha256"))
    captured = base / str(capture.get("captured_path") or "")
    if captured.is_file() and captured.name == f"{sha}.py" and captured.parent.name == SOURCES_DIR:
        try:
            path = SourceCopier(captured.parent.parent, conf)(sha)
        except SourceCopyError as exc:
            click.echo(f"hotcb: warning: {exc}; the schedule loads {target.get('path')}", err=True)
            return target
        copied.append(path)
        return {**target, "path": path}
    click.echo(
        f"hotcb: warning: captured source {captured} not found; the schedule loads "
        f"{target.get('path')}",
        err=True,
    )
    return target
