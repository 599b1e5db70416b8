"""The ``hotcb`` group: its options, its errors and which run (or sweep) a command acts on.

Errors are click's own standalone handling with hotcb's contract: a user error is a
:class:`UserError` (a :class:`click.ClickException` and a :class:`~hotcb.errors.HotcbError`)
whose ``show`` prints ONE line, ``hotcb: error: ...``, on stderr and whose ``exit_code`` is 1.
Click's own usage errors (a missing argument, an unknown option or command) are turned into
one too by the group, with a pointer to the command's ``--help``. Ctrl-C prints
``hotcb: aborted`` (on a line of its own) and exits 1.

Example:
    >>> from click.testing import CliRunner
    >>> result = CliRunner().invoke(cli, ["--dir", "/nonexistent/run", "cb", "set", "hb", "every"])
    >>> result.exit_code, result.stderr
    (1, "hotcb: error: set: expected name=value, got 'every' (e.g. every=5)\\n")
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection
from pathlib import Path
from typing import IO, Any, NoReturn

import click

from hotcb import __version__
from hotcb.errors import HotcbError
from hotcb.rundir import RunDir
from hotcb.runs import RunNotFound, live_runs, resolve_run_dir

__all__ = [
    "Aborted",
    "HotcbGroup",
    "RunSelection",
    "UserError",
    "accept_run_options",
    "cli",
    "fail",
    "pass_selection",
]


class UserError(HotcbError, click.ClickException):  # type: ignore[misc]  # both set .message
    """A mistake the user can fix: shown as one line on stderr (``hotcb: error: ...``,
    with its location fields in front of the message), exit code 1."""

    exit_code = 1

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"hotcb: error: {self}", file=file, err=file is None)


class Aborted(click.ClickException):
    """Ctrl-C (or end of input): ``hotcb: aborted``, exit code 1."""

    exit_code = 1

    def __init__(self) -> None:
        super().__init__("aborted")

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo("hotcb: aborted", file=file, err=file is None)


def fail(message: str, **location: Any) -> NoReturn:
    """Stop the command with a :class:`UserError` (``location``: its path, line, key, target)."""
    raise UserError(message, **location)


def _usage_error(exc: click.UsageError) -> UserError:
    """Click's usage error as one line, pointing at the command's ``--help``."""
    hint = f" (see: {exc.ctx.command_path} --help)" if exc.ctx is not None else ""
    return UserError(f"{exc.format_message()}{hint}")


class HotcbGroup(click.Group):
    """A group whose usage errors are :class:`UserError` s (one line, exit 1) and whose
    subgroups are of this class too. Run without a command, it shows its help."""

    group_class = type  # `@group.group()` makes a HotcbGroup

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.UsageError as exc:  # the group's own options
            raise _usage_error(exc) from None

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args and self.no_args_is_help and not ctx.resilient_parsing:
            click.echo(ctx.get_help(), color=ctx.color)
            ctx.exit()
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:  # a subcommand's arguments, or an unknown command
            raise _usage_error(exc) from None
        except (KeyboardInterrupt, EOFError):
            click.echo(err=True)  # ends the line the terminal echoed ^C on
            raise Aborted() from None
        except click.Abort:
            raise Aborted() from None


class RunSelection:
    """Which run a command acts on: ``--dir``, ``--sweep``, ``--run``, or found (see
    :meth:`run_dir`). Given before the command (``hotcb --dir X status``) or after it
    (``hotcb status --dir X``, see :func:`accept_run_options`)."""

    def __init__(
        self, run_dir: str | None = None, sweep: str | None = None, run: str | None = None
    ) -> None:
        #: ``--dir`` as given (None: not given)
        self.explicit = run_dir
        #: ``--sweep`` as given (None: not given)
        self.sweep = sweep
        #: ``--run N|PID`` as given (None: not given)
        self.pick = run
        self.check()

    def check(self) -> None:
        """Refuse a choice that names the run twice over."""
        given = [
            name
            for name, value in (
                ("--dir", self.explicit),
                ("--sweep", self.sweep),
                ("--run", self.pick),
            )
            if value is not None
        ]
        if len(given) == 2:
            fail(f"give {given[0]} or {given[1]}, not both (they each name the run)")
        if len(given) > 2:
            fail("give one of --dir RUN_DIR, --sweep SWEEP_DIR or --run N")

    def set(self, name: str, value: str) -> None:
        """Take ``--dir`` / ``--sweep`` / ``--run`` given after the command."""
        attribute = {"dir": "explicit", "sweep": "sweep", "run": "pick"}[name]
        before = getattr(self, attribute)
        if before is not None and before != value:
            fail(f"--{name} given twice ({before!r} and {value!r}); give it once")
        setattr(self, attribute, value)
        self.check()

    @property
    def chosen(self) -> bool:
        """True if the user named the run: ``--dir``, ``--run`` or ``$HOTCB_RUN_DIR``."""
        return (
            self.explicit is not None
            or self.pick is not None
            or bool(os.environ.get("HOTCB_RUN_DIR"))
        )

    def sweep_dir(self) -> Path | None:
        """The sweep to act on: ``--sweep DIR`` (``latest``: this user's latest sweep)."""
        if self.sweep is None:
            return None
        from hotcb.sweep import SWEEP_MARKER, latest_sweep

        if self.sweep == "latest":
            found = latest_sweep()
            if found is None:
                fail("no sweep found: the latest hotcb run was not a Hydra multirun job")
            return found
        path = Path(self.sweep).expanduser().resolve()
        if not path.is_dir():
            fail("sweep dir does not exist", path=path)
        if not (path / SWEEP_MARKER).is_file():
            fail(f"not a Hydra sweep dir (no {SWEEP_MARKER}); give the multirun dir", path=path)
        return path

    def run_dir(self, *, read_only: bool) -> RunDir:
        """The run dir: ``--dir``, else ``$HOTCB_RUN_DIR``, else the single live run (the
        most recent run for a ``read_only`` command); a :class:`UserError` if none is."""
        try:
            path = resolve_run_dir(self.explicit, read_only=read_only, pick=self.pick)
        except RunNotFound as exc:
            from hotcb.sweep import latest_sweep

            sweep = latest_sweep() if len(live_runs()) > 1 else None
            hint = f"; they are jobs of one sweep: use --sweep {sweep}" if sweep else ""
            fail(f"{exc.message}{hint}", **exc.location)
        if not path.is_dir():
            fail("run dir does not exist", path=path)
        return RunDir(path)


pass_selection = click.make_pass_decorator(RunSelection)

_DIR_HELP = (
    "The run directory. Default: $HOTCB_RUN_DIR, else the live run of this user "
    "(read-only commands fall back to the ended runs: started here first, then the last active)."
)
_SWEEP_HELP = (
    "A Hydra multirun dir (or 'latest'): `cb` commands go to every live job of the "
    "sweep; `status` lists its jobs."
)
_RUN_HELP = "A run by its number in `hotcb runs`, or by its pid."


def _store(name: str) -> Callable[[click.Context, click.Parameter, Any], None]:
    def store(ctx: click.Context, param: click.Parameter, value: Any) -> None:
        if value is not None and not ctx.resilient_parsing:
            selection = ctx.find_object(RunSelection)
            if selection is not None:
                selection.set(name, value)

    return store


def accept_run_options(group: click.Group, skip: Collection[str] = ("runs",)) -> None:
    """Let every command below ``group`` (but ``skip``) also take ``--dir``, ``--sweep``
    and ``--run`` after its name (``hotcb status --dir X``): the same as before it."""
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            accept_run_options(command, skip)
            continue
        if name in skip or any(p.name == "run_dir_after" for p in command.params):
            continue
        for param_name, opts, metavar, help_text in (
            ("run_dir_after", ("--dir",), "RUN_DIR", _DIR_HELP),
            ("sweep_after", ("--sweep",), "SWEEP_DIR", _SWEEP_HELP),
            ("run_after", ("--run",), "N|PID", _RUN_HELP),
        ):
            command.params.append(
                click.Option(
                    [*opts, param_name],
                    metavar=metavar,
                    help=help_text,
                    expose_value=False,
                    callback=_store(opts[0][2:]),
                )
            )


@click.group(cls=HotcbGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--dir", "run_dir", metavar="RUN_DIR", help=_DIR_HELP)
@click.option("--sweep", metavar="SWEEP_DIR", help=_SWEEP_HELP)
@click.option("--run", "run", metavar="N|PID", help=_RUN_HELP)
@click.version_option(__version__, prog_name="hotcb")  # the dist is hydra-hotcb
@click.pass_context
def cli(ctx: click.Context, run_dir: str | None, sweep: str | None, run: str | None) -> None:
    """Change a live training run: load, tune, disable and unload callbacks while it trains.

    \b
    hotcb cb set heartbeat every=5
    hotcb cb load feat_viz --file viz.py --symbol FeatureViz --init every=50
    hotcb cb disable timing
    hotcb status
    hotcb log --follow
    hotcb export-config
    hotcb --sweep multirun/2026-11-25/12-00-00 cb set heartbeat every=5
    hotcb undo
    """
    ctx.obj = RunSelection(run_dir, sweep, run)
