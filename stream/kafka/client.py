"""kafka-python at the edge: topic set-up, the producer behind `cohort-sync produce`, and the
partitioner the worker uses to decide whether a record sits on its cohort's partition.
The only module that imports kafka-python.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from stream.config import KafkaSettings
from stream.domain.partitioner import cohort_key_of
from stream.errors import BrokerError

__all__ = [
    "BrokerInfo",
    "Record",
    "TopicReader",
    "ensure_topics",
    "produce_lines",
    "own_topics",
    "committed_offsets",
    "GroupOffsets",
    "earliest_timestamp_ms",
    "end_offsets",
    "ClusterReport",
    "inspect_cluster",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BrokerInfo:
    """What the worker needs to know of the cluster before it starts."""

    partitions: int
    """How many partitions the input topic really has."""
    cluster_id: str | None

    @property
    def is_tansu(self) -> bool:
        return self.cluster_id == "tansu_cluster"


def ensure_topics(kafka: KafkaSettings, timeout_s: float = 30.0) -> BrokerInfo:
    """Create the input and dead-letter topics with `kafka.partitions` partitions if they are
    missing, and the worker's tick and repartition topics with the input's count, and
    describe the input topic and the cluster.

    Faust declares only the table's changelog; the other two would otherwise be created on
    the first send by the broker's auto-creation, with its default count (Kafka's 1,
    Tansu's 4), which Faust then refuses as not co-partitioned with the table."""
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=kafka.bootstrap_servers(), request_timeout_ms=int(timeout_s * 1000)
        )
    except KafkaError as exc:
        raise BrokerError(f"cannot reach Kafka at {kafka.broker}: {exc}") from None
    try:
        for topic in (kafka.topic, kafka.dlq_topic):
            _create_if_missing(admin, topic, kafka.partitions)
        partitions = _partition_counts(admin, [kafka.topic]).get(kafka.topic) or kafka.partitions
        for topic in co_partitioned_topics(kafka):  # internal: not worth a start-up line
            _create_if_missing(admin, topic, partitions, quiet=True)
        _own_topics_agree(admin, kafka, partitions)
        cluster_id = admin.describe_cluster().get("cluster_id")
        return BrokerInfo(partitions, cluster_id)
    except KafkaError as exc:
        raise BrokerError(f"cannot set up topics on {kafka.broker}: {exc}") from None
    finally:
        admin.close()


@dataclass(frozen=True)
class ClusterReport:
    """What `cohort-sync check` learns of the cluster, without changing anything."""

    cluster_id: str | None
    partitions: dict[str, int]
    """Partition count of each of the worker's topics that exists (input, dead letters, own)."""
    committed: dict[int, int | None]
    """The group's committed offsets on the input topic."""
    problems: list[str]


def inspect_cluster(kafka: KafkaSettings, timeout_s: float = 5.0) -> ClusterReport:
    """Reach the broker and describe the worker's topics and its group's offsets; creates
    nothing. Raises `BrokerError` when the broker cannot be reached."""
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=kafka.bootstrap_servers(),
            request_timeout_ms=int(timeout_s * 1000),
            bootstrap_timeout_ms=int(timeout_s * 1000),
        )
    except KafkaError as exc:
        raise BrokerError(f"cannot reach Kafka at {kafka.broker}: {exc}") from None
    try:
        topics = [kafka.topic, kafka.dlq_topic, *own_topics(kafka)]
        counts = _partition_counts(admin, topics)
        problems = []
        try:
            _own_topics_agree(admin, kafka, counts.get(kafka.topic, kafka.partitions))
        except BrokerError as exc:
            problems.append(str(exc))
        committed = _group_offsets(admin, kafka.app_id, kafka.topic)
        cluster_id = admin.describe_cluster().get("cluster_id")
        return ClusterReport(cluster_id, counts, committed, problems)
    except KafkaError as exc:
        raise BrokerError(f"cannot describe the topics on {kafka.broker}: {exc}") from None
    finally:
        admin.close()


