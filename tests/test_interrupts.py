"""SIGTERM where hotcb owns SIGINT: a handler that was there before runs first, then the
marked exit that no callback containment swallows; an ignored SIGTERM stays ignored; release
puts the previous handler back. (The end-to-end proof with a real training process and
`kill -TERM` is in tests/cli/test_answers.py.)"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from types import FrameType

import pytest

from hotcb import interrupts


@pytest.fixture
def handlers() -> Iterator[None]:
    """Python's default SIGINT and SIGTERM handling for the test, restored after it."""
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    yield
    signal.signal(signal.SIGINT, before[0])
    signal.signal(signal.SIGTERM, before[1])


def test_sigterm_chains_to_the_previous_handler_then_exits_marked(handlers: None) -> None:
    seen: list[int] = []

    def framework(signum: int, frame: FrameType | None) -> None:
        seen.append(signum)

    signal.signal(signal.SIGTERM, framework)
    assert interrupts.install()
    try:
        with pytest.raises(SystemExit) as exc:
            signal.raise_signal(signal.SIGTERM)
        assert seen == [signal.SIGTERM]
        assert exc.value.code == interrupts.TERMINATED_STATUS == 143
        assert interrupts.is_user_interrupt(exc.value)  # never contained as a callback error
        assert not interrupts.is_user_interrupt(SystemExit(143))  # a callback's own exit is
    finally:
        interrupts.release()
    assert signal.getsignal(signal.SIGTERM) is framework


def test_an_ignored_sigterm_stays_ignored(handlers: None) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    assert interrupts.install()
    try:
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN
        signal.raise_signal(signal.SIGTERM)  # nothing happens
    finally:
        interrupts.release()


def test_no_sigterm_handling_where_hotcb_does_not_own_sigint(handlers: None) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # e.g. a background job
    assert not interrupts.install()
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


def test_an_install_after_the_handler_was_replaced_owns_it_alone(handlers: None) -> None:
    assert interrupts.install()  # e.g. a kernel that is never closed
    signal.signal(signal.SIGINT, signal.default_int_handler)  # someone resets SIGINT
    assert interrupts.install()
    interrupts.release()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
