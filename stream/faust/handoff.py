"""Handing a fetched record to its stream without Faust's per-record race of tasks, when
the handler does not suspend (for speed: see `QuickHandoff.wait_first`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Sequence
from typing import Any

from mode import Service
from mode.services import WaitResults

__all__ = ["QuickHandoff"]

log = logging.getLogger(__name__)


class QuickHandoff(Service):
    """A mode service whose `wait_first` runs a first coroutine that finishes without
    suspending at once, instead of racing it as a task (see `wait_first`)."""

    async def wait_first(self, *coros: Any, timeout: Any = None) -> WaitResults:
        """Faust hands each fetched record to the streams by racing its handler against a
        flow stop (`wait_first(handler, suspend_flow.wait())`): four tasks a record, more
        than the worker's own work on a single event. A handler that finishes without
        suspending (room in the stream queue, flow on: nearly always, see
        `app.WORKER_FAUST_DEFAULTS`) would have won that race, so it runs here at once. One
        that suspends goes on under the same race as before."""
        first = coros[0] if coros else None
        if (
            timeout is not None
            or not asyncio.iscoroutine(first)
            or self._stopped.is_set()
            or self._crashed.is_set()
        ):
            return await super().wait_first(*coros, timeout=timeout)
        try:
            yielded = first.send(None)
        except StopIteration as done:
            _close(coros[1:])
            return WaitResults([first], [done.value], False)
        except BaseException:
            _close(coros[1:])
            raise
        return await super().wait_first(_resumed(first, yielded), *coros[1:])


def _close(coros: Sequence[Any]) -> None:
    """Close coroutines that will not run (no "never awaited" warning)."""
    for coro in coros:
        if asyncio.iscoroutine(coro):
            coro.close()


async def _resumed(coro: Coroutine[Any, Any, Any], yielded: Any) -> Any:
    """The rest of a coroutine that suspended on `yielded` (a future, or None for a bare
    yield), driven as a task drives one: resumed once the future is done; cancelling this
    cancels the future and throws the cancellation into the coroutine."""
    while True:
        if yielded is not None and not asyncio.isfuture(yielded):
            coro.close()
            raise RuntimeError(f"a record handler yielded {yielded!r}, not a future")
        cancelled: asyncio.CancelledError | None = None
        try:
            if yielded is None:
                await asyncio.sleep(0)
            else:
                yielded._asyncio_future_blocking = False  # as a task does on taking it
                await yielded
        except asyncio.CancelledError as exc:
            cancelled = exc
        except Exception:  # noqa: S110  the coroutine reads the failure from its future
            pass
        try:
            yielded = coro.send(None) if cancelled is None else coro.throw(cancelled)
        except StopIteration as done:
            return done.value
