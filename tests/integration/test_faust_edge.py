"""The Faust edge against a real broker: what `stream.faust.fixes` changes in aiokafka."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import faust
import pytest
from faust.transport.producer import ProducerBuffer

from stream.faust.fixes import SafeApp
from tests.brokers import Broker


@pytest.mark.parametrize("tracking", [True, False], ids=["TopicTrackingProducer", "faust-own"])
def test_the_producer_keeps_the_partitions_of_a_topic_it_sent_to_once_it_sends_to_a_newer_one(
    broker: Broker, tracking: bool
) -> None:
    """aiokafka forgets the older topic here (see `TopicTrackingProducer`): a record still
    waiting for one of its partitions would then wait for the next send to it. On Apache
    Kafka this takes a metadata refresh of every topic before the producer's first send to
    the older one (its bootstrap asks for none): `metadata.max.age` (5 minutes) or a broker
    fault brings one. The `faust-own` case shows the narrowing without the fix."""
    suffix = uuid.uuid4().hex[:8]
    older, newer = f"older-{suffix}", f"newer-{suffix}"
    settings: dict[str, Any] = dict(broker.faust)

    async def main() -> set[int] | None:
        maker = SafeApp(f"maker-{suffix}", broker=broker.url, **settings)
        await maker.producer.start()
        await maker.producer.create_topic(older, partitions=2, replication=1)
        kind = SafeApp if tracking else faust.App
        app = kind(f"edge-{suffix}", broker=broker.url, **settings)
        producer = app.producer
        await producer.start()
        try:
            client = producer._ensure_producer().client  # type: ignore[attr-defined]
            await client.force_metadata_update()  # tracking nothing yet: every topic's
            await producer.send_and_wait(older, b"k", b"v", None, None, None)
            await maker.producer.create_topic(newer, partitions=2, replication=1)
            await producer.send_and_wait(newer, b"k", b"v", None, None, None)
            await client.force_metadata_update()
            partitions: set[int] | None = client.cluster.partitions_for_topic(older)
            return partitions
        finally:
            await producer.stop()
            await maker.producer.stop()

    older_partitions = asyncio.run(main())
    if tracking:
        assert older_partitions == {0, 1}
    else:
        assert older_partitions is None  # forgotten: aiokafka alone narrowed to the newer


@pytest.mark.parametrize("whole", [True, False], ids=["WholeFlushBuffer", "faust-own-buffer"])
def test_a_producer_flush_returns_only_once_every_record_put_before_it_is_delivered(
    broker: Broker, whole: bool
) -> None:
    """A commit flushes the producer, then commits: every changelog record written before
    it must be in Kafka by then. Batches of one record keep the buffer's sender waiting for
    room in aiokafka, which is when Faust's own buffer let the flush return early (the
    `faust-own-buffer` case shows it does, on this broker)."""
    suffix = uuid.uuid4().hex[:8]
    topic_name = f"flush-{suffix}"
    settings: dict[str, Any] = {**broker.faust, "producer_max_batch_size": 64, "producer_linger": 0}

    async def main() -> list[int]:
        app = SafeApp(f"flush-{suffix}", broker=broker.url, **settings)
        producer = app.producer
        if not whole:  # what Faust itself builds
            producer.buffer = ProducerBuffer(loop=app.loop, beacon=producer.beacon)
            producer.buffer.app = app
        await producer.start()
        try:
            await producer.create_topic(topic_name, partitions=1, replication=1)
            topic = app.topic(topic_name, key_serializer="raw", value_serializer="raw")
            sent = [topic.send_soon(key=b"k", value=b"%05d" % n + b"x" * 40) for n in range(200)]
            await producer.flush()
            return [n for n, future in enumerate(sent) if not future.done()]
        finally:
            await producer.stop()

    not_delivered = asyncio.run(main())
    if whole:
        assert not_delivered == []
    else:
        assert not_delivered != []  # Faust's own flush returned with records in flight
