"""What the worker changes in Faust's consumer: no gap-filling (only
`engine.delivery.InOrderDelivery` says which offsets are absent), short fetch waits, and
the rewinds and stall healing the worker calls, and `EventConsumer`: the consumer as the
record pump (`engine/pump.py`) sees it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import faust
from aiokafka.errors import TopicAuthorizationFailedError
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.transport.drivers.aiokafka import Consumer as AIOKafkaConsumer
from faust.types import TP, EventT
from faust.types.tuples import Message

from stream.engine.delivery import InOrderDelivery
from stream.faust.handoff import QuickHandoff

__all__ = [
    "InOrderConsumer",
    "FETCH_MAX_WAIT_MS",
    "in_order_consumer",
    "EventConsumer",
    "STALL_SECONDS",
    "heal_stalls",
]

log = logging.getLogger(__name__)


class InOrderConsumer(QuickHandoff, AIOKafkaConsumer):
    """Faust's aiokafka consumer without gap-filling (and with `QuickHandoff`).

    When a fetched record's offset jumps past the last one read, Faust records the offsets
    in between as a "gap" that commits may pass (meant for transaction markers). After a
    seek, the rest of a batch fetched before it makes such a jump over records that were
    never delivered, and a commit then passed them. Here a jump counts for nothing until
    `mark_absent` says so. Needed on every broker, even behind `InOrderDelivery`: once the
    records just after the jump are handled, Faust's commits fill in the whole gap
    (`tests/faust/test_consumer.py` shows it with Faust's own consumer).
    """

    async def _add_gap(self, tp: TP, offset_from: int, offset_to: int) -> None:
        return None

    def _new_consumer_thread(self) -> AIOKafkaConsumerThread:
        return _ShortFetchWaitThread(self, loop=self.loop, beacon=self.beacon)

    async def seek_to_committed(self) -> Mapping[TP, int]:
        """Seek, then tell `SafeApp.on_seeked` where each partition starts: the committed
        offset, or for a partition the group never committed, 0 when it starts at the
        earliest record (None: not known)."""
        from stream.faust.fixes import SafeApp  # the app this consumer is made for

        offsets = await super().seek_to_committed()
        app = self.app
        assert isinstance(app, SafeApp)
        never = 0 if app.conf.consumer_auto_offset_reset == "earliest" else None
        if app.on_seeked is not None:
            app.on_seeked(
                {
                    TP(tp.topic, tp.partition): never if offset is None or offset < 0 else offset
                    for tp, offset in offsets.items()
                }
            )
        return offsets

    def acknowledge(self, message: Message) -> None:
        """Acknowledge a handled record. A record acknowledged before (a duplicate) or below
        the committed offset would stay among the unacknowledged ones for good, and a stop
        or a rebalance would wait for it for ever: it leaves them here."""
        message.ack(self)
        self._unacked_messages.discard(message)

    async def _commit(self, offsets: Mapping[TP, int]) -> bool:
        """Faust flushes the producer, then calls this: no commit once a record was refused
        (`TopicTrackingProducer.failure`), since the state it carried is not in Kafka."""
        from stream.faust.producer import TopicTrackingProducer

        producer = self.app.producer
        if isinstance(producer, TopicTrackingProducer) and producer.failure is not None:
            return False
        committed: bool = await super()._commit(offsets)
        return committed

    def committed(self, topic: str) -> dict[int, int]:
        """The offsets this consumer last committed on `topic`, by partition."""
        return {
            tp.partition: offset
            for tp, offset in self._committed_offset.items()
            if tp.topic == topic and offset is not None
        }

    def abandon(self, message: Message) -> None:
        """Give up a record without acknowledging it (the worker is stopping): a commit does
        not pass it, and the stop does not wait for it."""
        self._unacked_messages.discard(message)

    async def mark_absent(self, tp: TP, start: int, end: int) -> None:
        """Offsets `[start, end)` of `tp` do not exist: commits may pass them."""
        await super()._add_gap(tp, start, end - 1)


#: How long a fetch may wait for records. Faust hard-codes 1,500 ms. The worker's fetches
#: always include its tick and repartition partitions, usually empty, and a broker that holds
#: a fetch for the whole wait while some of its partitions are empty (Tansu does) stalled
#: the worker between fetches: the batch benchmark went from 65k to 150k changes/s. When
#: idle, this costs ten empty fetches a second.
FETCH_MAX_WAIT_MS = 100


class _ShortFetchWaitThread(AIOKafkaConsumerThread):
    def _create_consumer(self, loop: asyncio.AbstractEventLoop) -> Any:  # aiokafka's
        consumer = super()._create_consumer(loop)
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS  # read when its fetcher starts
        return consumer

    async def _fetch_records(self, *args: Any, **kwargs: Any) -> Any:
        """A topic the worker may not read stops it with one line (`SafeApp.on_refused`)
        instead of crashing the consumer's thread with a traceback; nothing is fetched."""
        try:
            return await super()._fetch_records(*args, **kwargs)
        except TopicAuthorizationFailedError as exc:
            from stream.faust.fixes import SafeApp

            app = self.consumer.app
            if not isinstance(app, SafeApp) or app.on_refused is None:
                raise
            named = exc.args[0] if exc.args else None  # a topic, or a set of them
            topics = sorted(named) if isinstance(named, set | frozenset) else [str(named or "?")]
            app.on_refused("Read", ", ".join(topics), exc)
            await asyncio.sleep(1.0)  # the stop is on its way
            return {}


def in_order_consumer(app: faust.App) -> InOrderConsumer:
    consumer = app.consumer
    assert isinstance(consumer, InOrderConsumer)
    return consumer


class EventConsumer:
    """Faust's consumer as `engine.pump.Consumer` sees it: records are the agent's events."""

    def __init__(self, app: faust.App) -> None:
        self._app = app

    def acknowledge(self, record: EventT) -> None:
        in_order_consumer(self._app).acknowledge(record.message)

    def abandon(self, record: EventT) -> None:
        in_order_consumer(self._app).abandon(record.message)

    async def rewind(self, key: tuple[str, int], offset: int, seen: int) -> None:
        topic, partition = key
        log.warning(
            "%s/%d: record %d arrived before record %d: reading again from %d",
            topic,
            partition,
            seen,
            offset,
            offset,
        )
        if self._app.rebalancing:  # the seek after the rebalance reads it again
            return
        await self._app.consumer.seek(TP(topic, partition), offset)

    async def mark_absent(self, key: tuple[str, int], start: int, end: int) -> None:
        topic, partition = key
        log.info(
            "%s/%d: offsets %d to %d do not exist (transaction markers or compaction)",
            topic,
            partition,
            start,
            end - 1,
        )
        await in_order_consumer(self._app).mark_absent(TP(topic, partition), start, end)


#: A partition whose fetched records stopped reaching the agent for this long is re-read.
STALL_SECONDS = 3.0


async def heal_stalls(
    app: faust.App,
    delivery: InOrderDelivery[EventT],
    progress: dict[tuple[str, int], float],
    topics: set[str],
    now: float,
) -> None:
    """Read again partitions whose fetched records stopped reaching the agent.

    Faust can drop fetched records (queues cleared when flow resumes, a fetch behind the
    rest of a stale batch): the consumer's position is then past records the agent never
    saw, and nothing more may come to show it. A partition that offered nothing for
    `STALL_SECONDS` while its position is beyond the next offset it expects is sought back
    to that offset; a record offered twice is a duplicate and changes nothing. Never during a
    rebalance: the table recovery reads with the same consumer, and a seek then stalled it.
    """
    if app.rebalancing:
        return
    for tp in app.consumer.assignment():
        tp = TP(tp.topic, tp.partition)
        expected = delivery.next_offset(tp)
        if tp.topic not in topics or expected is None:
            continue
        if now - progress.get(tp, now) < STALL_SECONDS:
            continue
        progress[tp] = now
        highwater = app.consumer.highwater(tp)
        if highwater is None or expected >= highwater:
            continue
        position = await app.consumer.position(tp)
        if position is not None and position > expected:
            log.warning(
                "%s/%d: records from %d were fetched but did not arrive: reading them again",
                tp.topic,
                tp.partition,
                expected,
            )
            await app.consumer.seek(tp, expected)
