"""The ``opt`` kernel module: live optimizer hyperparameters (lr, weight decay, momentum,
betas, gradient clipping), scheduler-aware. See docs/opt-loss.md.

Importing it does not import torch (the CLI checks commands with :mod:`.params`).
"""

from __future__ import annotations

from hotcb.modules.opt.module import OPT_OPS, OptModule

__all__ = ["OPT_OPS", "OptModule"]
