"""Hydra multirun: each job its own run; `hotcb --sweep` reaches every live job.

Real `python examples/train.py -m ...` processes with the basic, joblib and submitit_local
launchers, real `hotcb` processes beside them, and the SLURM launcher's composed config.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hotcb.ledger import read_ledger
from tests.helpers import REPO, Child, external_entries, hotcb, needs_hotcb, stop_gate

SweepStarter = Callable[..., Child]


def sweep(spawn: SweepStarter, tmp_path: Path, *overrides: str) -> Child:
    return spawn(
        [
            sys.executable,
            str(REPO / "examples" / "train.py"),
            "-m",
            "hotcb/callbacks=[timing,heartbeat]",
            "lr=0.1,0.01",
            f"hydra.sweep.dir={tmp_path / 'sweep'}",
            *overrides,
        ],
        cwd=tmp_path,
    )


def states(sweep_dir: Path) -> dict[str, dict[str, Any]]:
    return {
        p.parent.name: json.loads(p.read_text())
        for p in sorted(sweep_dir.glob("*/hotcb.state.json"))
    }


@needs_hotcb
@pytest.mark.subprocess
@pytest.mark.slow(12)
def test_joblib_sweep_takes_a_live_command_in_every_job(
    tmp_path: Path, spawn: SweepStarter
) -> None:
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    gate = stop_gate(tmp_path)  # the jobs run until the test has seen the command land
    proc = sweep(
        spawn,
        tmp_path,
        "hydra/launcher=joblib",
        "steps=100000",
        "step_sleep=0.004",
        *gate.overrides,
    )
    sweep_dir = tmp_path / "sweep"
    proc.wait_for(
        lambda: (
            len(live := states(sweep_dir)) == 2
            and all((s.get("step") or 0) >= 50 for s in live.values())
        ),
        timeout=120,
        what="both jobs at step 50",
    )

    # no --dir: two live runs of one sweep; the CLI says how to reach them
    refused = hotcb("cb", "set", "heartbeat", "every=7", cwd=tmp_path, ok=False)
    assert f"use --sweep {sweep_dir}" in refused.stderr
    listing = json.loads(hotcb("status", "--json", cwd=tmp_path).stdout)
    assert listing["sweep_dir"] == str(sweep_dir)
    assert [(j["job"], j["live"]) for j in listing["jobs"]] == [("0", True), ("1", True)]
    assert [o for o in listing["jobs"][1]["overrides"] if o.startswith("lr=")] == ["lr=0.01"]

    sent = json.loads(
        hotcb(
            "--sweep", str(sweep_dir), "cb", "set", "heartbeat", "every=7", "--json", cwd=tmp_path
        ).stdout
    )
    assert [(j["job"], j["queued"]) for j in sent["jobs"]] == [("0", True), ("1", True)]
    # each job's answer: applied, at the step its own ledger recorded
    answers = {j["job"]: j["answer"] for j in sent["jobs"]}
    assert [a["outcome"] for a in answers.values()] == ["applied", "applied"]
    for job in ("0", "1"):
        (entry,) = external_entries(sweep_dir / job)
        assert (entry.seq, entry.step) == (answers[job]["seq"], answers[job]["step"])
    gate.release()
    proc.finish(timeout=120)

    # each job: its own ledger, the command applied once, its own final state
    for job in ("0", "1"):
        run = sweep_dir / job
        (entry,) = external_entries(run)
        assert (entry.op, entry.id, entry.decision) == ("set", "heartbeat", "applied")
        state = json.loads((run / "hotcb.state.json").read_text())
        assert state["closed"] and state["step"] >= entry.step
        assert state["callbacks"]["heartbeat"]["params"] == {"every": 7}
        # export-config works per job
        deltas = hotcb("--dir", str(run), "export-config", "--format", "overrides", cwd=tmp_path)
        assert deltas.stdout.strip() == "hotcb.callbacks.heartbeat.every=7"
    launches = [json.loads((sweep_dir / j / "hotcb.launch.json").read_text()) for j in "01"]
    assert [la["job_num"] for la in launches] == [0, 1]


@needs_hotcb
@pytest.mark.subprocess
@pytest.mark.slow(5)
def test_basic_launcher_jobs_run_one_after_another_each_with_its_own_ledger(
    tmp_path: Path, spawn: SweepStarter
) -> None:
    sweep(spawn, tmp_path, "steps=40").finish(timeout=240)
    sweep_dir = tmp_path / "sweep"
    final = states(sweep_dir)
    assert sorted(final) == ["0", "1"]
    assert all(s["closed"] and s["step"] == 40 for s in final.values())
    for job in ("0", "1"):
        entries = read_ledger(sweep_dir / job / "hotcb.applied.jsonl").entries
        assert [(e.op, e.id, e.source) for e in entries] == [
            ("load", "timing", "config"),
            ("load", "heartbeat", "config"),
        ]
    # the latest run was a sweep job: status lists the sweep
    table = hotcb("status", cwd=tmp_path).stdout
    assert table.splitlines()[0] == f"sweep {sweep_dir} (2 job(s), 0 live)"
    assert "lr=0.1" in table and "lr=0.01" in table
    # a command for a sweep that has ended reaches no one: exit 1, one line, per-job report
    late = hotcb("--sweep", "latest", "cb", "set", "heartbeat", "every=5", cwd=tmp_path, ok=False)
    assert "skipped (not live)" in late.stdout
    assert late.stderr.strip() == f"hotcb: error: no live job of sweep {sweep_dir} took the command"


@needs_hotcb
@pytest.mark.subprocess
@pytest.mark.slow(10)
def test_submitit_local_launcher_gives_the_same_layout(tmp_path: Path, spawn: SweepStarter) -> None:
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    sweep(spawn, tmp_path, "hydra/launcher=submitit_local", "steps=30").finish(timeout=240)
    sweep_dir = tmp_path / "sweep"
    assert (sweep_dir / "multirun.yaml").is_file() and (sweep_dir / ".submitit").is_dir()
    listing = json.loads(hotcb("--sweep", str(sweep_dir), "status", "--json", cwd=tmp_path).stdout)
    assert [(j["job"], j["step"], j["live"]) for j in listing["jobs"]] == [
        ("0", 30, False),
        ("1", 30, False),
    ]
    for job in ("0", "1"):
        assert (sweep_dir / job / ".hydra" / "config.yaml").is_file()
        assert (sweep_dir / job / "hotcb.applied.jsonl").is_file()


def test_the_slurm_launcher_config_composes() -> None:
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.utils import get_class
    from omegaconf import OmegaConf

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose(
            config_name="config",
            overrides=[
                "hydra/launcher=slurm",
                "hydra.launcher.partition=gpu",
                "hydra.sweep.dir=/scratch/sweeps/s1",
                "hotcb/callbacks=[timing,heartbeat]",
            ],
            return_hydra_config=True,
        )
    launcher = cfg.hydra.launcher
    assert get_class(launcher._target_).__name__ == "SlurmLauncher"
    assert launcher.partition == "gpu" and launcher.gpus_per_node == 1
    assert launcher.timeout_min == 240 and launcher.array_parallelism == 16
    folder = OmegaConf.to_container(cfg.hydra, resolve=False)["launcher"]["submitit_folder"]  # type: ignore[index]
    assert folder == "${hydra.sweep.dir}/.submitit/%j"
    assert sorted(cfg.hotcb.callbacks) == ["heartbeat", "timing"]
