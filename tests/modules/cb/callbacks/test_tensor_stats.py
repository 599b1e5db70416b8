from __future__ import annotations

from typing import Any

import pytest
import torch

from hotcb.modules.cb.callbacks import tensor_stats
from hotcb.modules.cb.callbacks.tensor_stats import TensorStatsCallback, tensor_summary


def test_weight_and_activation_stats_match_torch(loop: Any) -> None:
    captured: dict[str, torch.Tensor] = {}
    loop.model[1].register_forward_hook(
        lambda m, i, o: captured.__setitem__("relu", o.detach().clone())
    )
    cb = TensorStatsCallback(every=4, pattern="[01]")
    loop.run(cb, 4)
    stats = cb.last
    assert set(stats) == {"0", "1"}
    w = loop.model[0].weight.detach()
    assert stats["0"]["weight"]["mean"] == pytest.approx(float(w.mean()), rel=1e-5)
    assert stats["0"]["weight"]["std"] == pytest.approx(float(w.std(unbiased=False)), rel=1e-5)
    act = captured["relu"]  # the activation of step 4's forward pass
    assert stats["1"]["activation"]["zero_frac"] == pytest.approx(float((act == 0).float().mean()))
    assert stats["1"]["activation"]["max"] == pytest.approx(float(act.max()), rel=1e-6)
    assert "weight" not in stats["1"]  # ReLU has no parameters


def test_hooks_are_removed_on_close_and_moved_on_pattern_change(loop: Any) -> None:
    cb = TensorStatsCallback(every=2, pattern="0")
    loop.run(cb, 1)
    assert len(loop.model[0]._forward_hooks) == 1 and len(loop.model[2]._forward_hooks) == 0
    cb.set_params(pattern="2")
    assert len(loop.model[0]._forward_hooks) == 0 and len(loop.model[2]._forward_hooks) == 1
    cb.close()
    assert all(len(m._forward_hooks) == 0 for m in loop.model)


def test_idle_hooks_capture_nothing_between_reports(
    loop: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between reports a hook does no work: no summary is computed on a forward pass,
    except during the step that reports (every=10: only step 10's forward)."""
    summarised_at: list[int] = []
    real = tensor_stats.tensor_summary

    def counting(t: torch.Tensor) -> dict[str, float]:
        summarised_at.append(loop.step)
        return real(t)

    monkeypatch.setattr(tensor_stats, "tensor_summary", counting)
    cb = TensorStatsCallback(every=10, pattern="*")
    loop.run(cb, 9)
    assert summarised_at == [] and cb.last == {}
    loop.run(cb, 1)
    # step 10: an activation for each of the 3 modules, weight and bias of the 2 Linears
    assert summarised_at == [10] * 7
    assert {name: sorted(entry) for name, entry in cb.last.items()} == {
        "0": ["activation", "bias", "weight"],
        "1": ["activation"],
        "2": ["activation", "bias", "weight"],
    }
    loop.run(cb, 9)
    assert summarised_at == [10] * 7  # idle again until step 20


def test_summary_counts_non_finite() -> None:
    s = tensor_summary(torch.tensor([0.0, 1.0, float("nan"), float("inf")]))
    assert s["nonfinite_frac"] == 0.5 and s["zero_frac"] == 0.25 and s["max"] == 1.0
