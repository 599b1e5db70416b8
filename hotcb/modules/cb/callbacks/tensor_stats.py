"""``tensor_stats``: weight and activation statistics of selected modules.

For every submodule of ``env["model"]`` whose qualified name matches ``pattern`` (a
shell-style glob, ``fnmatch``: ``"*"``, ``"encoder.*"``, ``"*.fc?"``), every ``every``
steps: mean, std, min, max, fraction of zeros and fraction of non-finite values of its
own parameters (``weight``, ``bias``, ...) and of its output activation.

Activations are captured by forward hooks registered when the model is first seen.
A hook does nothing but check a flag except on the forward pass of a reporting step;
hooks are removed by ``close()`` (unload, replace, end of run) and re-registered when the
pattern changes. While the callback is disabled the hooks stay idle.

The reference project's way works too: ``paths``, env paths (``loss``, ``outputs.logits``,
dotted into dicts and attributes) whose values are summarised every ``every`` steps (a
plain number is logged as it is), and ``prefix``, put before every name in the log lines
and in ``last``. Without a ``pattern``, modules are watched (``"*"``) only when no
``paths`` are given.

Hot parameters:
    every (int >= 1), pattern (glob over module names, or null), paths (list of env
    paths), prefix (text).

Example:
    >>> import torch
    >>> model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ReLU())
    >>> cb = TensorStatsCallback(every=1, pattern="0")
    >>> env = {"step": 0, "model": model, "log": lambda m: None}
    >>> cb.handle("train_step_end", env)           # sees the model, arms for step 1
    >>> _ = model(torch.ones(3, 2)); env["step"] = 1
    >>> cb.handle("train_step_end", env)
    >>> sorted(cb.last["0"])
    ['activation', 'bias', 'weight']
    >>> cb.close(); len(model[0]._forward_hooks)
    0
    >>> cb = TensorStatsCallback(every=1, paths=["loss"], prefix="train/")
    >>> cb.handle("train_step_end", {"step": 1, "loss": 0.25, "log": print})
    [tensor_stats] step=1 train/loss value=0.25
"""

from __future__ import annotations

import fnmatch
from typing import Any

from hotcb.hotparams import HotParam
from hotcb.modules.cb.callbacks.emit import emit
from hotcb.modules.cb.callbacks.env_path import MISSING, lookup
from hotcb.modules.cb.params import check_known, glob_pattern, positive_int, str_list

__all__ = ["TensorStatsCallback", "tensor_summary"]


def tensor_summary(t: Any) -> dict[str, float]:
    """mean, std, min, max, zero_frac, nonfinite_frac of a tensor (over finite values for
    the moments)."""
    import torch

    with torch.no_grad():
        x = t.detach().float().reshape(-1)
        n = x.numel()
        if n == 0:
            return {}
        finite = torch.isfinite(x)
        nonfinite = float((~finite).sum()) / n
        values = x[finite]
        zero = float((x == 0).sum()) / n
        if values.numel() == 0:
            return {
                "mean": float("nan"),
                "std": float("nan"),
                "min": float("nan"),
                "max": float("nan"),
                "zero_frac": zero,
                "nonfinite_frac": nonfinite,
            }
        return {
            "mean": float(values.mean()),
            "std": float(values.std(unbiased=False)) if values.numel() > 1 else 0.0,
            "min": float(values.min()),
            "max": float(values.max()),
            "zero_frac": zero,
            "nonfinite_frac": nonfinite,
        }


def _pattern(value: Any) -> str | None:
    return None if value is None else glob_pattern("pattern", value, over="module names")


def _prefix(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"prefix must be text, got {value!r}")
    return value


