"""hotcb/callbacks as a config group, in this repo's app and in anyone's app."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import HEARTBEAT_CLASS, REPO

TIMING = {
    "_target_": "hotcb.modules.cb.callbacks.timing.TimingCallback",
    "every": 50,
    "window": 200,
}
HEARTBEAT = {"_target_": HEARTBEAT_CLASS, "every": 100}


def test_selecting_overriding_adding_removing(composer: Any) -> None:
    assert composer(["hotcb/callbacks=[timing,heartbeat]"])["hotcb"]["callbacks"] == {
        "timing": TIMING,
        "heartbeat": HEARTBEAT,
    }
    assert composer(["hotcb/callbacks=[heartbeat]", "hotcb.callbacks.heartbeat.every=5"])["hotcb"][
        "callbacks"
    ] == {"heartbeat": {**HEARTBEAT, "every": 5}}
    assert list(composer(["~hotcb.callbacks.timing"])["hotcb"]["callbacks"]) == ["heartbeat"]


def test_user_options_sit_beside_the_builtins(composer: Any, tmp_path: Path) -> None:
    """A user's own Hydra app, not this repo's: the plugin brings the built-in options."""
    (tmp_path / "hotcb" / "callbacks").mkdir(parents=True)
    (tmp_path / "config.yaml").write_text(
        yaml.safe_dump({"defaults": [{"hotcb/callbacks": ["timing"]}, "_self_"]})
    )
    (tmp_path / "hotcb" / "callbacks" / "mine.yaml").write_text(
        "# @package hotcb.callbacks\nmine:\n  _target_: my.Cb\n  every: 3\n"
    )
    cfg = composer(["+hotcb/callbacks=mine"], config_dir=tmp_path)
    assert cfg["hotcb"]["callbacks"] == {
        "timing": TIMING,
        "mine": {"_target_": "my.Cb", "every": 3},
    }


@pytest.mark.subprocess
def test_search_path_plugin_is_discovered_by_hydra(tmp_path: Path) -> None:
    script = tmp_path / "app.py"
    script.write_text(
        "import hydra\nfrom omegaconf import OmegaConf\n"
        "@hydra.main(config_path=None, version_base='1.3')\n"
        "def main(cfg):\n    print(OmegaConf.to_yaml(cfg))\n"
        "main()\n"
    )
    out = subprocess.run(
        [
            sys.executable,
            str(script),
            "+hotcb/callbacks=[heartbeat]",
            "hydra.run.dir=" + str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        cwd=tmp_path,
    ).stdout
    # (the job composes hotcb.callbacks and runs no kernel: hotcb warns in a log line)
    composed = "\n".join(line for line in out.splitlines() if not line.startswith("[20"))
    assert yaml.safe_load(composed) == {"hotcb": {"callbacks": {"heartbeat": HEARTBEAT}}}


@pytest.mark.subprocess
def test_plugin_module_imports_nothing_heavy() -> None:
    code = (
        "import sys, hydra_plugins.hotcb_searchpath.hotcb_searchpath_plugin\n"
        "print(sorted(m for m in ('torch', 'hotcb') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


@pytest.mark.subprocess
@pytest.mark.slow(2)
def test_example_app_composes_with_cfg_job() -> None:
    shown = subprocess.run(
        [
            sys.executable,
            "-X",
            "importtime",
            "examples/train.py",
            "hotcb/callbacks=[timing,heartbeat]",
            "hotcb.callbacks.heartbeat.every=5",
            "--cfg",
            "job",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    cfg = yaml.safe_load(shown.stdout)
    assert cfg["steps"] > 0 and cfg["hotcb"]["callbacks"]["heartbeat"]["every"] == 5
    # showing the config trains nothing: torch is not even imported
    imported = [line.rsplit("|", 1)[-1].strip() for line in shown.stderr.splitlines()]
    assert "hydra" in imported and "torch" not in imported


@pytest.mark.subprocess
@pytest.mark.skipif(importlib.util.find_spec("pip") is None, reason="needs pip to build a wheel")
def test_wheel_ships_the_config_group_and_plugin(tmp_path: Path) -> None:
    src = tmp_path / "src"  # build from a copy: a build leaves build/ and *.egg-info behind
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    for package in ("hotcb", "hydra_plugins"):
        shutil.copytree(REPO / package, src / package, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(src),
        ],
        check=True,
        timeout=300,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("hydra_hotcb-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "hotcb/conf/hotcb/callbacks/timing.yaml" in names
    assert "hydra_plugins/hotcb_searchpath/hotcb_searchpath_plugin.py" in names
    assert "hydra_plugins/__init__.py" not in names