def own_topics(kafka: KafkaSettings) -> list[str]:
    """The worker's topics co-partitioned with the input: ticks, repartition, changelog."""
    return [*co_partitioned_topics(kafka), f"{kafka.app_id}-membership-changelog"]


def co_partitioned_topics(kafka: KafkaSettings) -> list[str]:
    """The worker's own topics that it creates itself (Faust creates the changelog)."""
    return [f"{kafka.app_id}-ticks", f"{kafka.app_id}-by-cohort"]


def _create_if_missing(
    admin: KafkaAdminClient, topic: str, partitions: int, *, quiet: bool = False
) -> None:
    try:
        admin.create_topics([NewTopic(topic, partitions, 1)])
    except TopicAlreadyExistsError:
        return
    (log.debug if quiet else log.info)("created topic %s with %d partitions", topic, partitions)


def _partition_counts(admin: KafkaAdminClient, topics: list[str]) -> dict[str, int]:
    existing = set(admin.list_topics())
    wanted = [topic for topic in topics if topic in existing]
    if not wanted:
        return {}
    return {  # kafka-python 3 names the topic "name", 2.x "topic"
        described.get("name") or described["topic"]: len(described.get("partitions") or [])
        for described in admin.describe_topics(wanted)
    }


def _own_topics_agree(admin: KafkaAdminClient, kafka: KafkaSettings, partitions: int) -> None:
    """The worker's own topics must have the input topic's partition count (Faust reads
    partition N of each together); ones left by a run on another input topic do not."""
    for topic, count in sorted(_partition_counts(admin, own_topics(kafka)).items()):
        if count != partitions:
            raise BrokerError(
                f"topic {topic} has {count} partitions but the input topic {kafka.topic} has "
                f"{partitions}: it is the state of another deployment; use another "
                "kafka.app_id, or delete the worker's topics of this one to start afresh"
            )


def produce_lines(kafka: KafkaSettings, lines: Iterable[bytes]) -> int:
    """Send each non-blank line as one record keyed by its cohort id; returns the count."""
    try:
        producer = KafkaProducer(
            bootstrap_servers=kafka.bootstrap_servers(), linger_ms=5, acks="all"
        )
    except KafkaError as exc:
        raise BrokerError(f"cannot reach Kafka at {kafka.broker}: {exc}") from None
    sent = 0
    try:
        for line in _records(lines):  # Kafka's default partitioner places each cohort's key
            producer.send(kafka.topic, key=cohort_key_of(line), value=line)
            sent += 1
        producer.flush()
    except KafkaError as exc:
        raise BrokerError(f"producing to {kafka.topic} failed: {exc}") from None
    finally:
        producer.close()
    return sent


def _records(lines: Iterable[bytes]) -> Iterator[bytes]:
    for line in lines:
        stripped = line.strip()
        if stripped:
            yield stripped


@dataclass(frozen=True, slots=True)
class Record:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


class TopicReader:
    """Reads every partition of a topic from its beginning up to the end offsets seen at
    start, with no consumer group (nothing is committed, no live worker is disturbed).

    End offsets come from the high watermark of Fetch responses, which is right on Tansu
    too (its ListOffsets(LATEST) is not). Blocking: call it from a thread.
    """

    def __init__(self, kafka: KafkaSettings, *, timeout_s: float = 30.0) -> None:
        self.topic = kafka.topic
        try:
            self._consumer = KafkaConsumer(
                bootstrap_servers=kafka.bootstrap_servers(),
                group_id=None,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                max_poll_records=5000,
            )
        except KafkaError as exc:
            raise BrokerError(f"cannot reach Kafka at {kafka.broker}: {exc}") from None
        self._timeout_s = timeout_s
        self._pending: list[Record] = []
        self.begin: dict[int, int] = {}
        self.end: dict[int, int] = {}
        self._next: dict[int, int] = {}

    def start(self) -> None:
        """Assign every partition from its beginning and learn the end offsets."""
        partitions = _wait_for(
            lambda: self._consumer.partitions_for_topic(self.topic),
            self._timeout_s,
            f"topic {self.topic!r} does not exist",
        )
        tps = [TopicPartition(self.topic, p) for p in sorted(partitions)]
        self._consumer.assign(tps)
        self._consumer.seek_to_beginning(*tps)
        self.begin = {tp.partition: self._consumer.position(tp) for tp in tps}
        self._next = dict(self.begin)
        highwaters = _highwaters(self._consumer, tps, self._timeout_s, self._pending.extend)
        self.end = {tp.partition: highwaters[tp] for tp in tps}

    @property
    def total(self) -> int:
        return sum(self.end[p] - self.begin[p] for p in self.end)

    def done(self) -> bool:
        return all(self._next[p] >= self.end[p] for p in self.end)

    def poll(self) -> list[Record]:
        """The next records below the end offsets (an empty list when none came in 1 s)."""
        if not self._pending and not self.done():
            self._pending.extend(_records_of(self._consumer.poll(timeout_ms=1000)))
        batch, self._pending = self._pending, []
        wanted = [r for r in batch if self._next[r.partition] <= r.offset < self.end[r.partition]]
        for record in wanted:
            self._next[record.partition] = record.offset + 1
        return wanted

    def close(self) -> None:
        self._consumer.close()


