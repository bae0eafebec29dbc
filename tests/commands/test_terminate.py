"""SIGTERM as an exception within a block, or only noted there, and the handler before it
put back after."""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest

from stream.commands.terminate import Terminated, sigterm_noted, sigterm_raises


@pytest.fixture
def seen_before() -> Iterator[list[int]]:
    """A SIGTERM handler of the test's own, installed around the block under test: the
    signals it saw."""
    seen: list[int] = []

    def before(signum: int, frame: object) -> None:
        seen.append(signum)

    previous = signal.signal(signal.SIGTERM, before)
    try:
        yield seen
        assert signal.getsignal(signal.SIGTERM) is before  # put back after the block
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_a_sigterm_within_the_block_raises_terminated_and_the_handler_before_comes_back(
    seen_before: list[int],
) -> None:
    with pytest.raises(Terminated), sigterm_raises():
        signal.raise_signal(signal.SIGTERM)
    assert seen_before == []
    signal.raise_signal(signal.SIGTERM)  # outside the block: the handler before
    assert seen_before == [signal.SIGTERM]


def test_terminated_is_not_an_exception_so_no_error_handler_takes_it() -> None:
    assert not issubclass(Terminated, Exception)
    with pytest.raises(Terminated), sigterm_raises():
        try:
            signal.raise_signal(signal.SIGTERM)
        except Exception:  # what a library's error handling would catch
            pytest.fail("Terminated was taken for an error")


def test_a_sigterm_within_a_noted_block_is_only_noted_until_checked(
    seen_before: list[int],
) -> None:
    with pytest.raises(Terminated), sigterm_noted() as sigterm:
        sigterm.check()  # nothing yet
        signal.raise_signal(signal.SIGTERM)
        assert sigterm.arrived
        sigterm.check()
    assert seen_before == []


def test_a_noted_block_puts_the_handler_before_back(seen_before: list[int]) -> None:
    with sigterm_noted() as sigterm:
        signal.raise_signal(signal.SIGTERM)
    assert sigterm.arrived and seen_before == []
    signal.raise_signal(signal.SIGTERM)
    assert seen_before == [signal.SIGTERM]
