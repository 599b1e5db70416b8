"""Captured sources that travel with the app's config: ``conf/hotcb/sources/<sha256>.py``.

An exported option (``conf/hotcb/callbacks/<name>.yaml``, ``conf/hotcb/schedule/<name>.yaml``)
that loads a ``.py`` callback names its source ``config://hotcb/sources/<sha256>.py``:
relative to the app's config dir, so ``git add conf/`` carries both, and a run from a
clone of the app at another path (with ``outputs/`` deleted) loads the same bytes. The
loader still checks that the file hashes to its name.

Example:
    >>> import hashlib, tempfile
    >>> from pathlib import Path
    >>> run, conf = Path(tempfile.mkdtemp()), Path(tempfile.mkdtemp())
    >>> data = b"class V: ...\\n"
    >>> sha = hashlib.sha256(data).hexdigest()
    >>> (run / "hotcb.sources").mkdir()
    >>> _ = (run / "hotcb.sources" / f"{sha}.py").write_bytes(data)
    >>> copy = SourceCopier(run, conf)
    >>> copy(sha) == f"config://hotcb/sources/{sha}.py"
    True
    >>> (conf / "hotcb" / "sources" / f"{sha}.py").read_bytes() == data
    True
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from hotcb.errors import HotcbError
from hotcb.files import read_regular, write_private
from hotcb.hydra.hydrate import CONFIG_SCHEME
from hotcb.modules.cb.loader import is_sha256, sha256_bytes
from hotcb.rundir import RunDir
from hotcb.trust import make_private_dirs

__all__ = ["SOURCES_DIR", "SourceCopier", "SourceCopyError"]

#: Where, inside the app's config dir, exported sources go.
SOURCES_DIR = "hotcb/sources"


class SourceCopyError(HotcbError):
    """A captured source cannot be copied into the config dir (``path`` names it)."""


class SourceCopier:
    """Copies a run's captured sources into ``<config_dir>/hotcb/sources/`` on demand;
    calling it with a sha256 returns the ``config://`` path an option names it by.
    ``config_dir``: the dir, or a function that finds it (called at the first copy)."""

    def __init__(
        self,
        run_dir: str | os.PathLike[str],
        config_dir: str | os.PathLike[str] | Callable[[], Path],
    ) -> None:
        self.run = RunDir(run_dir)
        self._config_dir = config_dir
        #: the files this copier wrote or found in place
        self.copied: list[Path] = []

    @property
    def directory(self) -> Path:
        """``<config_dir>/hotcb/sources``."""
        found = self._config_dir
        if callable(found):
            found = self._config_dir = found()
        return Path(found) / SOURCES_DIR

    def __call__(self, sha256: str) -> str:
        if not is_sha256(sha256):
            raise SourceCopyError(f"not a sha256: {sha256!r}", path=self.run.ledger)
        captured = self.run.source_file(sha256)
        target = self.directory / f"{sha256}.py"
        try:
            data = read_regular(captured)
        except OSError as exc:
            raise SourceCopyError(
                f"the captured source is gone ({exc.strerror or exc}): the option could not "
                "load it",
                path=captured,
            ) from None
        if sha256_bytes(data) != sha256:
            raise SourceCopyError(
                "the captured source does not hash to its name: it was modified after capture",
                path=captured,
            )
        try:
            make_private_dirs(self.directory)
            write_private(target, data, replace=False)
        except FileExistsError:
            pass  # named by its hash: the same bytes (the loader checks it again)
        except OSError as exc:
            raise SourceCopyError(f"cannot write it: {exc.strerror or exc}", path=target) from None
        self.copied.append(target)
        return f"{CONFIG_SCHEME}{SOURCES_DIR}/{sha256}.py"
