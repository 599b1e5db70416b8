"""`hotcb recipe import`: a recipe becomes a hotcb/schedule option; a bad line, a bad
overlay or a taken name is one clear line on stderr, exit 1, and nothing is written.
(Export from a real run's ledger, and the round trip: tests/hydra/test_replay.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result

from hotcb.cli import cli
from hotcb.schedule import Schedule

LINES = [
    {"at": {"step": 5, "event": "train_step_end"}, "module": "cb", "op": "set_params",
     "id": "heartbeat", "params": {"every": 2}},
    {"at": {"step": 9, "event": None}, "module": "opt", "op": "set_params", "id": "main",
     "params": {"lr": 0.01}},
    {"at": {"step": 5, "event": "train_step_end"}, "module": "cb", "op": "disable",
     "id": "timing"},
]  # fmt: skip


def write_recipe(path: Path, lines: list[object]) -> Path:
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return path


def run(tmp_path: Path, *args: str) -> Result:
    (tmp_path / "conf").mkdir(exist_ok=True)
    return CliRunner().invoke(
        cli, ["recipe", "import", *args, "--config-dir", str(tmp_path / "conf")]
    )


def option(tmp_path: Path, name: str) -> Path:
    return tmp_path / "conf" / "hotcb" / "schedule" / f"{name}.yaml"


def test_import_writes_a_schedule_option_with_an_overlay(tmp_path: Path) -> None:
    recipe = write_recipe(tmp_path / "hotcb.recipe.jsonl", list(LINES))
    overlay = tmp_path / "hotcb.adjust.yaml"
    overlay.write_text(
        "version: 1\npatches:\n  - match: {module: opt, op: set_params}\n"
        "    transform_params: {scale: {lr: 0.5}}\n"
    )
    result = run(tmp_path, str(recipe), "--adjust", str(overlay), "--json")
    assert result.exit_code == 0, result.output
    path = option(tmp_path, "hotcb_recipe")
    assert json.loads(result.stdout) == {
        "path": str(path),
        "entries": 3,
        "override": "+hotcb/schedule=hotcb_recipe",
    }
    text = path.read_text()
    assert text.startswith("# @package hotcb.schedule\n")
    schedule = Schedule.from_config(yaml.safe_load(text))
    assert [(k, e.step, e.module, e.op) for k, e in schedule.ordered()] == [
        ("s5_set_heartbeat", 5, "cb", "set"),
        ("s5_disable_timing", 5, "cb", "disable"),
        ("s9_opt_set_main", 9, "opt", "set"),
    ]
    assert schedule.adjust["patches"][0]["transform_params"] == {"scale": {"lr": 0.5}}
    taken = run(tmp_path, str(recipe))
    assert (taken.exit_code, taken.stderr) == (
        1,
        f"hotcb: error: {path}: already exists; pass --force to overwrite it\n",
    )
    assert run(tmp_path, str(recipe), "--force").exit_code == 0


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("{not json", "not valid JSON: Expecting property name enclosed in double quotes"),
        ({"at": {"step": -1}, "op": "enable", "id": "t"}, "'step' must be an integer >= 0"),
        ({"at": 3, "op": "enable", "id": "t"}, "'at' must be"),
        ({"at": {"step": 1}, "op": "enable", "id": "t", "when": 2}, "unknown field 'when'"),
        ({"at": {"step": 1}, "op": "enable"}, "missing 'id'"),
        ([1], "a recipe line must be a JSON object"),
    ],
)
def test_a_bad_line_names_the_file_and_line_and_writes_nothing(
    tmp_path: Path, bad: object, message: str
) -> None:
    recipe = write_recipe(tmp_path / "r.jsonl", [LINES[0], "", bad])
    result = run(tmp_path, str(recipe))
    assert result.exit_code == 1
    assert result.stderr.startswith(f"hotcb: error: {recipe} line 3: {message}")
    assert result.stderr.count("\n") == 1
    assert not (tmp_path / "conf" / "hotcb").exists()


def test_a_bad_overlay_rule_names_the_file_and_rule(tmp_path: Path) -> None:
    recipe = write_recipe(tmp_path / "r.jsonl", list(LINES))
    overlay = tmp_path / "adj.yaml"
    overlay.write_text("patches:\n  - match: {id: main}\n    shift_step: soon\n")
    result = run(tmp_path, str(recipe), "--adjust", str(overlay))
    assert (result.exit_code, result.stderr) == (
        1,
        f"hotcb: error: {overlay}, hotcb.schedule.adjust.patches.0: shift_step: must be an "
        "integer, got 'soon'\n",
    )
    empty = run(tmp_path, str(write_recipe(tmp_path / "e.jsonl", [""])))
    assert empty.stderr == f"hotcb: error: {tmp_path / 'e.jsonl'}: the recipe has no op\n"
    assert not (tmp_path / "conf" / "hotcb").exists()
