"""What cohort-sync changes in Faust (faust-streaming 0.15.3) so that no record is lost.

The other half of the Faust edge: `faust/worker.py` wires the worker on `SafeApp` and calls the
helpers at the end (rewinds, absent offsets, stall healing). Seven changes:

- `WholeFlushBuffer`: a commit waits for every changelog record written before it.
- `TopicTrackingProducer`: the producer never forgets the partitions of a topic it sends to.
- `InOrderConsumer`: no gap-filling; only `delivery.InOrderDelivery` says which offsets are
  absent, so a commit never passes a record that was skipped, not handled.
- `SafeApp`: all of the above, plus a second seek to the committed offsets once a
  rebalance has ended, which then tells the agent where each partition starts.
- Fetches wait at most `FETCH_MAX_WAIT_MS` (for speed, not safety: see there).
- Faust's `Monitor` sensor is not called for every message (for speed: see
  `SafeApp.on_init_dependencies`).
- A record whose handler does not suspend is handed on without Faust's per-record race of
  tasks (for speed: see `QuickHandoff.wait_first`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from typing import Any

import faust
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.transport.drivers.aiokafka import Consumer as AIOKafkaConsumer
from faust.transport.drivers.aiokafka import Producer as AIOKafkaProducer
from faust.transport.producer import ProducerBuffer
from faust.types import TP, EventT, HeadersArg
from faust.types.transports import ConsumerT, ProducerT
from faust.types.tuples import FutureMessage, Message, RecordMetadata
from mode import Service, ServiceT
from mode.services import WaitResults

from stream.engine.delivery import InOrderDelivery

__all__ = [
    "WholeFlushBuffer",
    "TopicTrackingProducer",
    "QuickHandoff",
    "InOrderConsumer",
    "SafeApp",
    "in_order_consumer",
    "rewind",
    "mark_absent",
    "heal_stalls",
    "STALL_SECONDS",
]

log = logging.getLogger(__name__)


class WholeFlushBuffer(ProducerBuffer):
    """Faust's producer buffer, with a `flush` that returns only once every message put
    into it has reached the Kafka client.

    Table writes become changelog records through this buffer, and a commit flushes it
    before committing offsets. Faust's own flush returns when no message left the buffer
    for 0.1 s, or as soon as the queue is empty while its sender still holds the last
    message (waiting for room in the client: one round trip with one-record batches). The
    offsets were then committed ahead of the changelog, and a kill -9 at that moment lost
    state for records the group would never re-deliver.
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
    stopped, and the next rebalance's flush waited for ever.
    """

    def __post_init__(self) -> None:
        super().__post_init__()
        self._client: Any = None  # the aiokafka client that `_tracked` is about
        self._tracked: set[str] = set()

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
        return await super().send(
            topic,
            key,
            value,
            partition,
            timestamp,
            headers,
            transactional_id=transactional_id,
        )


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


class InOrderConsumer(QuickHandoff, AIOKafkaConsumer):
    """Faust's aiokafka consumer without gap-filling (and with `QuickHandoff`).

    When a fetched record's offset jumps past the last one read, Faust records the offsets
    in between as a "gap" that commits may pass (meant for transaction markers). After a
    seek, the rest of a batch fetched before it makes such a jump over records that were
    never delivered, and a commit then passed them. Here a jump counts for nothing until
    `mark_absent` says so.
    """

    async def _add_gap(self, tp: TP, offset_from: int, offset_to: int) -> None:
        return None

    def _new_consumer_thread(self) -> AIOKafkaConsumerThread:
        return _ShortFetchWaitThread(self, loop=self.loop, beacon=self.beacon)

    async def seek_to_committed(self) -> Mapping[TP, int]:
        """Seek, then tell `SafeApp.on_seeked` where each partition starts: the committed
        offset, or for a partition the group never committed, 0 when it starts at the
        earliest record (None: not known)."""
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

    def settle(self, message: Message) -> None:
        """Acknowledge a handled record. A record acknowledged before (a duplicate) or below
        the committed offset would stay among the unacknowledged ones for good, and a stop
        or a rebalance would wait for it for ever: it leaves them here."""
        message.ack(self)
        self._unacked_messages.discard(message)

    def abandon(self, message: Message) -> None:
        """Give up a record without acknowledging it (the worker is stopping): a commit does
        not pass it, and the stop does not wait for it."""
        self._unacked_messages.discard(message)

    async def mark_absent(self, tp: TP, start: int, end: int) -> None:
        """Offsets `[start, end)` of `tp` do not exist: commits may pass them."""
        await super()._add_gap(tp, start, end - 1)


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


class SafeApp(faust.App):
    """faust.App with `TopicTrackingProducer`, `WholeFlushBuffer` and `InOrderConsumer`, and
    a second seek to the committed offsets once a rebalance has ended.

    Faust's recovery seeks stream partitions to their committed offsets, then resumes flow
    control, which clears the stream queues: records fetched in between never reach the
    agent. Seeking again once the worker is ready re-delivers them. At every such seek
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
    _reseek: asyncio.Future[None] | None = None

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


def in_order_consumer(app: faust.App) -> InOrderConsumer:
    consumer = app.consumer
    assert isinstance(consumer, InOrderConsumer)
    return consumer


async def rewind(app: faust.App, tp: TP, offset: int, seen: int) -> None:
    log.warning(
        "%s/%d: record %d arrived before record %d: reading again from %d",
        tp.topic,
        tp.partition,
        seen,
        offset,
        offset,
    )
    if app.rebalancing:  # the seek after the rebalance reads it again
        return
    await app.consumer.seek(tp, offset)


async def mark_absent(app: faust.App, tp: TP, start: int, end: int) -> None:
    log.info(
        "%s/%d: offsets %d to %d do not exist (transaction markers or compaction)",
        tp.topic,
        tp.partition,
        start,
        end - 1,
    )
    await in_order_consumer(app).mark_absent(tp, start, end)


#: A partition whose fetched records stopped reaching the agent for this long is re-read.
STALL_SECONDS = 3.0


async def heal_stalls(
    app: faust.App,
    delivery: InOrderDelivery[EventT],
    progress: dict[TP, float],
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
