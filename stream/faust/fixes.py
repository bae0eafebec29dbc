"""What cohort-sync changes in Faust (faust-streaming 0.15.3) so that no record is lost.

`SafeApp` puts them together; `worker.py` wires the worker on it, gives the record pump the
consumer as `EventConsumer` (rewinds, absent offsets) and calls `heal_stalls`. The
changes, split by concern:

- `WholeFlushBuffer` (`producer.py`): a commit waits for every changelog record written
  before it.
- `TopicTrackingProducer` (`producer.py`): the producer never forgets the partitions of a
  topic it sends to.
- `InOrderConsumer` (`consumer.py`): no gap-filling; only `delivery.InOrderDelivery` says
  which offsets are absent, so a commit never passes a record that was skipped, not handled.
- `SafeApp`: all of the above, plus a second seek to the committed offsets once a
  rebalance has ended, which then tells the agent where each partition starts.
- Fetches wait at most `FETCH_MAX_WAIT_MS` (`consumer.py`; for speed, not safety).
- Faust's `Monitor` sensor is not called for every message (for speed: see
  `SafeApp.on_init_dependencies`).
- A record whose handler does not suspend is handed on without Faust's per-record race of
  tasks (`handoff.py`; for speed: see `QuickHandoff.wait_first`).
- The table recovery starts without Faust's one-second sleep (`tables.py`; for speed).
- A stop ends once the tasks cancelled at its end have, not a whole second later
  (`run.py`, mode's `_sentinel_task`; for speed).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import faust
from faust.types import TP
from faust.types.transports import ConsumerT, ProducerT
from mode import ServiceT

from stream.faust.consumer import (
    STALL_SECONDS,
    EventConsumer,
    InOrderConsumer,
    heal_stalls,
    in_order_consumer,
)
from stream.faust.handoff import QuickHandoff
from stream.faust.producer import TopicTrackingProducer, WholeFlushBuffer
from stream.faust.tables import PromptTableManager

__all__ = [
    "WholeFlushBuffer",
    "TopicTrackingProducer",
    "QuickHandoff",
    "InOrderConsumer",
    "SafeApp",
    "in_order_consumer",
    "EventConsumer",
    "heal_stalls",
    "STALL_SECONDS",
]

log = logging.getLogger(__name__)


class SafeApp(faust.App):
    """faust.App with `TopicTrackingProducer`, `WholeFlushBuffer`, `InOrderConsumer` and
    `PromptTableManager`, and a second seek to the committed offsets once a rebalance has ended.

    Faust's recovery seeks stream partitions to their committed offsets, then resumes flow
    control, which clears the stream queues: records fetched in between never reach the
    agent. Seeking again once the worker is ready re-delivers them at once. On any broker
    this is for liveness, not safety: without it the agent's `InOrderDelivery` finds the
    hole at the next record and rewinds, or `heal_stalls` reads the partition again after
    `STALL_SECONDS`, and nothing is committed past the hole meanwhile. At every such seek
    `on_seeked` gets each assigned partition's starting offset (see `InOrderConsumer`).
    """

    on_seeked: Callable[[Mapping[TP, int | None]], None] | None = None
    on_revoking: Callable[[set[TP]], None] | None = None
    """Called first thing in a rebalance, before Faust waits for the records in hand."""
    on_stopping: Callable[[], Awaitable[None]] | None = None
    """Called first thing when the app stops, before Faust waits for the agent's record."""
    watchdog: Callable[[], Awaitable[None]] | None = None
    """Called about every second from the start on, also during the first table recovery
    (Faust starts the app's timers only once that has ended)."""
    on_refused: Callable[[str, str, BaseException], None] | None = None
    """Called with ("Write", topic, error) when the broker refused a record for good, and
    ("Read", topic, error) when it refuses to let the worker read a topic (not authorized):
    the worker cannot go on. Not for `refusals_handled` topics, whose sender retries."""
    refusals_handled: frozenset[str] = frozenset()
    _reseek: asyncio.Future[None] | None = None

    def __init__(self, id: str, **options: Any) -> None:
        options.setdefault("TableManager", PromptTableManager)
        super().__init__(id, **options)

    async def on_start(self) -> None:
        await super().on_start()
        if self.watchdog is not None:
            self.add_future(self._watch(self.watchdog))

    async def _watch(self, watchdog: Callable[[], Awaitable[None]]) -> None:
        while not self.should_stop:
            await asyncio.sleep(1.0)
            try:
                await watchdog()
            except Exception:  # keep watching: a failing check must not end the worker
                log.exception("watchdog failed")

    async def _on_partitions_revoked(self, revoked: set[TP]) -> None:
        if self.on_revoking is not None:
            self.on_revoking(revoked)
        await super()._on_partitions_revoked(revoked)

    async def on_stop(self) -> None:
        if self.on_stopping is not None:
            await self.on_stopping()
        await super().on_stop()

    def _new_producer(self) -> ProducerT:
        producer = TopicTrackingProducer(self.transport, loop=self.loop, beacon=self.beacon)
        producer.handled = lambda topic: topic in self.refusals_handled
        producer.on_failure = lambda topic, error: self._refused("Write", topic, error)
        buffer = WholeFlushBuffer(loop=self.loop, beacon=producer.beacon)
        buffer.app = self
        producer.buffer = buffer
        return producer

    def _new_consumer(self) -> ConsumerT:
        return InOrderConsumer(
            self.transport,
            callback=self.topics.on_message,
            on_partitions_revoked=self._on_partitions_revoked,
            on_partitions_assigned=self._on_partitions_assigned,
            beacon=self.beacon,
            loop=self.transport.loop,
        )

    def _refused(self, operation: str, topic: str, error: BaseException) -> None:
        if self.on_refused is not None:
            self.on_refused(operation, topic, error)

    def on_init_dependencies(self) -> Iterable[ServiceT]:
        """Faust's `Monitor` sensor keeps statistics on every message, event and table
        access, which nothing here reads (the worker keeps its own `Metrics`). Taking it off
        the sensors made single events about 6% faster; `app.monitor` itself stays, for the
        few places Faust calls it directly."""
        services = super().on_init_dependencies()
        self.sensors.remove(self.monitor)
        return services

    def on_rebalance_start(self) -> None:
        super().on_rebalance_start()
        if self._reseek is not None:  # the last generation's seek must not land in this one
            self._reseek.cancel()
            self._reseek = None

    def on_rebalance_end(self) -> None:
        super().on_rebalance_end()
        self._reseek = asyncio.ensure_future(self.consumer.perform_seek())
