"""kafka-python at the edge for `cohort-sync dead-letters`: read any topic with its records'
headers, from a time on, up to the end offsets seen at start; send records back.

No consumer group: nothing is committed, no live worker is disturbed. Blocking: these run
in a command, not on an event loop.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError

from stream.config import KafkaSettings
from stream.errors import BrokerError
from stream.kafka.diagnosis import denied, explained

from .client import connection, end_offsets_of, partitions_of

__all__ = ["LoggedRecord", "scan_topic", "send_records"]


@dataclass(frozen=True, slots=True)
class LoggedRecord:
    """One record of a topic, as the log holds it."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()

    @property
    def position(self) -> str:
        """`topic/partition/offset`: how dead letters and requeued records name a record."""
        return f"{self.topic}/{self.partition}/{self.offset}"

    def header(self, name: str) -> bytes | None:
        """The last value of header `name` (None: the record has none)."""
        found = None
        for key, value in self.headers:
            if key == name:
                found = value
        return found


def scan_topic(
    kafka: KafkaSettings, topic: str, *, since_ms: int | None = None, timeout_s: float = 15.0
) -> Iterator[LoggedRecord]:
    """Every record of `topic` from the first one at or after `since_ms` (or the beginning)
    up to the end offsets seen at start, partition by partition in offset order."""
    with explained(kafka):
        consumer = KafkaConsumer(
            **connection(kafka),
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=5000,
        )
    try:
        tps = [TopicPartition(topic, p) for p in partitions_of(consumer, topic, timeout_s)]
        consumer.assign(tps)
        ends = end_offsets_of(consumer, tps, timeout_s)
        starts = _start_offsets(consumer, tps, since_ms)
        for tp in tps:
            if starts[tp] >= ends[tp]:
                continue
            consumer.seek(tp, starts[tp])
            yield from _read_partition(consumer, tp, ends[tp], timeout_s)
    except KafkaError as exc:
        line = denied(kafka, exc, "Read", f"topic {topic}")
        raise BrokerError(line or f"reading {topic} failed: {exc}") from None
    finally:
        consumer.close()


def _start_offsets(
    consumer: KafkaConsumer, tps: list[TopicPartition], since_ms: int | None
) -> dict[TopicPartition, int]:
    consumer.seek_to_beginning(*tps)
    beginnings = {tp: consumer.position(tp) for tp in tps}
    if since_ms is None or since_ms <= 0:
        return beginnings
    found = consumer.offsets_for_times({tp: since_ms for tp in tps})
    # None: no record at or after `since_ms` in that partition
    return {tp: found[tp].offset if found[tp] else _AT_END for tp in tps}


#: A start past every end offset: nothing to read in that partition.
_AT_END = 2**63 - 1


def _read_partition(
    consumer: KafkaConsumer, tp: TopicPartition, end: int, timeout_s: float
) -> Iterator[LoggedRecord]:
    consumer.pause(*[other for other in consumer.assignment() if other != tp])
    consumer.resume(tp)
    deadline = time.monotonic() + timeout_s
    position = consumer.position(tp)
    while position < end:
        polled = consumer.poll(timeout_ms=500).get(tp, [])
        if polled:
            deadline = time.monotonic() + timeout_s
        elif time.monotonic() > deadline:
            raise BrokerError(f"no records from {tp.topic}/{tp.partition} in {timeout_s:.0f}s")
        for r in polled:
            if r.offset >= end:
                break
            yield LoggedRecord(
                tp.topic,
                tp.partition,
                r.offset,
                r.timestamp,
                r.key,
                r.value,
                tuple((name, value or b"") for name, value in r.headers or ()),
            )
        position = consumer.position(tp)


def send_records(
    kafka: KafkaSettings, topic: str, records: Iterable[tuple[bytes | None, bytes, Any]]
) -> int:
    """Send each (key, value, headers) to `topic`, placed by Kafka's default partitioner
    (the same partition as `produce` gives the same key); returns how many the broker has."""
    with explained(kafka):
        producer = KafkaProducer(**connection(kafka), linger_ms=5, acks="all")
    sent = 0
    try:
        futures = [
            producer.send(topic, key=key, value=value, headers=list(headers))
            for key, value, headers in records
        ]
        producer.flush()
        for future in futures:
            future.get(timeout=30)
            sent += 1
    except KafkaError as exc:
        line = denied(kafka, exc, "Write", f"topic {topic}")
        raise BrokerError(
            line or f"sending to {topic} failed after {sent} records: {exc}"
        ) from None
    finally:
        producer.close()
    return sent
