"""SIGTERM turned into a stop the command runs itself, so that what it started (the worker's
embedded broker, replay's share processes) is stopped with it rather than left running when
the process ends where it is.

Two forms: `sigterm_raises` raises `Terminated` wherever the main thread is, as Ctrl-C
does; `sigterm_noted` only notes the signal, for a loop that looks between short waits and
raises `Terminated` itself. The second is for code that waits on multiprocessing: an
exception raised at any bytecode can land in a finaliser, where Python prints it and goes
on, or half-way through a queue's read."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from types import FrameType

__all__ = ["Noted", "Terminated", "sigterm_noted", "sigterm_raises"]


class Terminated(BaseException):
    """SIGTERM arrived. A BaseException, as KeyboardInterrupt is, so that no `except
    Exception` on the way takes it for an error."""


@contextlib.contextmanager
def sigterm_raises() -> Iterator[None]:
    """Within the block a SIGTERM raises `Terminated` in the main thread, unless another
    handler takes the signal over meanwhile (as Faust's loop does); the handler before is
    put back after it. Use it only where ending at once would leave something running:
    once it raises, the process ends only after the `finally` blocks and the threads they
    wait for (a put blocked in an executor can hold it for minutes)."""
    previous = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        _put_back(previous)


class Noted:
    """Whether a SIGTERM arrived within a `sigterm_noted` block."""

    def __init__(self) -> None:
        self.arrived = False

    def check(self) -> None:
        """Raise `Terminated` if a SIGTERM arrived: call it where stopping is safe."""
        if self.arrived:
            raise Terminated


@contextlib.contextmanager
def sigterm_noted() -> Iterator[Noted]:
    """Within the block a SIGTERM only sets `Noted.arrived`; the handler before is put back
    after it. Every wait in the block must be short (a timeout), so that the loop around it
    looks soon: Python resumes an interrupted wait after running the handler."""
    noted = Noted()

    def note(signum: int, frame: FrameType | None) -> None:
        noted.arrived = True

    previous = signal.signal(signal.SIGTERM, note)
    try:
        yield noted
    finally:
        _put_back(previous)


def _raise(signum: int, frame: FrameType | None) -> None:
    raise Terminated


def _put_back(previous: signal._HANDLER) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)
