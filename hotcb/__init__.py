"""hotcb: live, hot-swappable instrumentation callbacks for PyTorch training.

Importing ``hotcb`` is cheap: it imports neither torch nor Hydra. The training side
lives in :mod:`hotcb.kernel` and :mod:`hotcb.modules.cb`; the CLI in :mod:`hotcb.cli`.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
