"""SIGTERM as an exception, as Ctrl-C is one: the `finally` and `with` blocks of a command
then run, so what it started (the worker's embedded broker) is stopped with it rather than
left running when the process ends where it is."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from types import FrameType

__all__ = ["Terminated", "sigterm_raises"]


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
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def _raise(signum: int, frame: FrameType | None) -> None:
    raise Terminated
