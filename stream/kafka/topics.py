"""The worker's topics on the cluster: created before anything writes to them, and described
for `cohort-sync check`.

A production cluster often has topic auto-creation off and wants replication factor 3, so
the worker never leaves a topic to the broker: it creates the input topic (when missing),
the dead-letter topic and its own topics (ticks, repartition, Faust's changelog and leader
topic) with `kafka.replication_factor` and `kafka.topic_config`, before Faust starts.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic
from kafka.errors import (
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    NodeNotReadyError,
    NotControllerError,
    RequestTimedOutError,
    TopicAlreadyExistsError,
)

from stream.config import KafkaSettings
from stream.domain.wording import count
from stream.errors import BrokerError
from stream.kafka.client import admin_client, group_offsets
from stream.kafka.cluster import TANSU_CLUSTER_ID, BrokerInfo
from stream.kafka.diagnosis import denied

__all__ = ["BrokerInfo", "ClusterReport", "TopicInfo", "ensure_topics", "inspect_cluster"]

log = logging.getLogger(__name__)


def ensure_topics(kafka: KafkaSettings, timeout_s: float = 30.0) -> BrokerInfo:
    """Create every topic the worker writes to that is missing: the input and dead-letter
    topics with `kafka.partitions` partitions, its own co-partitioned topics with the
    input's count, the leader topic with one; then check that the own topics agree.

    A broker that is down (the one the admin client took for the controller, say) is
    waited out until `timeout_s`, each try with a new client: creating is idempotent."""
    deadline = time.monotonic() + timeout_s
    while True:
        admin = admin_client(kafka, min(timeout_s, 10.0))  # a try is short: others follow
        try:
            return _ensure(admin, kafka, timeout_s)
        except UNREACHABLE as exc:
            if time.monotonic() > deadline:
                raise BrokerError(f"cannot set up topics on {kafka.broker}: {exc}") from None
            log.debug("setting up topics: %s; trying again", exc)
        except KafkaError as exc:
            line = denied(kafka, exc, "Create", f"the worker's topics ({_topic_names(kafka)})")
            raise BrokerError(line or f"cannot set up topics on {kafka.broker}: {exc}") from None
        finally:
            admin.close()
        time.sleep(0.5)


#: Errors of a broker that is down or moving: worth another try with a new client.
UNREACHABLE = (
    KafkaConnectionError,
    NodeNotReadyError,
    KafkaTimeoutError,
    NotControllerError,
    RequestTimedOutError,
)


def _topic_names(kafka: KafkaSettings) -> str:
    return f"{kafka.topic}, {kafka.dlq_topic} and {kafka.app_id}-*"


def _ensure(admin: KafkaAdminClient, kafka: KafkaSettings, timeout_s: float) -> BrokerInfo:
    cluster_id = admin.describe_cluster().get("cluster_id")
    replication = _replication(kafka, cluster_id)
    for topic in (kafka.topic, kafka.dlq_topic):
        _create_if_missing(admin, kafka, topic, kafka.partitions, replication)
    partitions = _described(admin, [kafka.topic], timeout_s)[kafka.topic].partitions
    for topic in kafka.own_topics():  # internal: not worth a start-up line
        _create_if_missing(admin, kafka, topic, partitions, replication, quiet=True)
    _create_if_missing(admin, kafka, kafka.leader_topic, 1, replication, quiet=True)
    own = _described(admin, kafka.own_topics(), timeout_s)
    _own_topics_agree(kafka, own, partitions)
    return BrokerInfo(partitions, cluster_id, own[kafka.changelog_topic].replication_factor)


@dataclass(frozen=True)
class TopicInfo:
    name: str
    partitions: int
    replication_factor: int
    min_insync_replicas: int | None
    """None: the broker would not say (no DescribeConfigs permission, say)."""


@dataclass(frozen=True)
class ClusterReport:
    """What `cohort-sync check` learns of the cluster, without changing anything."""

    cluster_id: str | None
    brokers: int
    topics: dict[str, TopicInfo]
    """Each of the worker's topics that exists (input, dead letters, own)."""
    committed: dict[int, int | None]
    """The group's committed offsets on the input topic."""
    problems: list[str]
    warnings: list[str]

    @property
    def partitions(self) -> dict[str, int]:
        return {name: topic.partitions for name, topic in self.topics.items()}


