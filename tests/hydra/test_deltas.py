"""Override deltas parse with Hydra's own parser and compose to the final state."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from hypothesis import given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf

from hotcb.hydra.deltas import DeltaError, compute_deltas, format_value

PARSER = OverridesParser.create()
KEYS = st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, width=64)
    | st.text(max_size=30)
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4),
    max_leaves=12,
)


def resolved(value: Any) -> Any:
    """What a callback would receive: Hydra's value, through OmegaConf with interpolation."""
    parsed = PARSER.parse_overrides([f"k={format_value(value)}"])[0].value()
    return OmegaConf.to_container(OmegaConf.create({"k": parsed}), resolve=True)["k"]


@pytest.mark.slow(6)
@settings(max_examples=300, deadline=None)
@given(VALUES)
def test_every_value_round_trips_through_hydras_parser(value: Any) -> None:
    assert resolved(value) == value


@pytest.mark.parametrize(
    "value",
    [
        "with spaces",
        'it\'s "quoted"',
        3e-4,
        1e-12,
        -0.0,
        [1, "a b", [2.5]],
        {"a": [1, 2], "b": {"c": None}},
        "${not.interp}",
        "\\${x}",
        "tail\\",
        float("inf"),
        True,
        "true",
        "3e-4",
        "",
    ],
)
def test_tricky_values(value: Any) -> None:
    assert resolved(value) == value


def test_inexpressible_keys_are_refused() -> None:
    with pytest.raises(DeltaError):
        format_value({"bad key": 1})


def test_deltas_compose_from_baseline_to_final(tmp_path: Path) -> None:
    baseline = {
        "timing": {"_target_": "m.Timing", "every": 50, "window": 200},
        "heartbeat": {"_target_": "m.Hb", "every": 100},
        "gone": {"_target_": "m.Gone"},
        "off": {"_target_": "m.Off", "_enabled_": False},
    }
    final = {
        "timing": {"_target_": "m.Timing", "every": 50, "window": 200, "_enabled_": False},
        "heartbeat": {"_target_": "m.Hb", "every": 5, "tags": ["a b", "it's"]},
        "off": {"_target_": "m.Off"},
        "viz": {"_target_": "/runs/x/hotcb.sources/abc.py:Viz", "every": 50, "lr": 3e-4},
    }
    deltas = compute_deltas(baseline, final)
    assert "hotcb.callbacks.heartbeat.every=5" in deltas and "~hotcb.callbacks.gone" in deltas
    (tmp_path / "config.yaml").write_text(OmegaConf.to_yaml({"hotcb": {"callbacks": baseline}}))
    with initialize_config_dir(config_dir=str(tmp_path), version_base="1.3"):
        composed = compose(config_name="config", overrides=deltas)
    got = OmegaConf.to_container(composed, resolve=True)["hotcb"]["callbacks"]  # type: ignore[index]
    expected = {k: {**v} for k, v in final.items()}
    expected["off"]["_enabled_"] = True  # re-enabled: the key stays, with the new value
    assert got == expected


def test_no_change_no_delta() -> None:
    node = {"hb": {"_target_": "m.Hb", "every": 5}}
    assert compute_deltas(node, node) == []


def test_retargeted_callback_is_replaced_not_merged() -> None:
    deltas = compute_deltas(
        {"v": {"_target_": "a.py:V", "every": 1, "old": 2}},
        {"v": {"_target_": "b.py:V", "every": 1}},
    )
    assert deltas == ["~hotcb.callbacks.v", "+hotcb.callbacks.v={_target_: 'b.py:V', every: 1}"]


def test_hot_params_under_set_are_one_override_each_and_compose(tmp_path: Path) -> None:
    baseline = {
        "arm": {"_target_": "m.Arm", "every": 10, "_set_": {"x": 1}},
        "hb": {"_target_": "m.Hb"},
    }
    final = {
        "arm": {"_target_": "m.Arm", "every": 5, "_set_": {"x": 2, "armed": True}},
        "hb": {"_target_": "m.Hb", "_set_": {"armed": False}},
    }
    deltas = compute_deltas(baseline, final)
    assert deltas == [
        "hotcb.callbacks.arm.every=5",
        "hotcb.callbacks.arm._set_.x=2",
        "+hotcb.callbacks.arm._set_.armed=true",
        "+hotcb.callbacks.hb._set_.armed=false",  # Hydra makes the _set_ node too
    ]
    (tmp_path / "config.yaml").write_text(OmegaConf.to_yaml({"hotcb": {"callbacks": baseline}}))
    with initialize_config_dir(config_dir=str(tmp_path), version_base="1.3"):
        composed = compose(config_name="config", overrides=deltas)
    assert OmegaConf.to_container(composed)["hotcb"]["callbacks"] == final  # type: ignore[index]
