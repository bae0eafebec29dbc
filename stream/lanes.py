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

from .errors import WriteAbandoned
from .sync import SyncOutput
from .writer import SyncWriter

__all__ = ["DestinationLanes"]

log = logging.getLogger(__name__)


@dataclass
class _Lane:
    waiting: deque[tuple[SyncOutput, Callable[[], None]]] = field(default_factory=deque)
    bytes: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None


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
        size = _size(output)
        while lane.waiting and lane.bytes + size > self.max_bytes:
            await self._changed(lane)
        lane.waiting.append((output, written))
        lane.bytes += size
        self._report(output.destination, lane)
        lane.changed.set()

    def queued(self) -> dict[str, int]:
        """Syncs waiting per destination."""
        return {name: len(lane.waiting) for name, lane in self._lanes.items()}

    async def drain(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for every lane to empty; True if they did."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while any(lane.waiting for lane in self._lanes.values()):
            left = deadline - loop.time()
            if left <= 0:
                return False
            waits = [asyncio.ensure_future(lane.changed.wait()) for lane in self._lanes.values()]
            await asyncio.wait(waits, timeout=left, return_when=asyncio.FIRST_COMPLETED)
            for waiter in waits:
                waiter.cancel()
            for lane in self._lanes.values():
                lane.changed.clear()
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
                while not lane.waiting:
                    await self._changed(lane)
                output, written = lane.waiting[0]
                await self.writer.land(output)
            except WriteAbandoned:
                return
            except Exception:  # a bug: keep the lane alive, the sync stays first
                log.exception("destination %s: writing a sync failed", destination)
                await asyncio.sleep(1.0)
                continue
            lane.waiting.popleft()
            lane.bytes -= _size(output)
            self._report(destination, lane)
            lane.changed.set()
            written()

    async def _changed(self, lane: _Lane) -> None:
        lane.changed.clear()
        await self.writer.unless_abandoned(lane.changed.wait())

    def _report(self, destination: str, lane: _Lane) -> None:
        self.writer.metrics.queued_syncs[destination] = len(lane.waiting)


def _size(output: SyncOutput) -> int:
    return sum(len(file.data) for file in (*output.csv_files, output.manifest))
