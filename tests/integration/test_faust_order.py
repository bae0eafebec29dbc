"""Faust on Apache Kafka drops records that a flow-control resume clears from the stream
queue (every rebalance runs one); the worker's record pump hands every record on in order
regardless."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from faust.types import TP, EventT
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from stream.engine.pump import RecordPump
from stream.faust.consumer import EventConsumer, heal_stalls
from stream.faust.fixes import SafeApp
from stream.faust.run import Stopper, run_app
from tests.brokers import Broker

BEFORE = 300
"""Records produced before the agent starts: it clears them from the queue at `CLEAR_AT`."""
COUNT = 2 * BEFORE
"""The rest are sent after the clear: a record after the hole shows it."""
CLEAR_AT = 10
DEADLINE_S = 90.0


class _Durable:
    def durable(self, partition: int) -> bool:
        return True

    def flush(self, partition: int) -> None:
        return None


@pytest.mark.parametrize("pumped", [True, False], ids=["RecordPump", "faust-own"])
def test_records_a_flow_control_resume_clears_are_still_handled_in_order(
    broker: Broker, pumped: bool, tmp_path: Path
) -> None:
    """With the pump wired as the worker wires it: its rewinds, and `heal_stalls` for a
    rewind whose seek a fetch in flight overtook."""
    suffix = uuid.uuid4().hex[:8]
    topic = f"order-{suffix}"
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    admin.close()
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap)
    for n in range(BEFORE):
        producer.send(topic, key=b"k", value=b"%d" % n)
    producer.flush()
    producer.close()

    asyncio.set_event_loop(asyncio.new_event_loop())  # Faust's worker runs (and closes) it
    # stream_wait_empty off: a stop does not wait for the records Faust lost (for ever)
    app = SafeApp(
        f"order-{suffix}",
        broker=broker.url,
        store="memory://",
        datadir=str(tmp_path),
        stream_wait_empty=False,
        **broker.faust,
    )
    source = app.topic(
        topic, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
    )
    stopper = Stopper()
    handled: list[int] = []
    cleared: list[int] = []

    async def handle(event: EventT) -> None:
        handled.append(event.message.offset)
        if event.message.offset == COUNT - 1:
            stopper()

    pump: RecordPump[EventT] = RecordPump(
        EventConsumer(app),
        handle,
        _Durable(),
        locate=lambda e: (e.message.topic, e.message.partition, e.message.offset),
        stop=lambda _fault: stopper(),
        monotonic=time.monotonic,
    )
    app.on_seeked = lambda starts: pump.start(
        {TP(tp.topic, tp.partition): offset for tp, offset in starts.items()}
    )

    @app.agent(source)
    async def agent(stream: Any) -> None:
        events = stream.noack().events() if pumped else stream.events()
        async for event in events:
            if event.message.offset == CLEAR_AT and not cleared:
                queue = stream.channel.queue
                deadline = time.monotonic() + 30
                while queue.qsize() < 5 and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
                cleared.append(queue.qsize())
                app.flow_control.suspend()  # what every rebalance does
                app.flow_control.resume()  # and this clears the stream queues
                for n in range(BEFORE, COUNT):
                    await source.send(key=b"k", value=b"%d" % n)
            if pumped:
                await pump.receive(event)
            else:
                await handle(event)

    @app.timer(interval=1.0)
    async def heal() -> None:
        if pumped:
            await heal_stalls(app, pump.delivery, pump.progress, {topic}, time.monotonic())

    @app.timer(interval=DEADLINE_S)
    async def give_up() -> None:
        stopper()

    run_app(app, stopper=stopper)
    assert cleared and cleared[0] >= 5  # records were waiting in the queue when it cleared
    if pumped:
        assert handled == list(range(COUNT))
    else:
        assert handled[-1] == COUNT - 1
        assert sorted(set(range(COUNT)) - set(handled))  # Faust skipped the cleared records
