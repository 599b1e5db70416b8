"""``HotKernel(log_path=...)``: hotcb's log, also appended to a file.

Every message of the ``hotcb`` logger (and ``hotcb.callbacks``: what built-in callbacks
print when the loop passes no ``env["log"]``) from INFO up is appended to the file, one
line per message: the ops applied, failures, warnings. Useful on a remote machine whose
console nobody watches. The file is opened as a regular file without following a symlink
(mode 0600 when created). What reached the console and other handlers before stays as it
was: when the logger passed only WARNING and above, the INFO lines go to the file only.

Example:
    >>> import logging, os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "hotcb.log")
    >>> sink = LogFile(path)
    >>> logging.getLogger("hotcb").info("hotcb: set hb applied")
    >>> sink.close()
    >>> open(path).read().split(" ", 2)[2]
    'INFO hotcb: set hb applied\\n'
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from hotcb.files import FILE_MODE, open_regular
from hotcb.trust import make_private_dirs

__all__ = ["LogFile"]

_FORMAT = "%(asctime)s %(levelname)s %(message)s"


class _Onward(logging.Handler):
    """Hands the records that passed before (``level`` and up) on to the parent loggers'
    handlers, as propagation did."""

    def __init__(self, logger: logging.Logger, level: int) -> None:
        super().__init__(level)
        self.logger = logger

    def emit(self, record: logging.LogRecord) -> None:
        if self.logger.parent is not None:
            self.logger.parent.callHandlers(record)


class LogFile:
    """Appends the ``hotcb`` logger's messages (INFO and up) to ``path`` until :meth:`close`.

    Raises ``OSError`` (:class:`~hotcb.files.NotRegularFileError` for a symlink, FIFO, ...)
    if the file cannot be opened for appending.
    """

    def __init__(self, path: str | os.PathLike[str], logger: str = "hotcb") -> None:
        self.path = Path(path).expanduser().absolute()
        make_private_dirs(self.path.parent)
        fd = open_regular(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, FILE_MODE)
        self._stream = os.fdopen(fd, "a", encoding="utf-8", buffering=1)
        self.handler = logging.StreamHandler(self._stream)
        self.handler.setLevel(logging.INFO)
        self.handler.setFormatter(logging.Formatter(_FORMAT))
        self._logger = logging.getLogger(logger)
        self._logger.addHandler(self.handler)
        self._restore: tuple[int, bool, _Onward] | None = None
        passed = self._logger.getEffectiveLevel()
        if passed > logging.INFO:  # let INFO through to the file, and to nothing else
            onward = _Onward(self._logger, passed)
            self._restore = (self._logger.level, self._logger.propagate, onward)
            self._logger.setLevel(logging.INFO)
            self._logger.propagate = False
            self._logger.addHandler(onward)

    def close(self) -> None:
        """Stop writing to the file and close it; the logger is as it was before."""
        if self._restore is not None:
            level, propagate, onward = self._restore
            self._logger.removeHandler(onward)
            self._logger.setLevel(level)
            self._logger.propagate = propagate
            self._restore = None
        self._logger.removeHandler(self.handler)
        self.handler.close()
        self._stream.close()