def committed_offsets(kafka: KafkaSettings, group: str) -> dict[int, int | None]:
    """The group's committed offset per partition of the input topic (None: nothing yet)."""
    with GroupOffsets(kafka, group) as offsets:
        return offsets.read()


class GroupOffsets:
    """Reads a consumer group's committed offsets through one admin connection."""

    def __init__(self, kafka: KafkaSettings, group: str) -> None:
        self.kafka = kafka
        self.group = group
        try:
            self._admin = KafkaAdminClient(bootstrap_servers=kafka.bootstrap_servers())
        except KafkaError as exc:
            raise BrokerError(f"cannot reach Kafka at {kafka.broker}: {exc}") from None

    def read(self) -> dict[int, int | None]:
        try:
            return _group_offsets(self._admin, self.group, self.kafka.topic)
        except KafkaError as exc:
            raise BrokerError(f"cannot read the offsets of group {self.group!r}: {exc}") from None

    def close(self) -> None:
        self._admin.close()

    def __enter__(self) -> GroupOffsets:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _group_offsets(admin: KafkaAdminClient, group: str, topic: str) -> dict[int, int | None]:
    offsets = admin.list_group_offsets(group).get(group, {})
    return {
        tp.partition: (meta.offset if meta.offset >= 0 else None)
        for tp, meta in offsets.items()
        if tp.topic == topic
    }


def earliest_timestamp_ms(kafka: KafkaSettings, topic: str, timeout_s: float = 15.0) -> int:
    """The smallest record timestamp at the beginning of `topic`'s partitions."""
    consumer = KafkaConsumer(
        bootstrap_servers=kafka.bootstrap_servers(),
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    try:
        partitions = _wait_for(
            lambda: consumer.partitions_for_topic(topic),
            timeout_s,
            f"topic {topic!r} does not exist",
        )
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
    try:
        consumer = KafkaConsumer(
            bootstrap_servers=kafka.bootstrap_servers(),
            group_id=None,
            enable_auto_commit=False,
            max_poll_records=1,
            max_partition_fetch_bytes=1024,
        )
    except KafkaError as exc:
        raise BrokerError(f"cannot reach Kafka at {kafka.broker}: {exc}") from None
    try:
        partitions = _wait_for(
            lambda: consumer.partitions_for_topic(kafka.topic),
            timeout_s,
            f"topic {kafka.topic!r} does not exist",
        )
        tps = [TopicPartition(kafka.topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        consumer.seek_to_end(*tps)  # a valid offset even where ListOffsets under-reports
        highwaters = _highwaters(consumer, tps, timeout_s, lambda records: None)
        return {tp.partition: highwaters[tp] for tp in tps}
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
        Record(tp.partition, r.offset, r.key, r.value)
        for tp, records in polled.items()
        for r in records
    ]


def _wait_for(probe: Any, timeout_s: float, failure: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise BrokerError(failure)
        time.sleep(0.1)
