"""One lane per destination: built syncs wait there, and the lane writes several at once.

A lane writes up to `SYNCS_AT_ONCE` syncs at a time, each of a different cohort, so an
upload that waits on the network does not hold up another cohort's. A cohort's own syncs
land one after another, in the order they were decided: a reader never sees its sync T+1
before its sync T. A destination that fails (an outage, a missing bucket) holds up its own
lane only: the worker goes on deciding syncs, and every other destination goes on writing.
A lane holds built files in memory up to `max_bytes` (always at least one sync); past that,
`submit` waits for room, so memory stays bounded and a long outage slows the worker down
instead. What a lane holds is also pending in the worker's table: a stop or a crash loses
nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from stream.domain.naming import DIFF_TYPES
from stream.errors import WriteAbandoned
from stream.output.sync import SyncOutput
from stream.output.writer import SyncWriter
from stream.sinks import PUTS_AT_ONCE

__all__ = ["DestinationLanes", "SYNCS_AT_ONCE"]

log = logging.getLogger(__name__)

#: How many syncs (of different cohorts) a lane writes at once: each puts its CSV files at
#: once (`SyncWriter`), so this many keep the writer's threads busy.
SYNCS_AT_ONCE = PUTS_AT_ONCE // len(DIFF_TYPES)

_Entry = tuple[SyncOutput, Callable[[], None]]


@dataclass
class _Lane:
    by_cohort: dict[str, deque[_Entry]] = field(default_factory=dict)
    """The syncs not yet landed, each cohort's in the order submitted (the first of a
    cohort being written is still here)."""
    ready: deque[str] = field(default_factory=deque)
    """Cohorts with a sync waiting and none being written, in the order they became so."""
    writing: set[str] = field(default_factory=set)
    count: int = 0
    bytes: int = 0
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def is_empty(self) -> bool:
        return not self.count

    def add(self, entry: _Entry) -> None:
        cohort = entry[0].cohort_id
        waiting = self.by_cohort.setdefault(cohort, deque())
        waiting.append(entry)
        if len(waiting) == 1 and cohort not in self.writing:
            self.ready.append(cohort)
        self.count += 1
        self.bytes += entry[0].size

    async def take(self) -> _Entry:
        """The next sync to write, once there is one: the first of the cohort that has
        waited longest. Its cohort is being written until `landed`."""
        async with self.changed:  # waited for and taken under the lock: no other writer
            await self.changed.wait_for(lambda: bool(self.ready))  # can take it between
            cohort = self.ready.popleft()
            self.writing.add(cohort)
            return self.by_cohort[cohort][0]

    def landed(self, output: SyncOutput) -> None:
        cohort = output.cohort_id
        waiting = self.by_cohort[cohort]
        waiting.popleft()
        self.writing.discard(cohort)
        if waiting:
            self.ready.append(cohort)
        else:
            del self.by_cohort[cohort]
        self.count -= 1
        self.bytes -= output.size

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
            lane.wait_until(lambda: lane.is_empty() or lane.bytes + size <= self.max_bytes)
        )
        lane.add((output, written))
        self._report(output.destination, lane)
        await lane.notify()

    async def drain(self, timeout: float | None) -> bool:
        """Wait up to `timeout` seconds (None: as long as it takes) for every lane to
        empty; True if they did."""
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
            lane.tasks = [
                asyncio.ensure_future(self._write(destination, lane)) for _ in range(SYNCS_AT_ONCE)
            ]
        return lane

    async def _write(self, destination: str, lane: _Lane) -> None:
        """One of the lane's writers: takes the next sync whose cohort has none being
        written, and writes it until it has landed."""
        while True:
            try:
                output, written = await self.writer.unless_abandoned(lane.take())
            except WriteAbandoned:
                return
            while True:
                try:
                    await self.writer.land(output)
                    break
                except WriteAbandoned:
                    return
                except Exception:  # a bug: keep the writer alive, the cohort's sync stays next
                    log.exception("destination %s: writing a sync failed", destination)
                    await asyncio.sleep(1.0)
            lane.landed(output)
            self._report(destination, lane)
            await lane.notify()
            written()

    def _report(self, destination: str, lane: _Lane) -> None:
        self.writer.metrics.queued_syncs[destination] = lane.count
