"""The public top-level API: ``from hotcb import HotKernel, Op, ...`` works, costs nothing
until used (``import hotcb`` and ``hotcb --help`` import no torch), and both kernels offer
the same :class:`~hotcb.kernel.Kernel` surface."""

from __future__ import annotations

import importlib
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import hotcb
from hotcb.kernel import HotKernel, Kernel
from hotcb.ledger import LedgerEntry
from hotcb.ops import CallbackTarget, Op

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "hydra", "omegaconf", "lightning", "transformers", "numpy")
HEARTBEAT = CallbackTarget("module", "hotcb.modules.cb.callbacks.heartbeat", "HeartbeatCallback")


def imported_modules(argv: list[str]) -> set[str]:
    """The modules a fresh interpreter imports to run ``argv`` (from ``-X importtime``)."""
    env = {**os.environ, "PYTHONPROFILEIMPORTTIME": "1", "PYTHONPATH": str(REPO)}
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    names = set()
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip())
    assert names, "no -X importtime output"
    return names


def heavy(names: set[str]) -> list[str]:
    return sorted(n for n in names if n.split(".")[0] in HEAVY)


EXPORTS = [
    ("HotKernel", "hotcb.kernel"),
    ("Kernel", "hotcb.kernel"),
    ("HotCallback", "hotcb.modules.cb.protocol"),
    ("hot_factory", "hotcb.modules.cb.protocol"),
    ("Op", "hotcb.ops"),
    ("CallbackTarget", "hotcb.ops"),
    ("request_stop", "hotcb.requests"),
    ("stop_requested", "hotcb.requests"),
    ("CommandError", "hotcb.ops"),
    ("LoadError", "hotcb.modules.cb.loader"),
    ("HydrationError", "hotcb.hydra.hydrate"),
    ("RunDirBusy", "hotcb.runlock"),
    ("HotcbError", "hotcb.errors"),
]


@pytest.mark.parametrize(("name", "module"), EXPORTS)
def test_top_level_names_are_the_real_objects(name: str, module: str) -> None:
    assert getattr(hotcb, name) is getattr(importlib.import_module(module), name)
    assert name in hotcb.__all__ and name in dir(hotcb)


def test_every_public_name_resolves_and_nothing_else_does() -> None:
    assert sorted(hotcb.__all__) == sorted(["__version__", *(name for name, _ in EXPORTS)])
    for name in hotcb.__all__:
        getattr(hotcb, name)
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = hotcb.Nope  # type: ignore[attr-defined]


def test_import_hotcb_imports_nothing_heavy_and_no_hotcb_module() -> None:
    names = imported_modules([sys.executable, "-c", "import hotcb"])
    assert heavy(names) == []
    assert sorted(n for n in names if n.startswith("hotcb.")) == []


def test_command_side_names_import_no_torch() -> None:
    code = "import hotcb; hotcb.Op; hotcb.CallbackTarget; hotcb.CommandError; hotcb.request_stop"
    assert heavy(imported_modules([sys.executable, "-c", code])) == []


def test_hotcb_help_imports_no_torch() -> None:
    exe = shutil.which("hotcb")
    assert exe is not None, "the hotcb console script is not installed"
    assert [n for n in heavy(imported_modules([exe, "--help"])) if n.startswith("torch")] == []


def test_callbacks_is_the_cb_controller(tmp_path: Path) -> None:
    kernel = HotKernel(run_dir=tmp_path, register=False)
    entry = kernel.submit(Op(op="load", id="hb", target=HEARTBEAT))
    assert kernel.callbacks is kernel.modules["cb"].controller  # type: ignore[attr-defined]
    assert kernel.callbacks.status() == kernel.modules["cb"].status()
    assert isinstance(entry, LedgerEntry) and entry.seq >= 1
    assert isinstance(kernel, Kernel) and kernel.rank == 0 and kernel.agree(3) == 3
    kernel.close()


def test_from_config_returns_a_kernel(tmp_path: Path) -> None:
    cfg = {"hotcb": {"callbacks": {"hb": {"_target_": f"{HEARTBEAT.path}.{HEARTBEAT.symbol}"}}}}
    kernel = HotKernel.from_config(cfg, run_dir=tmp_path, register=False)
    assert isinstance(kernel, Kernel)
    assert list(kernel.callbacks.status()) == ["hb"]
    kernel.close()


@pytest.fixture
def group() -> Iterator[None]:
    dist = pytest.importorskip("torch.distributed")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def test_both_kernels_submit_ledger_entries(tmp_path: Path, group: None) -> None:
    from hotcb.distributed import DistributedHotKernel

    kernel = DistributedHotKernel(run_dir=tmp_path, sync_every=5, register=False)
    entry = kernel.submit(Op(op="load", id="hb", target=HEARTBEAT))
    assert isinstance(entry, LedgerEntry)
    assert (entry.decision, entry.source, entry.payload["world_size"]) == ("applied", "config", 1)
    assert isinstance(kernel, Kernel) and kernel.callbacks.ids == ["hb"]
    kernel.close()
