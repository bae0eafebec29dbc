"""Faust wiring only: the app, its topics and table, the agent, the idle timer.

One agent reads the input topic, the repartition topic and the tick topic (co-partitioned,
so partition N of each lands on the same worker), puts each record through `InOrderDelivery`
and hands it to `Processor`; syncs go to the destination lanes. The membership table is
written only there, inside stream iteration, and a record is acknowledged only once the
table holds its changes (the processor's journal writes them in bundles). The timer never
touches state: when an idle partition's wall-clock watermark reaches a sync time, or its
journal holds changes, it sends a tick record that the agent then processes. With the
`faust_*.py` modules, the only ones that import faust.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import time
from collections.abc import Callable, Mapping
from typing import Any

import faust
from faust.types import TP, EventT, Message

from stream.config import Settings
from stream.domain.partitioner import partition_for
from stream.engine.delivery import InOrderDelivery
from stream.engine.processor import Processor
from stream.errors import WorkerFault, WriteAbandoned
from stream.faust.fixes import (
    InOrderConsumer,
    SafeApp,
    heal_stalls,
    in_order_consumer,
    mark_absent,
    rewind,
)
from stream.faust.outbox import FaustOutbox
from stream.faust.recovery import RecoveryHealer
from stream.faust.run import STOP_DEADLINE_SECONDS, exit_after, run_app
from stream.faust.web import add_web_views
from stream.metrics import Metrics
from stream.output.lanes import DestinationLanes
from stream.output.writer import SyncWriter
from stream.sinks import open_sink

__all__ = ["Worker", "WORKER_FAUST_DEFAULTS", "create_worker", "run_worker"]

#: The worker's Faust defaults (a broker's own defaults and `[faust]` override them). A
#: commit waits until every changelog record is sent: bigger producer batches (well under
#: Kafka's 1 MB message limit) and a short linger send them in far fewer requests. At most
#: 500 records a poll (aiokafka's default: all it has fetched, thousands) keeps a poll within
#: the room the stream queue has left once Faust stops fetching for it (4,096 records, from
#: 80% full), so handing a record on does not wait (`fixes.QuickHandoff`).
WORKER_FAUST_DEFAULTS: dict[str, Any] = {
    "producer_max_batch_size": 512 * 1024,
    "producer_linger": 0.01,
    "broker_max_poll_records": 500,
}

log = logging.getLogger(__name__)


class Worker:
    """A configured Faust app plus the processor it drives. `fault` is set when the worker
    stopped itself because it cannot go on (see `WorkerFault`)."""

    def __init__(self, app: faust.App, processor: Processor, writer: SyncWriter) -> None:
        self.app = app
        self.processor = processor
        self.writer = writer
        self.fault: str | None = None

    def stop_for(self, fault: str) -> None:
        """Stop the worker because of `fault`, as SIGTERM stops it: nothing is acknowledged
        past the record in hand, so the next start delivers it again."""
        if self.fault is not None:
            return
        self.fault = fault
        log.critical("stopping: %s", fault)
        os.kill(os.getpid(), signal.SIGTERM)

    @property
    def metrics(self) -> Metrics:
        return self.processor.metrics


def create_worker(
    settings: Settings,
    *,
    broker_url: str,
    faust_defaults: Mapping[str, Any] | None = None,
    clock: Callable[[], float] = time.time,
) -> Worker:
    kafka = settings.kafka
    faust_settings: dict[str, Any] = {
        "store": "memory://",
        "topic_partitions": kafka.partitions,
        "web_enabled": "web_port" in settings.faust,
        **WORKER_FAUST_DEFAULTS,
        **(faust_defaults or {}),
        **settings.faust,
    }
    app = SafeApp(kafka.app_id, broker=broker_url, **faust_settings)
    ticks_topic = f"{kafka.app_id}-ticks"
    repartition_topic = f"{kafka.app_id}-by-cohort"
    raw: dict[str, Any] = {
        "key_type": bytes,
        "value_type": bytes,
        "key_serializer": "raw",
        "value_serializer": "raw",
        "partitions": kafka.partitions,
    }
    sources = app.topic(kafka.topic, repartition_topic, ticks_topic, **raw)
    repartition = app.topic(repartition_topic, internal=True, **raw)
    ticks = app.topic(ticks_topic, internal=True, **raw)
    dlq = app.topic(kafka.dlq_topic, **raw)
    table = app.Table(
        "membership",
        default=None,
        partitions=kafka.partitions,
        key_type=str,
        value_type=bytes,
    )
    metrics = Metrics()
    sinks = {name: open_sink(destination) for name, destination in settings.destinations.items()}
    writer = SyncWriter(sinks, metrics)
    lanes = DestinationLanes(writer)
    outbox = FaustOutbox(
        dlq,
        repartition,
        lanes,
        max_request_size=app.conf.producer_max_request_size,
        on_fault=lambda fault: worker.stop_for(fault),  # bound below, called only later
    )
    processor = Processor(settings, table, outbox, partition_for, metrics)
    worker = Worker(app, processor, writer)
    last_record: dict[int, float] = {}
    progress: dict[TP, float] = {}
    """When each partition last offered a record to `delivery` (time.monotonic)."""
    tick_sent: dict[int, int | None] = {}
    busy: set[int] = set()

    delivery: InOrderDelivery[EventT] = InOrderDelivery(confirmations=3)
    awaiting: dict[int, list[Message]] = {}
    """Per partition: records handled whose changes the table does not hold yet."""
    dirty_since: dict[int, float] = {}
    """Per partition: since when (time.monotonic) its journal holds changes."""
    own_topics = {kafka.topic, repartition_topic, ticks_topic}

    def start_partitions(starts: Mapping[TP, int | None]) -> None:
        for tp, offset in starts.items():
            if tp.topic in own_topics:
                progress[tp] = time.monotonic()
                for duplicate in delivery.start(tp, offset):
                    in_order_consumer(app).settle(duplicate.message)

    async def stopping() -> None:
        """Let the lanes finish for a moment, then give up what waits, so the stop does
        not: the next start does it (it is pending in the table)."""
        exit_after(STOP_DEADLINE_SECONDS)
        await lanes.drain(timeout=STOP_GRACE_SECONDS)
        writer.abandon()
        for record in delivery.held():
            in_order_consumer(app).abandon(record.message)
        for messages in awaiting.values():
            for message in messages:
                in_order_consumer(app).abandon(message)
        awaiting.clear()
        dirty_since.clear()

    def revoking(revoked: set[TP]) -> None:
        """Give up the records held for revoked partitions: Faust waits for every record
        not acknowledged before it lets a rebalance go on, and their new owner reads them."""
        for tp in revoked:
            for record in delivery.forget(TP(tp.topic, tp.partition)):
                in_order_consumer(app).abandon(record.message)
            dirty_since.pop(tp.partition, None)
            waiting = awaiting.get(tp.partition, [])
            for message in [m for m in waiting if m.topic == tp.topic]:
                waiting.remove(message)
                in_order_consumer(app).abandon(message)

    def acknowledge(record: EventT) -> None:
        """Settle the partition's handled records once the table holds their changes: the
        journal flushes by size, or here once its oldest change waited FLUSH_SECONDS."""
        partition = record.message.partition
        waiting = awaiting.setdefault(partition, [])
        waiting.append(record.message)
        now = time.monotonic()
        if not processor.durable(partition):
            dirty_since.setdefault(partition, now)
            if now - dirty_since[partition] < FLUSH_SECONDS:
                return
            processor.flush(partition)
        dirty_since.pop(partition, None)
        consumer = in_order_consumer(app)
        for message in waiting:
            consumer.settle(message)
        waiting.clear()

    app.on_seeked = start_partitions
    app.on_revoking = revoking
    app.on_stopping = stopping

    async def handle(event: EventT) -> None:
        message = event.message
        partition = message.partition
        if message.topic == ticks_topic:
            tick_sent.pop(partition, None)
            await processor.on_tick(partition, json.loads(event.value)["now"])
            return
        last_record[partition] = clock()
        busy.add(partition)
        try:
            await processor.on_record(
                message.topic, partition, message.offset, message.key, event.value
            )
        finally:
            busy.discard(partition)
            last_record[partition] = clock()

    @app.agent(sources, name="cohort-sync-membership")
    async def membership(stream: Any) -> None:
        # Acknowledged by hand, and only once handled: a held record is never committed.
        # Nothing raised here may reach Faust: it would restart the agent and a commit could
        # pass the record. A record's own faults are dead-lettered by the processor; any
        # other exception is the worker's, which then stops and acknowledges nothing more.
        consumer = in_order_consumer(app)
        async for event in stream.noack().events():
            if worker.fault is not None:
                consumer.abandon(event.message)
                continue
            try:
                await deliver(consumer, event)
            except Exception as exc:
                message = event.message
                worker.stop_for(
                    f"handling {message.topic}/{message.partition}@{message.offset} failed: "
                    f"{type(exc).__name__}: {exc}"
                )
                consumer.abandon(message)

    async def deliver(consumer: InOrderConsumer, event: EventT) -> None:
        message = event.message
        tp = TP(message.topic, message.partition)
        progress[tp] = time.monotonic()
        released = delivery.offer(tp, message.offset, event)
        for duplicate in released.duplicates:
            consumer.settle(duplicate.message)
        if released.rewind_to is not None:
            await rewind(app, tp, released.rewind_to, message.offset)
        for index, record in enumerate(released.records):
            try:
                if worker.fault is not None:
                    raise WriteAbandoned("stopping")
                await handle(record)
                acknowledge(record)
            except WriteAbandoned:
                log.warning(
                    "stopping: %s/%d from offset %d is left for the next start",
                    tp.topic,
                    tp.partition,
                    record.message.offset,
                )
                for unhandled in released.records[index:]:
                    consumer.abandon(unhandled.message)
                return
            except Exception:
                for unhandled in released.records[index:]:
                    consumer.abandon(unhandled.message)
                raise
        if released.absent is not None:
            await mark_absent(app, tp, *released.absent)

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def on_revoked(sender: Any, revoked: set[TP], **_: Any) -> None:
        mine = {tp.partition for tp in revoked if tp.topic == kafka.topic}
        processor.forget(mine)
        for partition in mine:
            last_record.pop(partition, None)

    add_web_views(app, processor, sinks, clock)

    idle_after = None if kafka.idle_timeout_ms is None else kafka.idle_timeout_ms / 1000
    started = clock()
    recovery = RecoveryHealer(app)
    app.watchdog = lambda: recovery.check(time.monotonic())

    @app.timer(interval=1.0 if idle_after is None else min(1.0, max(idle_after / 4, 0.1)))
    async def tick_partitions() -> None:
        """Load each newly assigned partition (writing any sync it had due when the last
        worker stopped), flush changes waiting in a journal (their records are acknowledged
        then), and advance idle, caught-up partitions by the wall clock."""
        try:
            now = clock()
            if not busy:
                await heal_stalls(app, delivery, progress, own_topics, time.monotonic())
            for tp in sorted(app.consumer.assignment()):
                partition = tp.partition
                if tp.topic != kafka.topic:
                    continue
                if partition in tick_sent:
                    continue
                if partition not in processor.partitions or processor.unsettled(partition):
                    await _send_tick(ticks, tick_sent, partition, None)  # load, forget, flush
                    continue
                if idle_after is None or now - last_record.get(partition, started) < idle_after:
                    continue
                if await _caught_up(app, tp, TP(repartition_topic, partition)):
                    await _maybe_tick(processor, ticks, tick_sent, partition, int(now * 1000))
        except Exception:  # a timer that raises stops the worker: log and try next time
            log.exception("partition timer failed")

    @app.timer(interval=FLUSH_SECONDS)
    async def flush_quiet_partitions() -> None:
        """A partition whose records stopped coming gets a tick, which flushes its journal:
        its last records are acknowledged, and committed, without waiting for more."""
        try:
            for partition in sorted(dirty_since):
                if partition not in tick_sent:
                    await _send_tick(ticks, tick_sent, partition, None)
        except Exception:
            log.exception("flush timer failed")

    return worker


async def _caught_up(app: faust.App, *partitions: TP) -> bool:
    for tp in partitions:
        if tp not in app.consumer.assignment():
            continue
        highwater = app.consumer.highwater(tp)
        position = await app.consumer.position(tp)
        if highwater is None or position is None or position < highwater:
            return False
    return True


#: How long a change may wait in a journal before it is flushed (and its record acknowledged)
#: though fewer than `journal.FLUSH_MEMBERS` members wait with it.
FLUSH_SECONDS = 0.25

#: How long a stop waits for the destination lanes to write what they hold.
STOP_GRACE_SECONDS = 5.0


async def _maybe_tick(
    processor: Processor,
    ticks: Any,
    tick_sent: dict[int, int | None],
    partition: int,
    now_ms: int,
) -> None:
    due = processor.next_due(partition)
    lateness = processor.settings.kafka.allowed_lateness_ms
    if due is not None and now_ms - lateness >= due:
        await _send_tick(ticks, tick_sent, partition, now_ms)


async def _send_tick(
    ticks: Any, tick_sent: dict[int, int | None], partition: int, now_ms: int | None
) -> None:
    """`{"now": ms}` advances the partition to the wall clock; `{"now": null}` only loads it."""
    tick_sent[partition] = now_ms
    await ticks.send(value=json.dumps({"now": now_ms}).encode(), partition=partition)


def run_worker(worker: Worker, *, loglevel: str = "info") -> None:
    """Run until SIGTERM or SIGINT, then stop cleanly (Faust's worker owns the loop).
    Raises `WorkerFault` when the worker stopped itself."""
    try:
        run_app(worker.app, loglevel=loglevel)
    finally:
        worker.writer.close()
    if worker.fault is not None:
        raise WorkerFault(worker.fault)
