"""When the worker sends a partition a tick, and which.

The worker's timers never touch state: they send a record to the partition's tick topic,
which the agent then handles in stream iteration like any other record. `Tick(None)` loads
the partition (handing over the syncs it had pending when its last owner stopped), retires
its written syncs and flushes its journal, so its last records are acknowledged. `Tick(now)`
also advances an idle partition to the wall clock, so syncs come due while no events come.

A partition gets one tick at a time: the next waits until the agent handled the last.
Pure: the caller passes the clock's readings and says whether a partition is caught up.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from stream.config import KafkaSettings
from stream.engine.catch_up import CatchUpGuard
from stream.state.partition import PartitionState

__all__ = ["Tick", "TickPolicy"]


@dataclass(frozen=True, slots=True)
class Tick:
    now_ms: int | None
    """The wall clock to advance the partition to (None: only load, retire and flush)."""


class Ticked(Protocol):
    """The processor, as the policy reads it."""

    def state_of(self, partition: int) -> PartitionState | None: ...

    def needs_tick(self, partition: int) -> bool: ...

    def next_due(self, partition: int) -> int | None: ...


class TickPolicy:
    """Which tick each input partition needs; `started` is when the worker started (the
    wall clock, seconds): a partition that never had a record counts as quiet since then."""

    def __init__(self, processor: Ticked, kafka: KafkaSettings, *, started: float) -> None:
        self._processor = processor
        self._kafka = kafka
        self._started = started
        idle_timeout_ms = kafka.idle_timeout_ms
        self.idle_after = None if idle_timeout_ms is None else idle_timeout_ms / 1000
        """How long a partition is quiet before it follows the wall clock (None: never)."""
        self.interval = 1.0 if self.idle_after is None else min(1.0, max(self.idle_after / 4, 0.1))
        """How often the worker's timer asks (seconds)."""
        self.catch_up = CatchUpGuard(kafka)
        self._sent: dict[int, int | None] = {}
        self._last_record: dict[int, float] = {}
        self._busy: set[int] = set()

    # -- what the agent reports

    def record_began(self, partition: int, now: float) -> None:
        self._last_record[partition] = now
        self._busy.add(partition)

    def record_ended(self, partition: int, now: float) -> None:
        self._busy.discard(partition)
        self._last_record[partition] = now

    @property
    def busy(self) -> bool:
        """Whether a record is being handled now."""
        return bool(self._busy)

    def ticked(self, partition: int) -> None:
        """The agent handled the partition's tick: it may get another."""
        self._sent.pop(partition, None)

    def revoke(self, partition: int) -> None:
        """The partition is no longer ours: a tick sent to it may be handled by its new
        owner, so it no longer waits for one (else a later assignment would get none)."""
        self._sent.pop(partition, None)
        self._last_record.pop(partition, None)
        self.catch_up.revoke(partition)

    # -- what to send

    def sent(self, partition: int, tick: Tick) -> None:
        """A tick is on its way to the partition."""
        self._sent[partition] = tick.now_ms

    def waiting(self, partition: int) -> bool:
        """Whether a tick sent to the partition is not handled yet."""
        return partition in self._sent

    async def tick_for(
        self, partition: int, now: float, caught_up: Callable[[], Awaitable[bool]]
    ) -> Tick | None:
        """The tick the input partition needs at `now` (wall clock, seconds), if any:
        loading, retiring or flushing first; then, once it was quiet for `idle_after` and
        has read all its records (`caught_up`), the wall clock when a sync is due by it and
        the partition is not too far behind to follow it (`CatchUpGuard`)."""
        if self.waiting(partition):
            return None
        state = self._processor.state_of(partition)
        if state is None or self._processor.needs_tick(partition):
            return Tick(None)
        quiet_since = self._last_record.get(partition, self._started)
        if self.idle_after is None or now - quiet_since < self.idle_after:
            return None
        if not await caught_up():
            return None
        due = self._processor.next_due(partition)
        now_ms = int(now * 1000)
        if due is None or now_ms - self._kafka.allowed_lateness_ms < due:
            return None
        if self.catch_up.holds_back(partition, state.watermark, now_ms):
            return None
        return Tick(now_ms)

    def flushes(self, dirty: Iterable[int]) -> list[int]:
        """Of the partitions whose records wait for a flush, those to send a tick now."""
        return [partition for partition in dirty if not self.waiting(partition)]

    def warnings(self, now_ms: int) -> list[str]:
        return self.catch_up.warnings(now_ms)