class TensorStatsCallback:
    """Weight and activation statistics for modules matched by a name pattern."""

    #: what `hotcb cb set` accepts (see hotcb.hotparams)
    hot_params = (
        HotParam("every", int, 100, "report every N steps", ge=1),
        HotParam(
            "pattern",
            str,
            "*",
            "glob (fnmatch) over the module names to watch (null: * unless paths are given)",
            nonempty=True,
            nullable=True,
        ),
        HotParam("paths", "list[str]", [], "env paths whose tensors are summarised"),
        HotParam("prefix", str, "", "text put before every reported name"),
    )

    rank_zero_only = True
    events = ("train_step_end",)

    def __init__(
        self,
        id: str = "tensor_stats",
        every: int = 100,
        pattern: str | None = None,
        paths: list[str] | None = None,
        prefix: str = "",
    ) -> None:
        self.id = id
        self.every = positive_int("every", every)
        self.paths = str_list("paths", paths or [])
        self.prefix = _prefix(prefix)
        self._given_pattern = _pattern(pattern)
        self.pattern = self._module_pattern()
        self.last: dict[str, dict[str, Any]] = {}
        self._model: Any = None
        self._handles: list[Any] = []
        self._armed = False
        self._activations: dict[str, dict[str, float]] = {}

    def _module_pattern(self) -> str | None:
        """The glob over module names in effect: the given one, else ``*`` unless paths."""
        if self._given_pattern is not None:
            return self._given_pattern
        return None if self.paths else "*"

    def set_params(self, **kwargs: Any) -> None:
        check_known("tensor_stats", kwargs, [p.name for p in self.hot_params])
        every = positive_int("every", kwargs.get("every", self.every))
        given = _pattern(kwargs["pattern"]) if "pattern" in kwargs else self._given_pattern
        paths = str_list("paths", kwargs.get("paths", self.paths))
        prefix = _prefix(kwargs.get("prefix", self.prefix))
        self.every, self.paths, self.prefix, self._given_pattern = every, paths, prefix, given
        pattern = self._module_pattern()
        if pattern != self.pattern:
            self.pattern = pattern
            if self._model is not None:
                self._register(self._model)

    def _matched(self, model: Any) -> list[tuple[str, Any]]:
        pattern = self.pattern
        if pattern is None:
            return []
        return [(n, m) for n, m in model.named_modules() if n and fnmatch.fnmatchcase(n, pattern)]

    def _register(self, model: Any) -> None:
        self._remove_hooks()
        self._model = model
        for name, module in self._matched(model):
            self._handles.append(module.register_forward_hook(self._hook(name)))

    def _hook(self, name: str) -> Any:
        def hook(module: Any, inputs: Any, output: Any) -> None:
            if self._armed and hasattr(output, "detach"):
                self._activations[name] = tensor_summary(output)

        return hook

    def _remove_hooks(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def handle(self, event: str, env: dict[str, Any]) -> None:
        if event != "train_step_end":
            return
        step = env.get("step", 0)
        if self.paths and step % self.every == 0:
            self._report_paths(step, env)
        model = env.get("model")
        if model is None or self.pattern is None:
            return
        if model is not self._model:
            self._register(model)
        if step % self.every == 0 and self._armed:
            self._report(step, model, env)
        self._activations = {}
        self._armed = (step + 1) % self.every == 0  # capture during the next step's forward

    def _report_paths(self, step: int, env: dict[str, Any]) -> None:
        result: dict[str, dict[str, Any]] = {}
        for path in self.paths:
            value = lookup(env, path)
            if value is MISSING:
                continue
            name = f"{self.prefix}{path}"
            if hasattr(value, "detach"):
                stats = tensor_summary(value)
                result[name] = {"value": stats}
                text = ",".join(f"{k}={v:.4g}" for k, v in stats.items())
                emit(env, f"[{self.id}] step={step} {name} {text}")
            else:
                result[name] = {"value": value}
                emit(env, f"[{self.id}] step={step} {name} value={value}")
        self.last = result

    def _report(self, step: int, model: Any, env: dict[str, Any]) -> None:
        result: dict[str, dict[str, Any]] = dict(self.last) if self.paths else {}
        for name, module in self._matched(model):
            entry = {
                pname: tensor_summary(p) for pname, p in module.named_parameters(recurse=False)
            }
            if name in self._activations:
                entry["activation"] = self._activations[name]
            if entry:
                name = f"{self.prefix}{name}"
                result[name] = entry
                parts = " ".join(
                    f"{kind}:mean={s['mean']:.4g},std={s['std']:.4g},zeros={s['zero_frac']:.3g}"
                    for kind, s in entry.items()
                    if s
                )
                emit(env, f"[{self.id}] step={step} {name} {parts}")
        self.last = result
        writer = next((env[k] for k in ("tb_writer", "summary_writer", "writer") if k in env), None)
        if writer is not None and hasattr(writer, "add_scalar"):
            for name, entry in result.items():
                for kind, stats in entry.items():
                    if not isinstance(stats, dict):
                        continue  # a plain value at one of the paths
                    for stat, value in stats.items():
                        writer.add_scalar(f"{self.id}/{name}/{kind}/{stat}", value, step)

    def close(self) -> None:
        self._remove_hooks()
        self._model = None
        self._armed = False
