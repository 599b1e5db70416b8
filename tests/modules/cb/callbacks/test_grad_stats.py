from __future__ import annotations

from typing import Any

import pytest
import torch

from hotcb.modules.cb.callbacks.grad_stats import GradStatsCallback


def test_global_norm_equals_torch_total_norm(loop: Any) -> None:
    seen: list[tuple[float, float]] = []

    def capture(lp: Any) -> None:
        grads = [p.grad for p in lp.model.parameters() if p.grad is not None]
        seen.append(
            (float(torch.nn.utils.get_total_norm(grads)), float(max(g.abs().max() for g in grads)))
        )

    loop.before_step = capture
    cb = GradStatsCallback(every=3, per_layer=True, top_k=2)
    loop.run(cb, 6)
    assert cb.last["step"] == 6
    assert cb.last["global_norm"] == pytest.approx(seen[5][0], rel=1e-6)
    assert cb.last["max_abs"] == pytest.approx(seen[5][1], rel=1e-6)
    per_layer = cb.last["per_layer"]
    assert set(per_layer) == {n for n, _ in loop.model.named_parameters()}
    assert per_layer["0.weight"] == pytest.approx(float(loop.model[0].weight.grad.norm()), rel=1e-6)
    lines = [line for line in loop.lines if line.startswith("[grad_stats] step=6")]
    assert len(lines) == 1 and lines[0].count("norm/") == 2  # top_k=2 layers


def test_computes_once_per_step_and_only_every_n(loop: Any) -> None:
    cb = GradStatsCallback(every=2)
    loop.run(cb, 5)
    assert [line.split()[1] for line in loop.lines] == ["step=2", "step=4"]


def test_bad_params_change_nothing() -> None:
    cb = GradStatsCallback()
    with pytest.raises(ValueError, match="per_layer must be true or false"):
        cb.set_params(every=3, per_layer="yes")
    assert (cb.every, cb.per_layer) == (50, False)
