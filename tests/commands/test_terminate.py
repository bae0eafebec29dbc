"""SIGTERM as an exception within a block, and the handler before it put back after."""

from __future__ import annotations

import signal

import pytest

from stream.commands.terminate import Terminated, sigterm_noted, sigterm_raises


def test_a_sigterm_within_the_block_raises_terminated_and_the_handler_before_comes_back() -> None:
    seen: list[int] = []

    def before(signum: int, frame: object) -> None:
        seen.append(signum)

    previous = signal.signal(signal.SIGTERM, before)
    try:
        with pytest.raises(Terminated), sigterm_raises():
            signal.raise_signal(signal.SIGTERM)
        assert signal.getsignal(signal.SIGTERM) is before
        signal.raise_signal(signal.SIGTERM)  # outside the block: the handler before
        assert seen == [signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_terminated_is_not_an_exception_so_no_error_handler_takes_it() -> None:
    assert not issubclass(Terminated, Exception)
    with pytest.raises(Terminated), sigterm_raises():
        try:
            signal.raise_signal(signal.SIGTERM)
        except Exception:  # what a library's error handling would catch
            pytest.fail("Terminated was taken for an error")


def test_a_sigterm_within_a_noted_block_is_only_noted_until_checked() -> None:
    with pytest.raises(Terminated), sigterm_noted() as sigterm:
        sigterm.check()  # nothing yet
        signal.raise_signal(signal.SIGTERM)
        assert sigterm.arrived
        sigterm.check()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_a_noted_block_puts_the_handler_before_back() -> None:
    seen: list[int] = []

    def before(signum: int, frame: object) -> None:
        seen.append(signum)

    previous = signal.signal(signal.SIGTERM, before)
    try:
        with sigterm_noted() as sigterm:
            signal.raise_signal(signal.SIGTERM)
        assert sigterm.arrived and seen == []
        signal.raise_signal(signal.SIGTERM)
        assert seen == [signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, previous)
