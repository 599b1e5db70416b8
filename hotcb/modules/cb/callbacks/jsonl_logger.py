"""``jsonl_logger``: selected scalars, one JSON object per line, in the run dir.

Every ``every`` steps at ``train_step_end`` (and at every ``val_end``) it appends
``{"step", "epoch", "event", "loss", "lr", <keys>...}`` to ``path``: ``loss`` from the env,
``lr`` from the first param group of ``env["optimizer"]``, plus every env key named in
``keys`` (tensors become numbers; missing keys are left out). A relative ``path`` is
inside ``env["run_dir"]``; a path that leads outside the run dir is refused.

Hot parameters:
    every (int >= 1), keys (list of env keys).

Example:
    >>> import json, tempfile, os
    >>> run = tempfile.mkdtemp()
    >>> cb = JsonlLoggerCallback(every=1, keys=["val_loss"])
    >>> cb.handle("train_step_end", {"step": 1, "epoch": 0, "loss": 0.5, "val_loss": 0.7, "run_dir": run})
    >>> cb.close()
    >>> json.loads(open(os.path.join(run, "metrics.jsonl")).readline())
    {'step': 1, 'epoch': 0, 'event': 'train_step_end', 'loss': 0.5, 'val_loss': 0.7}
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import IO, Any

from hotcb.files import FILE_MODE
from hotcb.hotparams import HotParam
from hotcb.ledger import json_default
from hotcb.modules.cb.params import check_known, positive_int, str_list
from hotcb.scalar import to_scalar

__all__ = ["JsonlLoggerCallback"]


class JsonlLoggerCallback:
    """Appends selected env scalars to a JSONL file in the run dir."""

    #: what `hotcb cb set` accepts (see hotcb.hotparams)
    hot_params = (
        HotParam("every", int, 1, "write a line every N steps (and at every val_end)", ge=1),
        HotParam("keys", "list[str]", [], "env keys written besides loss and lr"),
    )

    rank_zero_only = True
    events = ("train_step_end", "val_end")

    def __init__(
        self,
        id: str = "jsonl_logger",
        every: int = 1,
        keys: list[str] | None = None,
        path: str = "metrics.jsonl",
    ) -> None:
        self.id = id
        self.every = positive_int("every", every)
        self.keys = str_list("keys", keys or [])
        if not isinstance(path, str) or not path:
            raise ValueError(f"path must be a file name or path inside the run dir, got {path!r}")
        self.path = path
        self._file: IO[str] | None = None
        self.written = 0

    def set_params(self, **kwargs: Any) -> None:
        check_known("jsonl_logger", kwargs, [p.name for p in self.hot_params])
        every = positive_int("every", kwargs.get("every", self.every))
        keys = str_list("keys", kwargs.get("keys", self.keys))
        self.every, self.keys = every, keys

    def _open(self, env: dict[str, Any]) -> IO[str]:
        if self._file is None:
            base = Path(env.get("run_dir") or os.getcwd()).resolve()
            target = (base / self.path).resolve()
            if env.get("run_dir") is not None and not target.is_relative_to(base):
                raise ValueError(
                    f"jsonl_logger path {self.path!r} leads outside the run dir {base}"
                )
            target.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, FILE_MODE)
            self._file = os.fdopen(fd, "a", encoding="utf-8")
        return self._file

    def handle(self, event: str, env: dict[str, Any]) -> None:
        if event == "train_step_end":
            if env.get("step", 0) % self.every:
                return
        elif event != "val_end":
            return
        record: dict[str, Any] = {
            "step": env.get("step"),
            "epoch": env.get("epoch"),
            "event": event,
        }
        if "loss" in env:
            record["loss"] = to_scalar(env["loss"])
        optimizer = env.get("optimizer")
        if optimizer is not None and optimizer.param_groups:
            record["lr"] = float(optimizer.param_groups[0]["lr"])
        for key in self.keys:
            if key in env:
                record[key] = to_scalar(env[key])
        fh = self._open(env)
        fh.write(json.dumps(record, default=json_default) + "\n")
        fh.flush()
        self.written += 1

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
