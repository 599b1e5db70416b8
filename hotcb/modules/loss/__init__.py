"""The ``loss`` kernel module: live loss weights, term switches and ramps in a mapping the
app's loss function reads. See docs/opt-loss.md.

Importing it does not import torch (the CLI checks commands with :mod:`.params`).
"""

from __future__ import annotations

from hotcb.modules.loss.module import LOSS_OPS, LossModule

__all__ = ["LOSS_OPS", "LossModule"]