def inspect_cluster(kafka: KafkaSettings, timeout_s: float = 5.0) -> ClusterReport:
    """Reach the broker and describe the worker's topics and its group's offsets; creates
    nothing. Raises `BrokerError` when the broker cannot be reached."""
    admin = admin_client(kafka, timeout_s)
    try:
        cluster = admin.describe_cluster()
        brokers = len(cluster.get("brokers") or [])
        topics = _describe(admin, [kafka.topic, kafka.dlq_topic, *kafka.own_topics()])
        topics = {name: _with_min_insync(admin, info) for name, info in topics.items()}
        problems = []
        try:
            own = {name: info for name, info in topics.items() if name in kafka.own_topics()}
            input_topic = topics.get(kafka.topic)
            _own_topics_agree(
                kafka, own, input_topic.partitions if input_topic else kafka.partitions
            )
        except BrokerError as exc:
            problems.append(str(exc))
        warnings = [
            f"topic {name} has replication factor 1 on a cluster of {brokers} brokers: it is "
            "lost with the broker that holds it (set kafka.replication_factor for the worker's "
            "own topics; recreate or reassign this one)"
            for name, info in sorted(topics.items())
            if info.replication_factor == 1 and brokers > 1
        ]
        committed = group_offsets(admin, kafka.app_id, kafka.topic)
        return ClusterReport(
            cluster.get("cluster_id"), brokers, topics, committed, problems, warnings
        )
    except KafkaError as exc:
        raise BrokerError(f"cannot describe the topics on {kafka.broker}: {exc}") from None
    finally:
        admin.close()


def _replication(kafka: KafkaSettings, cluster_id: str | None) -> int:
    """The replication factor to ask for: -1 is "the cluster's default" in CreateTopics;
    Tansu has no replication and takes 1 only."""
    if kafka.replication_factor is not None:
        return kafka.replication_factor
    return 1 if cluster_id == TANSU_CLUSTER_ID else -1


def _create_if_missing(
    admin: KafkaAdminClient,
    kafka: KafkaSettings,
    topic: str,
    partitions: int,
    replication: int,
    *,
    quiet: bool = False,
) -> None:
    configs = kafka.topic_config_for(topic)
    try:
        admin.create_topics(
            [NewTopic(topic, partitions, replication, topic_configs=configs or None)]
        )
    except TopicAlreadyExistsError:
        return
    factor = "the cluster's default" if replication == -1 else str(replication)
    (log.debug if quiet else log.info)(
        "created topic %s with %s, replication factor %s",
        topic,
        count(partitions, "partition"),
        factor,
    )


def _described(
    admin: KafkaAdminClient, topics: list[str], timeout_s: float
) -> dict[str, TopicInfo]:
    """`topics`, which exist: a topic just created may take a moment to show in metadata."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = _describe(admin, topics)
        if len(found) == len(topics):
            return found
        if time.monotonic() > deadline:
            missing = ", ".join(sorted(set(topics) - set(found)))
            raise BrokerError(f"topics {missing} do not show in the cluster's metadata")
        time.sleep(0.1)


def _describe(admin: KafkaAdminClient, topics: list[str]) -> dict[str, TopicInfo]:
    """The topics of `topics` that exist with their partitions. A topic just created may be
    listed before its partitions show (Apache Kafka 4.0 on three brokers, say): it counts
    as not there yet."""
    existing = set(admin.list_topics())
    wanted = [topic for topic in topics if topic in existing]
    if not wanted:
        return {}
    described: dict[str, TopicInfo] = {}
    for topic in admin.describe_topics(wanted):
        name = topic["name"]
        partitions = topic.get("partitions") or []
        if not partitions:
            continue
        replicas = max((len(p["replica_nodes"]) for p in partitions), default=0)
        described[name] = TopicInfo(name, len(partitions), replicas, None)
    return described


def _with_min_insync(admin: KafkaAdminClient, topic: TopicInfo) -> TopicInfo:
    resource = ConfigResource(ConfigResourceType.TOPIC, topic.name, {"min.insync.replicas": None})
    try:
        described = admin.describe_configs([resource], config_filter="all")
    except KafkaError:  # no DescribeConfigs permission, say: the value stays unknown
        return topic
    entry = described.get("topic", {}).get(topic.name, {}).get("min.insync.replicas") or {}
    value = entry.get("value")
    if value is None:
        return topic
    return TopicInfo(topic.name, topic.partitions, topic.replication_factor, int(value))


def _own_topics_agree(kafka: KafkaSettings, own: dict[str, TopicInfo], partitions: int) -> None:
    """The worker's own topics must have the input topic's partition count (Faust reads
    partition N of each together); ones left by a run on another input topic do not."""
    for name, topic in sorted(own.items()):
        if topic.partitions != partitions:
            raise BrokerError(
                f"topic {name} has {topic.partitions} partitions but the input topic "
                f"{kafka.topic} has {partitions}: it is the state of another deployment; use "
                "another kafka.app_id, or delete the worker's topics of this one to start afresh"
            )
