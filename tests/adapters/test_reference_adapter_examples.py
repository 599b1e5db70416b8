"""The reference project's Lightning and HF doc examples (sidphbot/hotcb
docs/examples/lightning_example.py, hf_example.py), redone here with its spellings: the app
builds ``HotKernel(run_dir=..., debounce_steps=1)`` after ``hotcb --dir ... init`` and hands it
to ``HotCBLightning(kernel, loss_state=...)`` / ``HotCBHFCallback(kernel, resolve_optimizer=...,
mutable_state=...)``. Tiny synthetic data, no downloads: the HF model is built from a config.

One live change each: a ``hotcb cb load`` of a probe callback, sent (CliRunner, into the run's
command file) mid-training; the probe changes the loss weight through ``env["loss_state"]``,
the mapping the example gave the adapter, and the test finds the load in the ledger.

Differences from the reference's scripts, none in hotcb: the HF model is a random-init tiny
BERT, not ``from_pretrained("prajjwal1/bert-tiny")`` (no network in tests); the data, epochs
and Trainer output (no checkpoints, logger or progress bar) are cut down to keep it cheap.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

torch = pytest.importorskip("torch")

from hotcb.cli import cli  # noqa: E402
from hotcb.kernel import HotKernel  # noqa: E402
from hotcb.ledger import read_ledger  # noqa: E402
from tests.helpers import run_state, wait_for  # noqa: E402

RUN = "runs/exp-001"

#: Sets the loss weight ``key`` to ``w`` in the env's loss state; notes the optimizer it sees.
PROBE = """
class LossProbe:
    def __init__(self, id, key="mse", w=1.0):
        self.id, self.key, self.w = id, key, w
    def set_params(self, **kw):
        self.w = float(kw.get("w", self.w))
    def handle(self, event, env):
        if event == "train_step_end":
            env["loss_state"]["weights"][self.key] = self.w
            opt = env.get("optimizer") or env["resolve_optimizer"]()
            env["loss_state"]["terms"]["lr"] = opt.param_groups[0]["lr"]
