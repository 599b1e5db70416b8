"""Lightning and HF callbacks under hotcb: recognised by what they are, wrapped, forwarded
with their real hook arguments, set live (state kept), refused when unsafe; the CLI's
static check agrees; the reference project's adapter names."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

L = pytest.importorskip("lightning.pytorch")
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint  # noqa: E402

from hotcb.adapters.lightning import HotCallbackController  # noqa: E402
from hotcb.kernel import HotKernel  # noqa: E402
from hotcb.modules.cb.static_target import check_module_target  # noqa: E402
from hotcb.ops import CallbackTarget, Op  # noqa: E402
from tests.adapters.test_lightning import TinyModule, loader, quiet_trainer  # noqa: E402

HOOK_LOG = '''
import lightning.pytorch as L

class HookLog(L.Callback):
    """Records each hook it gets, with the batch index (a real argument)."""
    def __init__(self, tag="x"):
        self.tag, self.seen = tag, []
    def on_train_start(self, trainer, pl_module):
        self.seen.append(("start", trainer.global_step))
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.seen.append(("batch", batch_idx))
    def state_dict(self):
        return {"n": len(self.seen)}
'''


def test_forwarding_set_disable_and_state(tmp_path: Path) -> None:
    (tmp_path / "hooklog.py").write_text(HOOK_LOG)
    seen: dict[str, Any] = {}

    class Probe(L.Callback):  # type: ignore[misc,name-defined]
        def on_train_batch_start(self, trainer: Any, *rest: Any) -> None:
            kernel = ctl.session.kernel
            step = trainer.global_step
            if kernel is None:
                return
            if step == 2:
                kernel.submit(Op(op="disable", id="hooks"))
            if step == 4:
                seen["during"] = list(kernel.callbacks.get("hooks").callback.seen)  # type: ignore[union-attr]
                kernel.submit(Op(op="set", id="hooks", params={"tag": "u"}))
                seen["state"] = ctl.state_dict()

    ctl = HotCallbackController(
        run_dir=tmp_path / "hotcb",
        callbacks={"hooks": {"_target_": f"{tmp_path / 'hooklog.py'}:HookLog"}},
        log=lambda m: None,
    )
    trainer = quiet_trainer(tmp_path, [ctl, Probe()], max_steps=5, limit_val_batches=0)
    trainer.fit(TinyModule(), loader())
    # on_train_start and the first two batches (real batch_idx), then nothing while disabled
    assert seen["during"] == [("start", 0), ("batch", 0), ("batch", 1)]
    assert seen["state"] == {"wrapped": {"hooks": {"n": 3}}}  # its state_dict, kept


def test_live_params_say_what_they_mean_and_refuse_the_unsafe() -> None:
    from hotcb.adapters.lightning_callbacks import wrap

    ckpt = wrap(ModelCheckpoint(monitor="val", every_n_epochs=1), "ckpt")
    ckpt.set_params(every_n_epochs=3)
    assert ckpt.callback._every_n_epochs == 3
    with pytest.raises(ValueError, match="cannot change mid-run: the kept checkpoints"):
        ckpt.set_params(monitor="other")
    with pytest.raises(ValueError, match="exclusive"):
        ckpt.set_params(every_n_train_steps=10)
    assert "every N-th epoch" in ckpt.describe()["every_n_epochs"]
    es = wrap(EarlyStopping(monitor="val", patience=2), "es")
    es.callback.wait_count = 7
    with pytest.raises(ValueError, match="patience must be an int >= 0"):
        es.set_params(patience=-1, verbose=True)
    assert es.callback.verbose is False  # nothing changed by a refused set
    es.set_params(patience=9, min_delta=0.5)
    assert (es.callback.patience, es.callback.min_delta, es.callback.wait_count) == (9, -0.5, 7)


def test_a_live_load_of_a_lightning_callback_and_a_refused_one(tmp_path: Path) -> None:
    kernel = HotKernel(run_dir=tmp_path / "run", register=False)
    lrm = CallbackTarget("module", "lightning.pytorch.callbacks", "LearningRateMonitor")
    entry = kernel.submit(Op(op="load", id="lrm", target=lrm, init={"logging_interval": "step"}))
    assert entry.decision == "applied", entry.error
    entry = kernel.submit(Op(op="set", id="lrm", params={"log_momentum": "yes"}))
    assert entry.decision == "failed" and "must be true or false" in (entry.error or "")
    bad = CallbackTarget("module", "lightning.pytorch", "LightningModule")
    entry = kernel.submit(Op(op="load", id="m", target=bad))
    assert entry.decision == "failed" and "docs/protocol.md" in (entry.error or "")
    kernel.close()


def test_the_cli_checks_them_statically() -> None:
    assert check_module_target("lightning.pytorch.callbacks", "LearningRateMonitor").verdict == "ok"
    assert check_module_target("lightning.pytorch.callbacks", "EarlyStopping").verdict == "ok"
    assert check_module_target("lightning.pytorch", "LightningModule").verdict == "refused"


def test_hf_trainer_callbacks_are_wrapped_too() -> None:
    pytest.importorskip("transformers")
    from transformers import EarlyStoppingCallback, TrainerControl, TrainerState

    from hotcb.adapters.hf import HotCBHFCallback, HotHFCallback
    from hotcb.modules.cb.controller import HotController

    assert HotCBHFCallback is HotHFCallback
    ctl = HotController()
    target = CallbackTarget("module", "transformers", "EarlyStoppingCallback")
    result = ctl.apply_op(
        Op(op="load", id="es", target=target, init={"early_stopping_patience": 1})
    )
    assert result.decision == "applied", result.error
    assert ctl.apply_op(Op(op="set", id="es", params={"early_stopping_patience": 4})).decision == (
        "applied"
    )
    wrapped = ctl.get("es")
    assert isinstance(wrapped.callback, EarlyStoppingCallback)  # type: ignore[union-attr]
    assert wrapped.callback.early_stopping_patience == 4  # type: ignore[union-attr]
    assert ctl.declares("hf:on_evaluate")
    args = SimpleNamespace(metric_for_best_model="loss", greater_is_better=False)
    control, state = TrainerControl(), TrainerState(best_metric=1.0)
    env = {"hook_args": (args, state, control), "hook_kwargs": {"metrics": {"eval_loss": 2.0}}}
    for _ in range(3):
        ctl.dispatch(env, ["hf:on_evaluate"])
    assert not control.should_training_stop  # 3 evaluations without improvement: patience 4
    ctl.dispatch(env, ["hf:on_evaluate"])
    assert control.should_training_stop and ctl.status()["es"]["error"] is None


def test_the_reference_projects_names() -> None:
    from hotcb.adapters.lightning import HotCBLightning

    assert HotCBLightning is HotCallbackController
