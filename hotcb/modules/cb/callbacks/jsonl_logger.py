"""``jsonl_logger``: selected scalars, one JSON object per line, in the run dir.

Every ``every`` steps at ``train_step_end`` (and at every ``val_end``) it appends
``{"step", "epoch", "event", "loss", "lr", <keys>...}`` to ``path``: ``loss`` from the env,
``lr`` from the first param group of ``env["optimizer"]``, plus every env key named in
``keys`` (tensors become numbers; missing keys are left out; a dotted key such as
``metrics.eval_loss`` reads into dicts and attributes), and for every env path in
``tensor_paths`` its statistics under ``"<path>.stats"``. A relative ``path`` is inside
``env["run_dir"]``; a path that leads outside the run dir is refused.

The reference project's names work too: ``JSONLLoggerCallback`` (the same class),
``out_path`` for ``path`` and ``scalars`` for ``keys``.

Hot parameters:
    every (int >= 1), keys / scalars (list of env keys), tensor_paths (list of env paths),
    path / out_path (changing it closes the file; the next record goes to the new one).

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
from hotcb.modules.cb.callbacks.env_path import MISSING, lookup
from hotcb.modules.cb.params import check_known, positive_int, renamed, str_list
from hotcb.scalar import to_scalar

__all__ = ["JSONLLoggerCallback", "JsonlLoggerCallback"]


def _path(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"path must be a file name or path inside the run dir, got {value!r}")
    return value


class JsonlLoggerCallback:
    """Appends selected env scalars to a JSONL file in the run dir."""

    #: what `hotcb cb set` accepts (see hotcb.hotparams)
    hot_params = (
        HotParam("every", int, 1, "write a line every N steps (and at every val_end)", ge=1),
        HotParam(
            "keys", "list[str]", [], "env keys written besides loss and lr", aliases=("scalars",)
        ),
        HotParam("tensor_paths", "list[str]", [], "env paths of tensors summarised per line"),
        HotParam(
            "path",
            str,
            "metrics.jsonl",
            "the file, relative to the run dir (a change starts the new file)",
            nonempty=True,
            aliases=("out_path",),
        ),
    )

    rank_zero_only = True
    events = ("train_step_end", "val_end")

    def __init__(
        self,
        id: str = "jsonl_logger",
        every: int = 1,
        keys: list[str] | None = None,
        path: str | None = None,
        tensor_paths: list[str] | None = None,
        out_path: str | None = None,
        scalars: list[str] | None = None,
    ) -> None:
        if path is not None and out_path is not None:
            raise TypeError("out_path is another name of path: give one of them")
        if keys is not None and scalars is not None:
            raise TypeError("scalars is another name of keys: give one of them")
        self.id = id
        self.every = positive_int("every", every)
        self.keys = str_list("keys", keys if keys is not None else scalars or [])
        self.tensor_paths = str_list("tensor_paths", tensor_paths or [])
        self.path = _path(path if path is not None else out_path or "metrics.jsonl")
        self._file: IO[str] | None = None
        self.written = 0

    def set_params(self, **kwargs: Any) -> None:
        kwargs = renamed(renamed(kwargs, "out_path", "path"), "scalars", "keys")
        check_known("jsonl_logger", kwargs, [p.name for p in self.hot_params])
        every = positive_int("every", kwargs.get("every", self.every))
        keys = str_list("keys", kwargs.get("keys", self.keys))
        paths = str_list("tensor_paths", kwargs.get("tensor_paths", self.tensor_paths))
        path = _path(kwargs.get("path", self.path))
        self.every, self.keys, self.tensor_paths = every, keys, paths
        if path != self.path:
            self.close()
            self.path = path

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
            value = lookup(env, key)
            if value is not MISSING:
                record[key] = to_scalar(value)
        for key in self.tensor_paths:
            value = lookup(env, key)
            if hasattr(value, "detach"):
                from hotcb.modules.cb.callbacks.tensor_stats import tensor_summary

                record[f"{key}.stats"] = tensor_summary(value)
        fh = self._open(env)
        fh.write(json.dumps(record, default=json_default) + "\n")
        fh.flush()
        self.written += 1

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


#: The reference project's name of this callback (the same class).
JSONLLoggerCallback = JsonlLoggerCallback
