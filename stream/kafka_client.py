"""kafka-python at the edge: topic set-up, the producer behind `cohort-sync produce`, and the
partitioner the worker uses to decide whether a record sits on its cohort's partition.
The only module that imports kafka-python.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError
from kafka.partitioner.default import murmur2

from .config import KafkaSettings
from .errors import BrokerError

__all__ = ["BrokerInfo", "partition_for", "ensure_topics", "produce_lines", "cohort_key_of"]

log = logging.getLogger(__name__)


def partition_for(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner (Java, kafka-python, aiokafka) picks."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


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
    missing, and describe the input topic and the cluster."""
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=kafka.bootstrap_servers(), request_timeout_ms=int(timeout_s * 1000)
        )
    except KafkaError as exc:
        raise BrokerError(f"cannot reach Kafka at {kafka.broker}: {exc}") from None
    try:
        for topic in (kafka.topic, kafka.dlq_topic):
            try:
                admin.create_topics([NewTopic(topic, kafka.partitions, 1)])
                log.info("created topic %s with %d partitions", topic, kafka.partitions)
            except TopicAlreadyExistsError:
                pass
        described = admin.describe_topics([kafka.topic])
        partitions = len(described[0].get("partitions") or []) if described else 0
        cluster_id = admin.describe_cluster().get("cluster_id")
        return BrokerInfo(partitions or kafka.partitions, cluster_id)
    except KafkaError as exc:
        raise BrokerError(f"cannot set up topics on {kafka.broker}: {exc}") from None
    finally:
        admin.close()


def cohort_key_of(line: bytes) -> bytes | None:
    """The record key for one JSON line: its cohort id, or None when it has none."""
    try:
        document: Any = json.loads(line)
    except ValueError:
        return None
    cohort = document.get("cohort_id") if isinstance(document, dict) else None
    if isinstance(cohort, int | str) and not isinstance(cohort, bool):
        return str(cohort).encode("utf-8")
    return None


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
