"""kafka-python at the edge: how its clients reach the cluster, the producer behind
`cohort-sync produce`, the partitions `replay` reads, group and end offsets. The worker's
topics are `topics.py`'s.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError

from stream.config import KafkaSettings
from stream.domain.partitioner import cohort_key_of
from stream.errors import BrokerError
from stream.kafka.diagnosis import denied, explained
from stream.kafka.record import Record
from stream.kafka.security import security_options

__all__ = [
    "Record",
    "admin_client",
    "connection",
    "produce_lines",
    "committed_offsets",
    "group_offsets",
    "GroupOffsets",
    "earliest_timestamp_ms",
    "end_offsets",
    "end_offsets_of",
    "partitions_of",
    "topic_partitions",
]

log = logging.getLogger(__name__)


def admin_client(kafka: KafkaSettings, timeout_s: float = 30.0) -> KafkaAdminClient:
    """An admin client of the cluster; `BrokerError` when it cannot be reached."""
    with explained(kafka):
        options = {
            **connection(kafka),
            "request_timeout_ms": int(timeout_s * 1000),
            "bootstrap_timeout_ms": int(min(timeout_s, BOOTSTRAP_TIMEOUT_S) * 1000),
        }
        return KafkaAdminClient(**options)


#: How long a kafka-python client tries to reach its first broker. kafka-python's own 30 s
#: made every command wait half a minute before saying a broker is unreachable.
BOOTSTRAP_TIMEOUT_S = 10.0


def connection(kafka: KafkaSettings) -> dict[str, Any]:
    """How every kafka-python client here reaches the cluster."""
    return {
        "bootstrap_servers": kafka.bootstrap_servers(),
        "bootstrap_timeout_ms": int(BOOTSTRAP_TIMEOUT_S * 1000),
        **security_options(kafka.security),
    }


def produce_lines(kafka: KafkaSettings, lines: Iterable[bytes]) -> int:
    """Send each non-blank line as one record keyed by its cohort id; returns the count."""
    with explained(kafka):
        producer = KafkaProducer(**connection(kafka), linger_ms=5, acks="all")
    sent = 0
    try:
        for line in _records(lines):  # Kafka's default partitioner places each cohort's key
            producer.send(kafka.topic, key=cohort_key_of(line), value=line)
            sent += 1
        producer.flush()
    except KafkaError as exc:
        refused = denied(kafka, exc, "Write", f"topic {kafka.topic}")
        raise BrokerError(refused or f"producing to {kafka.topic} failed: {exc}") from None
    finally:
        producer.close()
    return sent


def _records(lines: Iterable[bytes]) -> Iterator[bytes]:
    for line in lines:
        stripped = line.strip()
        if stripped:
            yield stripped


def topic_partitions(kafka: KafkaSettings, timeout_s: float = 30.0) -> list[int]:
    """The partitions of the input topic, sorted: what `replay` learns before it starts
    reading (connection failures and denials explained in one line)."""
    with explained(kafka):
        consumer = KafkaConsumer(**connection(kafka), group_id=None, enable_auto_commit=False)
    try:
        return partitions_of(consumer, kafka.topic, timeout_s)
    except KafkaError as exc:
        line = denied(kafka, exc, "Read", f"topic {kafka.topic}")
        raise BrokerError(line or f"reading {kafka.topic} failed: {exc}") from None
    finally:
        consumer.close()


def committed_offsets(kafka: KafkaSettings, group: str) -> dict[int, int | None]:
    """The group's committed offset per partition of the input topic (None: nothing yet)."""
    with GroupOffsets(kafka, group) as offsets:
        return offsets.read()


