"""The defaults that name a kernel module: the one place outside the cb module that spells
out ``"cb"``. A leaf (it imports nothing), so the ledger reader and ``hotcb --help`` can use
it without importing the command parser.

>>> DEFAULT_MODULE
'cb'
"""

from __future__ import annotations

__all__ = ["DEFAULT_MODULE"]

#: The module of a command (and of a ledger line from before modules) that names none:
#: the hot-callback module.
DEFAULT_MODULE = "cb"
