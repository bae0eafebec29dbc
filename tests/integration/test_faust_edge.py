"""The Faust edge against a real broker: what `stream.faust.fixes` changes in aiokafka."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from stream.faust.fixes import SafeApp
from tests.brokers import Broker


def test_the_producer_keeps_the_partitions_of_a_topic_it_sent_to_once_it_sends_to_a_newer_one(
    broker: Broker,
) -> None:
    """aiokafka alone forgets the older topic here (see `TopicTrackingProducer`): a record
    still waiting for one of its partitions would then wait for the next send to it."""
    suffix = uuid.uuid4().hex[:8]
    older, newer = f"older-{suffix}", f"newer-{suffix}"
    settings: dict[str, Any] = dict(broker.faust)

    async def main() -> None:
        maker = SafeApp(f"maker-{suffix}", broker=broker.url, **settings)
        await maker.producer.start()
        await maker.producer.create_topic(older, partitions=2, replication=1)
        app = SafeApp(f"edge-{suffix}", broker=broker.url, **settings)
        producer = app.producer
        await producer.start()  # its first metadata fetch covers every topic, the older one too
        try:
            await producer.send_and_wait(older, b"k", b"v", None, None, None)
            await maker.producer.create_topic(newer, partitions=2, replication=1)
            await producer.send_and_wait(newer, b"k", b"v", None, None, None)
            client = producer._ensure_producer().client  # type: ignore[attr-defined]
            await client.force_metadata_update()
            assert client.cluster.partitions_for_topic(older) == {0, 1}
        finally:
            await producer.stop()
            await maker.producer.stop()

    asyncio.run(main())
