"""The reference project's file formats (sidphbot/hotcb docs/formats.md): command lines in its
JSON shapes are accepted, and a script that reads its ledger the way its docs describe reads
hotcb's real ledger (field by field, and its recipe export: applied entries of cb/opt/loss,
in seq order, with the payload keys params, target, init, enabled)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hotcb.modules.opt  # noqa: F401  (registers the opt module's ops, as a CLI process does)
from hotcb.kernel import HotKernel

FEAT_VIZ = """
class FeatureVizCallback:
    def __init__(self, id, every=10):
        self.id, self.every = id, every
    def handle(self, event, env):
        pass
    def set_params(self, **kwargs):
        self.every = kwargs.get("every", self.every)
"""

#: What the reference's ledger has on every line (docs/formats.md, hotcb.applied.jsonl).
LEDGER_FIELDS = (
    "seq", "wall_time", "step", "epoch", "event", "phase", "module", "op", "id", "source",
    "decision", "payload", "error", "notes",
)  # fmt: skip


def reference_commands(feat_viz: Path) -> list[dict[str, Any]]:
    """The cb lines of the reference's docs/formats.md examples (its feat_viz file is ours),
    then its opt and core lines, which name modules hotcb does not have."""
    return [
        {"module": "cb", "op": "load", "id": "timing",
         "target": {"kind": "module", "path": "hotcb.modules.cb.callbacks.timing", "symbol": "TimingCallback"},
         "init": {}, "enabled": False},
        {"module": "cb", "op": "enable", "id": "timing"},
        {"module": "cb", "op": "load", "id": "feat_viz",
         "target": {"kind": "python_file", "path": str(feat_viz), "symbol": "FeatureVizCallback"},
         "init": {"every": 50}, "enabled": True},
        {"op": "set_params", "id": "feat_viz", "params": {"every": 5}},  # its older CLI: no module
        {"module": "opt", "op": "set_params", "id": "main", "params": {"lr": 3e-5, "weight_decay": 0.01}},
        {"module": "core", "op": "freeze", "mode": "prod"},
        {"module": "cb", "op": "unload", "id": "timing"},
    ]  # fmt: skip


def reference_recipe(ledger: Path) -> list[dict[str, Any]]:
    """A recipe, made as the reference's docs/replay.md says its export does: every line,
    applied entries of the cb/opt/loss modules only, ``at`` from step and event, the op's
    fields from the payload, in seq order."""
    entries = [json.loads(line) for line in ledger.read_text().splitlines() if line.strip()]
    recipe = []
    for entry in sorted(entries, key=lambda e: e["seq"]):
        if entry["decision"] != "applied" or entry["module"] not in ("cb", "opt", "loss"):
            continue
        item = {"at": {"step": entry["step"], "event": entry["event"]}, "module": entry["module"],
                "op": entry["op"], "id": entry["id"]}  # fmt: skip
        payload = entry["payload"] or {}
        item.update(
            {k: payload[k] for k in ("params", "target", "init", "enabled") if k in payload}
        )
        if "source_capture" in payload:
            item["source_capture"] = payload["source_capture"]
        recipe.append(item)
    return recipe


def test_reference_command_lines_and_a_reference_ledger_reader(
    kernel_factory: Callable[..., Any], tmp_path: Path
) -> None:
    feat_viz = tmp_path / "feat_viz.py"
    feat_viz.write_text(FEAT_VIZ)
    kernel: HotKernel = kernel_factory(register=False)
    commands = reference_commands(feat_viz)
    with open(kernel.run_dir.commands, "w", encoding="utf-8") as fh:
        for line in commands[:4]:
            fh.write(json.dumps(line) + "\n")
    env = {"step": 300, "epoch": 3.0, "phase": "train"}
    kernel.apply(env, ["train_step_end"])
    with open(kernel.run_dir.commands, "a", encoding="utf-8") as fh:
        for line in commands[4:]:
            fh.write(json.dumps(line) + "\n")
    kernel.apply({"step": 310, "epoch": 3.0, "phase": "val"}, ["val_end"])
    kernel.close()

    lines = [json.loads(line) for line in kernel.run_dir.ledger.read_text().splitlines()]
    for entry in lines:
        missing = [f for f in LEDGER_FIELDS if f not in entry]
        assert not missing, (missing, entry)
        assert entry["source"] in ("external", "yaml", "replay", "config", "auto")
    external = [e for e in lines if e["source"] == "external"]
    assert [(e["module"], e["op"], e["id"], e["decision"]) for e in external] == [
        ("cb", "load", "timing", "applied"),
        ("cb", "enable", "timing", "applied"),
        ("cb", "load", "feat_viz", "applied"),
        ("cb", "set", "feat_viz", "applied"),  # hotcb records set_params as its op, set
        # hotcb has an opt module (its ops parse), but this run did not turn it on
        ("opt", "set", "main", "failed"),
        ("cb", "invalid", None, "failed"),  # no core module: its freeze is `hotcb freeze`
        ("cb", "unload", "timing", "applied"),
    ]
    assert [(e["step"], e["epoch"], e["phase"], e["event"]) for e in external[:4]] == [
        (300, 3.0, "train", "train_step_end")
    ] * 4
    assert external[-1]["phase"] == "val"
    assert "this run has no 'opt' module" in external[4]["error"]
    assert (
        "turns them on: a hotcb.opt or hotcb.loss node; see docs/opt-loss.md"
        in (external[4]["error"])
    )
    assert "unknown module 'core'" in external[5]["error"]
    assert "its freeze is `hotcb freeze` here; see docs/migrating.md" in external[5]["error"]
    # the source capture the reference's replay reads, pointing at a real file of the run
    capture = external[2]["payload"]["source_capture"]
    assert (kernel.run_dir.path / capture["captured_path"]).read_text() == FEAT_VIZ
    assert capture["sha256"] == external[2]["payload"]["sha256"]

    recipe = reference_recipe(kernel.run_dir.ledger)
    assert [(r["op"], r["id"], r["at"]["step"]) for r in recipe] == [
        ("load", "timing", 300),
        ("enable", "timing", 300),
        ("load", "feat_viz", 300),
        ("set", "feat_viz", 300),
        ("unload", "timing", 310),
    ]
    assert recipe[2]["init"] == {"every": 50} and recipe[2]["enabled"] is True
    assert recipe[2]["target"] == commands[2]["target"]
    assert recipe[3]["params"] == {"every": 5}
