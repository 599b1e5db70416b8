"""A tiny real model and a loop that drives callbacks the way the kernel does."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch


class Loop:
    """Trains a small MLP on synthetic data; `run(cb, steps)` emits after_backward and
    train_step_end like a loop using hotcb would (grads are zeroed at the next step)."""

    def __init__(self, lr: float = 0.05) -> None:
        torch.manual_seed(0)
        self.model = torch.nn.Sequential(
            torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1)
        )
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=lr, momentum=0.9)
        self.lines: list[str] = []
        self.env: dict[str, Any] = {
            "model": self.model,
            "optimizer": self.optimizer,
            "log": self.lines.append,
            "epoch": 0,
        }
        self.step = 0
        self.before_step: Callable[[Loop], None] | None = None

    def run(self, cb: Any, steps: int) -> None:
        for _ in range(steps):
            self.step += 1
            x = torch.randn(16, 8)
            y = x.sum(dim=1, keepdim=True)
            self.optimizer.zero_grad(set_to_none=True)
            loss = torch.nn.functional.mse_loss(self.model(x), y)
            loss.backward()
            self.env["step"], self.env["loss"] = self.step, loss.item()
            if self.before_step is not None:
                self.before_step(self)
            cb.handle("after_backward", self.env)
            self.optimizer.step()
            cb.handle("train_step_end", self.env)


@pytest.fixture
def loop() -> Iterator[Loop]:
    yield Loop()