"""


def init_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``hotcb --dir runs/exp-001 init`` in a fresh cwd, and the probe beside it."""
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["--dir", RUN, "init"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    Path("probe.py").write_text(PROBE)


class LiveLoad:
    """Sends ``hotcb cb load probe ...`` before step ``at``, then lets the kernel's time gate
    (``poll_interval``) pass, so the next safe point (the end of step ``at + 1``) reads it."""

    def __init__(self, kernel: HotKernel, at: int, key: str) -> None:
        self.kernel, self.at, self.key = kernel, at, key

    def maybe_send(self, step: int) -> None:
        if step != self.at:
            return
        args = ["--dir", RUN, "cb", "load", "probe", "--file", "probe.py", "--symbol",
                "LossProbe", "--init", f"key={self.key}", "w=0.25"]  # fmt: skip
        result = CliRunner().invoke(cli, args, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        sent = time.monotonic()
        wait_for(lambda: time.monotonic() - sent > self.kernel.poll_interval)


def assert_live_load(at: int, key: str, state: dict[str, Any], lr: float) -> None:
    [load] = [e for e in read_ledger(Path(RUN) / "hotcb.applied.jsonl").entries if e.op == "load"]
    assert (load.id, load.source, load.decision, load.step) == (
        "probe",
        "external",
        "applied",
        at + 1,
    )
    assert load.payload["init"] == {"key": key, "w": 0.25}
    assert state["weights"][key] == 0.25 and state["terms"]["lr"] == lr


@pytest.mark.slow(3)
def test_lightning_example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pl = pytest.importorskip("pytorch_lightning")  # the reference's spelling
    from hotcb.adapters.lightning import HotCBLightning

    init_run(tmp_path, monkeypatch)
    losses: list[tuple[int, float]] = []

    class TinyModel(pl.LightningModule):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.net = torch.nn.Linear(16, 1)
            self.loss_state = {"weights": {"mse": 1.0}, "terms": {}, "ramps": {}}

        def training_step(self, batch: Any, batch_idx: int) -> Any:
            x, y = batch
            w = self.loss_state["weights"].get("mse", 1.0)
            losses.append((self.global_step, w))
            return w * torch.nn.functional.mse_loss(self.net(x), y)

        def configure_optimizers(self) -> Any:
            return torch.optim.Adam(self.parameters(), lr=1e-3)

    class Sender(pl.Callback):  # type: ignore[misc,name-defined]
        def __init__(self, live: LiveLoad) -> None:
            self.live = live

        def on_train_batch_start(self, trainer: Any, *rest: Any) -> None:
            self.live.maybe_send(trainer.global_step)

    torch.manual_seed(0)
    model = TinyModel()
    kernel = HotKernel(run_dir=RUN, debounce_steps=1)
    hotcb_cb = HotCBLightning(kernel, loss_state=model.loss_state)
    dataset = torch.utils.data.TensorDataset(torch.randn(200, 16), torch.randn(200, 1))
    loader = torch.utils.data.DataLoader(dataset, batch_size=32)
    trainer = pl.Trainer(
        max_epochs=5,
        callbacks=[hotcb_cb, Sender(LiveLoad(kernel, 10, "mse"))],
        accelerator="cpu", logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, default_root_dir=str(tmp_path),
    )  # fmt: skip
    trainer.fit(model, loader)
    assert trainer.global_step == 35  # 5 epochs of 7 batches
    assert_live_load(10, "mse", model.loss_state, 1e-3)
    # the steps after the load trained with the new weight, the ones before with the old
    assert [w for s, w in losses] == [1.0] * 11 + [0.25] * 24
    assert run_state(RUN)["closed"] is True  # the adapter closed the kernel it was given


@pytest.mark.slow(4)
def test_hf_example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    transformers = pytest.importorskip("transformers")
    from hotcb.adapters.hf import HotCBHFCallback

    init_run(tmp_path, monkeypatch)

    class DummyDataset(torch.utils.data.Dataset):  # type: ignore[type-arg]
        def __init__(self, n: int = 48) -> None:
            self.n = n

        def __len__(self) -> int:
            return self.n

        def __getitem__(self, idx: int) -> dict[str, Any]:
            return {
                "input_ids": torch.randint(0, 100, (8,)),
                "attention_mask": torch.ones(8, dtype=torch.long),
                "labels": torch.tensor(idx % 2),
            }

    class Sender(transformers.TrainerCallback):  # type: ignore[misc]
        def __init__(self, live: LiveLoad) -> None:
            self.live = live

        def on_step_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            self.live.maybe_send(state.global_step)

    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=100, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=16, num_labels=2,
    )  # fmt: skip
    model = transformers.BertForSequenceClassification(config)  # from_pretrained, offline
    kernel = HotKernel(run_dir=RUN, debounce_steps=1)
    trainer_ref: dict[str, Any] = {}
    mutable_state: dict[str, Any] = {"weights": {"ce": 1.0}, "terms": {}, "ramps": {}}
    hotcb_cb = HotCBHFCallback(
        kernel,
        resolve_optimizer=lambda: trainer_ref.get("trainer") and trainer_ref["trainer"].optimizer,
        mutable_state=mutable_state,
    )
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "hf_hotcb_test"), num_train_epochs=2,
        per_device_train_batch_size=16, logging_steps=10, report_to="none",
        use_cpu=True, save_strategy="no", disable_tqdm=True,
    )  # fmt: skip
    trainer = transformers.Trainer(
        model=model, args=args, train_dataset=DummyDataset(), callbacks=[hotcb_cb]
    )
    trainer.add_callback(Sender(LiveLoad(kernel, 2, "ce")))
    trainer_ref["trainer"] = trainer
    trainer.train()
    assert trainer.state.global_step == 6  # 2 epochs of 3 batches
    assert_live_load(2, "ce", mutable_state, trainer.optimizer.param_groups[0]["lr"])
    assert run_state(RUN)["closed"] is True


def test_a_given_kernel_takes_no_initial_set(tmp_path: Path) -> None:
    from hotcb.adapters.session import AdapterSession

    kernel = HotKernel(run_dir=tmp_path / "run", register=False)
    try:
        with pytest.raises(ValueError, match=r"given a kernel.*\['heartbeat', 'poll_interval'\]"):
            AdapterSession("HotCBLightning", kernel, {"heartbeat": {}}, poll_interval=0)
        session = AdapterSession("HotCBLightning", kernel, env={"loss_state": {"w": 1}})
        session.start(tmp_path / "unused", rank=0)
        assert session.kernel is kernel and session.env["loss_state"] == {"w": 1}
        assert not (tmp_path / "unused").exists()
    finally:
        kernel.close()
