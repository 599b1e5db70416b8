"""The template shape's wiring, composed by real Hydra (no torch): hotcb's callbacks/hotcb.yaml
picks up `hotcb/callbacks=...` with and without `+`, and a composed `hotcb.callbacks` that
nothing consumes is warned about once, naming the fix."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from hydra_plugins.hotcb_searchpath.unconsumed import unconsumed_reason
from tests.helpers import REPO

APP = REPO / "tests" / "adapters" / "template_app" / "configs"
CONTROLLER = "hotcb.adapters.lightning.HotCallbackController"


def _compose(overrides: list[str], config_dir: Path = APP, name: str = "train") -> Any:
    with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
        return compose(config_name=name, overrides=overrides)


@pytest.mark.parametrize("plus", ["", "+"])
def test_the_one_line_consumes_the_group(plus: str) -> None:
    cfg = _compose([f"{plus}hotcb/callbacks=[timing,heartbeat]"])
    ctl = OmegaConf.to_container(cfg.callbacks.hotcb, resolve=True)
    assert isinstance(ctl, dict) and ctl["_target_"] == CONTROLLER
    assert list(ctl["config"]["callbacks"]) == ["timing", "heartbeat"]
    assert {"model_checkpoint", "early_stopping"} <= set(cfg.callbacks)
    assert unconsumed_reason(cfg) is None


def test_a_template_without_the_controller_is_told_the_fix(tmp_path: Path) -> None:
    (tmp_path / "callbacks").mkdir()
    (tmp_path / "train.yaml").write_text("defaults:\n  - callbacks: plain\n  - _self_\n")
    (tmp_path / "callbacks" / "plain.yaml").write_text(
        "early_stopping:\n  _target_: lightning.pytorch.callbacks.EarlyStopping\n"
    )
    cfg = _compose(["+hotcb/callbacks=[heartbeat]"], tmp_path)
    reason = unconsumed_reason(cfg)
    assert reason and "no node of `callbacks` runs hotcb's controller" in reason
    assert "'callbacks=[default,hotcb]'" in reason
    # the docs' old recipe: a controller given its own callbacks ignores hotcb.callbacks
    (tmp_path / "callbacks" / "plain.yaml").write_text(
        f"hot:\n  _target_: {CONTROLLER}\n  callbacks: {{}}\n"
    )
    reason = unconsumed_reason(_compose(["+hotcb/callbacks=[heartbeat]"], tmp_path))
    assert reason and "callbacks.hot was given its own `callbacks` and ignores it" in reason


APP_WITHOUT_KERNEL = """
import hydra
@hydra.main(config_path=None, version_base="1.3")
def main(cfg):
    if cfg.get("use_kernel"):
        from hotcb.kernel import HotKernel
        HotKernel.from_config(cfg, register=False).close()
main()
"""


@pytest.mark.subprocess
def test_a_job_that_never_runs_a_kernel_warns_once_at_its_end(tmp_path: Path) -> None:
    script = tmp_path / "app.py"
    script.write_text(APP_WITHOUT_KERNEL)
    env = {"PYTHONPATH": str(REPO)}
    out = {}
    for use in ("false", "true"):
        run = tmp_path / use
        proc = subprocess.run(
            [
                sys.executable,
                str(script),
                "+hotcb/callbacks=[heartbeat]",
                f"+use_kernel={use}",
                f"hydra.run.dir={run}",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
            env={**__import__("os").environ, **env},
        )
        assert proc.returncode == 0, proc.stderr
        out[use] = (run / "app.log").read_text()
    assert out["false"].count("nothing in this job ran a hotcb kernel") == 1
    assert "HotKernel.from_config(cfg)" in out["false"]
    assert "nothing in this job" not in out["true"]
