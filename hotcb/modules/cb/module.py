"""``CallbackModule``: the ``cb`` module of a :class:`~hotcb.kernel.HotKernel`.

The kernel reads and parses commands, then routes each ``cb`` op here; the module
applies it to its :class:`~hotcb.modules.cb.controller.HotController` and hands the
kernel the controller's dispatch loop for the hot path. The module never reads
command files itself.

Example:
    >>> import tempfile
    >>> from hotcb.kernel import HotKernel
    >>> kernel = HotKernel(run_dir=tempfile.mkdtemp(), register=False)
    >>> isinstance(kernel.modules["cb"], CallbackModule)
    True
    >>> kernel.close()
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import TYPE_CHECKING, Any

from hotcb.modules.cb.controller import HotController, OpResult
from hotcb.modules.cb.protocol import Env
from hotcb.ops import Op

if TYPE_CHECKING:
    from hotcb.kernel import HotKernel

__all__ = ["CallbackModule"]


class CallbackModule:
    """Kernel module ``cb``: hot callbacks.

    Args:
        controller: an existing controller to drive (a new one by default).
        auto_disable_on_error: passed to a new controller.
        allowed_factories: unmarked factories that may be loaded (see
            :class:`~hotcb.modules.cb.controller.HotController`); the kernel's are added.
    """

    name = "cb"

    def __init__(
        self,
        controller: HotController | None = None,
        *,
        auto_disable_on_error: bool = True,
        allowed_factories: Collection[str] = (),
    ) -> None:
        self.controller = controller or HotController(auto_disable_on_error=auto_disable_on_error)
        self.controller.allowed_factories |= frozenset(allowed_factories)

    def attach(self, kernel: HotKernel) -> None:
        """Called once by the kernel: captured sources go to its run dir, stuck calls are
        published there, the kernel's ``allowed_factories`` apply, and changes the
        controller makes on its own are recorded in its ledger."""
        self.controller.allowed_factories |= kernel.allowed_factories
        if self.controller.sources_dir is None:
            self.controller.sources_dir = kernel.run_dir.sources
        if self.controller.stuck_path is None:
            self.controller.stuck_path = kernel.run_dir.stuck
        self.controller.bind(kernel.recorder(self.name), kernel.mark_changed)

    @property
    def dispatch(self) -> Callable[[Env, Sequence[str]], None]:
        """The hot-path entry: ``dispatch(env, events)``."""
        return self.controller.dispatch

    def apply_op(self, op: Op, env: Env | None = None, *, sha256: str | None = None) -> OpResult:
        return self.controller.apply_op(op, env, sha256=sha256)

    def poll(self, env: Env) -> bool:
        """Safe-point housekeeping: reload python_file callbacks edited on disk."""
        return self.controller.reload_changed_sources(env)

    def spec(self, cb_id: str) -> dict[str, Any] | None:
        return self.controller.spec(cb_id)

    def status(self) -> dict[str, dict[str, Any]]:
        """Per id: ``enabled``, ``loaded``, ``target``, ``params``, ``error``."""
        return self.controller.status()

    def close(self) -> None:
        self.controller.close()
