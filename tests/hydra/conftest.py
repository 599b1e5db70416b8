"""Hydra test helpers: compose the repo's example config the way the app does."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from tests.helpers import REPO

CONF = REPO / "conf"


@pytest.fixture
def composer() -> Iterator[Any]:
    """compose(overrides, config_dir=CONF) -> plain dict of the composed config."""

    def run(overrides: list[str], config_dir: Path = CONF) -> dict[str, Any]:
        with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
            cfg = compose(config_name="config", overrides=overrides)
            return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]

    yield run
