"""The app a run came from, seen through Hydra: which names the ``hotcb/callbacks`` group
already has, and the command that starts the next run from an exported option.

``hotcb export-config`` (the group form) writes a new option of the app's ``hotcb/callbacks``
group and prints the command for the next run. Both are decided by Hydra itself, from the
run's config dir, config name and overrides (``.hydra/`` / ``hotcb.launch.json``):

* :meth:`HydraApp.refuse_taken_name`: a name that an option of the group already has
  anywhere on the app's search path (hotcb's built-ins such as ``timing`` included, and the
  app's ``hydra.searchpath``) is refused, because the new file would shadow it for every
  later run. Only the app's own file of that name may be replaced, with ``force``.
* :meth:`HydraApp.next_command`: the command is composed with Hydra's compose API before it
  is printed, and printed only if the composed ``hotcb.callbacks`` is exactly what was
  exported. ``hotcb/callbacks=NAME`` or ``+hotcb/callbacks=NAME`` (when the app's defaults
  list has no ``hotcb/callbacks`` entry), whichever composes to it; if neither does, the
  reason is returned instead of a command that Hydra would reject or that would start
  something else.

Hydra is imported when an :class:`HydraApp` is opened, never at import time.

Example:
    >>> import pathlib, tempfile
    >>> conf = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (conf / "config.yaml").write_text("steps: 3" + chr(10))
    >>> with HydraApp(conf, "config") as app:
    ...     app.refuse_taken_name("timing")
    Traceback (most recent call last):
    ...
    hotcb.hydra.nextrun.NameTaken: option name 'timing' is taken: hotcb/callbacks/timing is already an option on the app's search path (pkg://hotcb.conf); an export by that name would shadow it for every later run. Choose another --name
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from hotcb.errors import HotcbError

__all__ = ["GROUP", "HydraApp", "NameTaken", "NextCommand", "one_line"]

#: The config group hotcb's options live in.
GROUP = "hotcb/callbacks"


class NameTaken(HotcbError):
    """An option name the group already has on the app's search path."""


@dataclass(frozen=True)
class NextCommand:
    """The composed next command (``command``), or why there is none (``problem``)."""

    command: str | None
    problem: str | None


class HydraApp:
    """Hydra initialized on the app's primary config dir (a context manager).

    Args:
        config_dir: the app's primary config dir (absolute).
        config_name: its primary config (``config``); None: none.
        overrides: the run's task overrides (they may change the search path).
        version_base: the app's ``version_base`` (from the run's ``.hydra/hydra.yaml``).
    """

    def __init__(
        self,
        config_dir: str | os.PathLike[str],
        config_name: str | None,
        overrides: Sequence[str] = (),
        version_base: str | None = "1.3",
    ) -> None:
        self.config_dir = Path(config_dir)
        self.config_name = config_name
        self.overrides = list(overrides)
        self.version_base = version_base
        self._context: Any = None

    def __enter__(self) -> HydraApp:
        from hydra import initialize_config_dir

        self._context = initialize_config_dir(
            config_dir=str(self.config_dir), version_base=self.version_base, job_name="hotcb"
        )
        self._context.__enter__()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        context, self._context = self._context, None
        if context is not None:
            context.__exit__(kind, exc, tb)

    def _sources(self) -> list[Any]:
        """The config sources of the app's search path, its ``hydra.searchpath`` included."""
        from hydra.core.global_hydra import GlobalHydra

        loader: Any = GlobalHydra.instance().config_loader()
        kept = [o for o in self.overrides if o.startswith("hydra.searchpath")]
        try:  # the search path as a compose of this config sees it (hydra-core 1.3)
            _, repo = loader._parse_overrides_and_create_caching_repo(self.config_name, kept)
            return list(repo.get_sources())
        except Exception:
            return list(loader.get_sources())

    def refuse_taken_name(self, name: str) -> None:
        """Raise :class:`NameTaken` if ``name`` is an option of the group anywhere on the
        search path but in the app's own config dir (whose file of that name the writer
        replaces only with ``--force``)."""
        config = f"{GROUP}/{name}"
        for source in self._sources():
            try:
                found = source.is_config(config)
            except Exception:
                continue
            if not found or (source.provider == "main" and _same_dir(source.path, self.config_dir)):
                continue
            raise NameTaken(
                f"option name {name!r} is taken: {config} is already an option on the app's "
                f"search path ({source.scheme()}://{source.path}); an export by that name would "
                "shadow it for every later run. Choose another --name"
            )

    def next_command(
        self, script: str, kept: Sequence[str], name: str, exported: Mapping[str, Any], plus: bool
    ) -> NextCommand:
        """``python SCRIPT KEPT... [+]hotcb/callbacks=NAME``, composed before it is returned.

        ``plus``: the run selected the group with ``+`` (try that spelling first).
        """
        spellings = ["+", ""] if plus else ["", "+"]
        problems: list[str] = []
        for prefix in spellings:
            choice = f"{prefix}{GROUP}={name}"
            try:
                composed = self._composed_callbacks([*kept, choice])
            except Exception as exc:
                problems.append(f"{choice}: {one_line(exc)}")
                continue
            if composed == dict(exported):
                parts = ["python", script, *kept, choice]
                return NextCommand(" ".join(shlex.quote(p) for p in parts), None)
            problems.append(
                f"{choice}: composes to other callbacks than the export "
                f"({', '.join(sorted(composed)) or 'none'}; does the app's config set "
                "hotcb.callbacks itself?)"
            )
        return NextCommand(
            None,
            "no next command: Hydra does not compose the export as the next run's callbacks ("
            + "; ".join(problems)
            + ")",
        )

    def _composed_callbacks(self, overrides: list[str]) -> dict[str, Any]:
        from hydra import compose
        from omegaconf import OmegaConf

        cfg = compose(config_name=self.config_name, overrides=overrides)
        node = OmegaConf.select(cfg, "hotcb.callbacks")
        if node is None:
            return {}
        try:
            plain = OmegaConf.to_container(node, resolve=True)
        except Exception:  # ${hydra:...} needs a running app: compare unresolved
            plain = OmegaConf.to_container(node, resolve=False)
        return {str(k): v for k, v in plain.items()} if isinstance(plain, dict) else {}


def _same_dir(path: str, directory: Path) -> bool:
    try:
        return os.path.samefile(path.removeprefix("file://"), directory)
    except OSError:
        return False


def one_line(exc: BaseException) -> str:
    """An exception's message on one line (Hydra's span several), at most 300 characters.

    >>> one_line(ValueError("a" + chr(10) + "  b"))
    'a b'
    """
    text = " ".join(str(exc).split())
    return text[:300] or type(exc).__name__
