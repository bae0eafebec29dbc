"""One lane per destination: built syncs wait in order, and one task writes them.

A destination that fails (an outage, a missing bucket) holds up its own lane only: the
worker goes on deciding syncs, and every other destination goes on writing. A lane holds
built files in memory up to `max_bytes` (always at least one sync); past that, `submit`
waits for room, so memory stays bounded and a long outage slows the worker down instead.
What a lane holds is also pending in the worker's table: a stop or a crash loses nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from stream.errors import WriteAbandoned
from stream.output.sync import SyncOutput
from stream.output.writer import SyncWriter

__all__ = ["DestinationLanes"]

log = logging.getLogger(__name__)


@dataclass
class _Lane:
    waiting: deque[tuple[SyncOutput, Callable[[], None]]] = field(default_factory=deque)
    bytes: int = 0
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    task: asyncio.Task[None] | None = None

    def is_empty(self) -> bool:
        return not self.waiting

    async def notify(self) -> None:
        async with self.changed:
            self.changed.notify_all()

    async def wait_until(self, condition: Callable[[], bool]) -> None:
        async with self.changed:
            await self.changed.wait_for(condition)


class DestinationLanes:
    def __init__(self, writer: SyncWriter, *, max_bytes: int = 256 * 1024 * 1024) -> None:
        self.writer = writer
        self.max_bytes = max_bytes
        self._lanes: dict[str, _Lane] = {}

    async def submit(self, build: Callable[[], SyncOutput], written: Callable[[], None]) -> None:
        """Build the sync now, then queue it on its destination's lane; `written` is called
        once it has landed. Raises `WriteAbandoned` if the worker stops meanwhile."""
        output = await self.writer.build(build)
        lane = self._lane(output.destination)
        size = output.size
        await self.writer.unless_abandoned(
            lane.wait_until(lambda: not lane.waiting or lane.bytes + size <= self.max_bytes)
        )
        lane.waiting.append((output, written))
        lane.bytes += size
        self._report(output.destination, lane)
        await lane.notify()

    async def drain(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for every lane to empty; True if they did."""
        emptied = [lane.wait_until(lane.is_empty) for lane in self._lanes.values()]
        try:
            await asyncio.wait_for(asyncio.gather(*emptied), timeout)
        except TimeoutError:
            return False
        return True

    def _lane(self, destination: str) -> _Lane:
        lane = self._lanes.get(destination)
        if lane is None:
            lane = self._lanes[destination] = _Lane()
            lane.task = asyncio.ensure_future(self._write_in_order(destination, lane))
        return lane

    async def _write_in_order(self, destination: str, lane: _Lane) -> None:
        while True:
            try:
                await self.writer.unless_abandoned(lane.wait_until(lambda: bool(lane.waiting)))
                output, written = lane.waiting[0]
                await self.writer.land(output)
            except WriteAbandoned:
                return
            except Exception:  # a bug: keep the lane alive, the sync stays first
                log.exception("destination %s: writing a sync failed", destination)
                await asyncio.sleep(1.0)
                continue
            lane.waiting.popleft()
            lane.bytes -= output.size
            self._report(destination, lane)
            await lane.notify()
            written()

    def _report(self, destination: str, lane: _Lane) -> None:
        self.writer.metrics.queued_syncs[destination] = len(lane.waiting)