class GroupOffsets:
    """Reads a consumer group's committed offsets through one admin connection."""

    def __init__(self, kafka: KafkaSettings, group: str) -> None:
        self.kafka = kafka
        self.group = group
        with explained(kafka):
            self._admin = KafkaAdminClient(**connection(kafka))

    def read(self) -> dict[int, int | None]:
        try:
            return group_offsets(self._admin, self.group, self.kafka.topic)
        except KafkaError as exc:
            line = denied(self.kafka, exc, "Describe (a Read ACL grants it)", f"group {self.group}")
            raise BrokerError(
                line or f"cannot read the offsets of group {self.group!r}: {exc}"
            ) from None

    def close(self) -> None:
        self._admin.close()

    def __enter__(self) -> GroupOffsets:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def group_offsets(
    admin: KafkaAdminClient, group: str, topic: str, timeout_s: float = 15.0
) -> dict[int, int | None]:
    """The group's committed offset per partition of `topic` (None: nothing yet).

    A retriable error is asked again until `timeout_s`: Apache Kafka answers "coordinator
    not available" while it creates `__consumer_offsets` for a cluster's first group, and
    "loading" while a new coordinator reads it after a broker failed."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            offsets = admin.list_group_offsets(group).get(group, {})
            break
        except KafkaError as exc:
            if not exc.retriable or time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    return {
        tp.partition: (meta.offset if meta.offset >= 0 else None)
        for tp, meta in offsets.items()
        if tp.topic == topic
    }


def earliest_timestamp_ms(kafka: KafkaSettings, topic: str, timeout_s: float = 15.0) -> int:
    """The smallest record timestamp at the beginning of `topic`'s partitions."""
    consumer = KafkaConsumer(
        **connection(kafka),
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    try:
        partitions = partitions_of(consumer, topic, timeout_s)
        consumer.assign([TopicPartition(topic, p) for p in partitions])
        deadline = time.monotonic() + timeout_s
        stamps: dict[int, int] = {}
        while time.monotonic() < deadline:
            for tp, records in consumer.poll(timeout_ms=200).items():
                stamps.setdefault(tp.partition, min(r.timestamp for r in records))
            if stamps and all(
                consumer.highwater(TopicPartition(topic, p)) is not None for p in partitions
            ):
                return min(stamps.values())
        raise BrokerError(f"no record in {topic!r} within {timeout_s:.0f}s")
    finally:
        consumer.close()


def end_offsets(kafka: KafkaSettings, timeout_s: float = 15.0) -> dict[int, int]:
    """End offset per partition, from the high watermark a Fetch response carries."""
    with explained(kafka):
        consumer = KafkaConsumer(
            **connection(kafka),
            group_id=None,
            enable_auto_commit=False,
            max_poll_records=1,
            max_partition_fetch_bytes=1024,
        )
    try:
        partitions = partitions_of(consumer, kafka.topic, timeout_s)
        tps = [TopicPartition(kafka.topic, p) for p in partitions]
        consumer.assign(tps)
        highwaters = end_offsets_of(consumer, tps, timeout_s)
        return {tp.partition: highwaters[tp] for tp in tps}
    except KafkaError as exc:
        line = denied(kafka, exc, "Read", f"topic {kafka.topic}")
        raise BrokerError(
            line or f"reading the end offsets of {kafka.topic} failed: {exc}"
        ) from None
    finally:
        consumer.close()


def _highwaters(
    consumer: KafkaConsumer, tps: list[TopicPartition], timeout_s: float, keep: Any
) -> dict[TopicPartition, int]:
    deadline = time.monotonic() + timeout_s
    while True:
        known = {tp: consumer.highwater(tp) for tp in tps}
        if all(value is not None for value in known.values()):
            return {tp: int(value) for tp, value in known.items()}
        if time.monotonic() > deadline:
            raise BrokerError(f"no fetch response for {len(tps)} partitions in {timeout_s:.0f}s")
        keep(_records_of(consumer.poll(timeout_ms=200)))


def _records_of(polled: Any) -> list[Record]:
    return [
        Record(tp.partition, r.offset, r.key, r.value, r.timestamp)
        for tp, records in polled.items()
        for r in records
    ]


def partitions_of(consumer: KafkaConsumer, topic: str, timeout_s: float) -> list[int]:
    """The partitions of `topic`, sorted. A topic the cluster does not have fails at once
    (waiting for it to appear would only delay the same answer)."""
    if topic not in consumer.topics():
        raise BrokerError(f"topic {topic!r} does not exist on {_brokers_of(consumer)}")
    partitions = _wait_for(
        lambda: consumer.partitions_for_topic(topic),
        timeout_s,
        f"topic {topic!r} has no partitions yet",
    )
    return sorted(partitions)


def _brokers_of(consumer: KafkaConsumer) -> str:
    return ",".join(consumer.config["bootstrap_servers"])


def end_offsets_of(
    consumer: KafkaConsumer, tps: list[TopicPartition], timeout_s: float
) -> dict[TopicPartition, int]:
    """End offsets from Fetch responses' high watermarks (Tansu's ListOffsets under-reports);
    the consumer's positions are moved to those ends."""
    consumer.seek_to_end(*tps)
    return _highwaters(consumer, tps, timeout_s, lambda records: None)


def _wait_for(probe: Any, timeout_s: float, failure: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise BrokerError(failure)
        time.sleep(0.1)
