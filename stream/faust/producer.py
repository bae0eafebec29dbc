"""What the worker changes in Faust's producer so a commit never passes the state it
covers: a flush that waits for every changelog record, metadata kept for every topic, and a
record the broker refused (not authorized, too large, out of retries) remembered, so that
nothing is committed after it.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from faust.transport.drivers.aiokafka import Producer as AIOKafkaProducer
from faust.transport.producer import ProducerBuffer
from faust.types import HeadersArg
from faust.types.tuples import FutureMessage, RecordMetadata

__all__ = ["WholeFlushBuffer", "TopicTrackingProducer"]

log = logging.getLogger(__name__)


class WholeFlushBuffer(ProducerBuffer):
    """Faust's producer buffer, with a `flush` that returns only once every message put
    into it has reached the Kafka client.

    Table writes become changelog records through this buffer, and a commit flushes it
    before committing offsets. Faust's own flush returns when no message left the buffer
    for 0.1 s, or as soon as the queue is empty while its sender still holds the last
    message (waiting for room in the client: one round trip with one-record batches). The
    offsets were then committed ahead of the changelog, and a kill -9 at that moment lost
    state for records the group would never re-deliver. Needed on every broker: the flush
    test in `tests/integration/test_faust_edge.py` shows Faust's own buffer returning with
    records in flight on Apache Kafka.
    """

    def __post_init__(self) -> None:
        super().__post_init__()
        self._unsent = 0
        self._all_sent = asyncio.Event()
        self._all_sent.set()

    def put(self, fut: FutureMessage) -> None:
        self._unsent += 1
        self._all_sent.clear()
        super().put(fut)

    async def _send_pending(self, fut: FutureMessage) -> None:
        try:
            await super()._send_pending(fut)
        finally:
            self._unsent -= 1
            if self._unsent == 0:
                self._all_sent.set()

    async def flush(self) -> None:
        while self._unsent:
            if self.should_stop:  # the sender task is ending: send what is left here
                while not self.pending.empty():
                    await self._send_pending(self.pending.get_nowait())
            try:
                await asyncio.wait_for(self._all_sent.wait(), timeout=0.1)
            except TimeoutError:
                continue


class TopicTrackingProducer(AIOKafkaProducer):
    """Faust's aiokafka producer, which adds every topic it sends to to the topics its
    client keeps metadata for.

    aiokafka (0.14) adds a topic to that list only when a send finds its partitions unknown.
    Its first metadata fetch covers every topic, so topics that existed then are never
    added; the first send to a newer topic (the worker's ticks) then narrows every later
    fetch to the listed ones, and the others' partitions are forgotten. A record already
    waiting for such a partition then waits for a send to the same topic to add it back;
    with one-record batches (Tansu) that send waits behind the record, so the changelog
    stopped, and the next rebalance's flush waited for ever. On Tansu every start narrows
    (its bootstrap metadata lists every topic); on Apache Kafka (whose bootstrap metadata
    lists none) it takes a refresh of every topic before the first send to one:
    `metadata.max.age` or a broker fault brings one (`tests/integration/test_faust_edge.py`
    shows it on Apache Kafka with Faust's own producer).
    """

    failure: tuple[str, BaseException] | None = None
    """The first record the broker refused for good (topic, error): nothing may be committed
    after it, since the state it carried is not in Kafka. Refusals on `handled` topics are
    their sender's to handle (the dead-letter topic: the outbox retries)."""
    on_failure: Callable[[str, BaseException], None] | None = None
    handled: Callable[[str], bool] = staticmethod(lambda topic: False)

    def __post_init__(self) -> None:
        super().__post_init__()
        self._client: Any = None  # the aiokafka client that `_tracked` is about
        self._tracked: set[str] = set()
        self._unconfirmed: dict[int, float] = {}
        """When each record sent and not yet confirmed by the broker was sent (monotonic),
        in the order sent."""
        self._numbers = itertools.count()

    def unconfirmed_for(self, now: float) -> float:
        """How long the oldest record the broker has not confirmed yet has waited (0: none
        waits). It grows while the cluster cannot take writes: no leader, too few in-sync
        replicas, a broker that does not answer."""
        oldest = next(iter(self._unconfirmed.values()), None)
        return 0.0 if oldest is None else max(now - oldest, 0.0)

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None,
        timestamp: float | None,
        headers: HeadersArg | None,
        *,
        transactional_id: str | None = None,
    ) -> Awaitable[RecordMetadata]:
        client = self._ensure_producer().client
        if client is not self._client:  # a restarted producer has a new client
            self._client, self._tracked = client, set()
        if topic not in self._tracked:
            self._tracked.add(topic)
            await client.add_topic(topic)
        number = next(self._numbers)
        self._unconfirmed[number] = time.monotonic()
        try:
            delivery = await super().send(
                topic,
                key,
                value,
                partition,
                timestamp,
                headers,
                transactional_id=transactional_id,
            )
        except BaseException:
            self._unconfirmed.pop(number, None)
            raise
        asyncio.ensure_future(delivery).add_done_callback(
            lambda done: self._confirmed(number, topic, done)
        )
        return delivery

    def _confirmed(self, number: int, topic: str, delivery: asyncio.Future[Any]) -> None:
        """Runs before a flush that waits for `delivery` returns (callbacks run in the order
        they were added), so `failure` is set before the commit after that flush."""
        self._unconfirmed.pop(number, None)
        if delivery.cancelled() or delivery.exception() is None or self.handled(topic):
            return
        if self.failure is None:
            self.failure = (topic, delivery.exception() or RuntimeError())
            if self.on_failure is not None:
                self.on_failure(*self.failure)
