"""The worker's topics on a cluster with auto-creation off (the suite's Apache Kafka): each
created before anything writes to it, with `kafka.replication_factor` and
`kafka.topic_config`, the changelog compacted."""

from __future__ import annotations

from dataclasses import replace

import pytest
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType

from stream.config import KafkaSettings
from stream.errors import BrokerError
from stream.kafka.topics import ensure_topics
from tests.brokers import Broker


def kafka_of(broker: Broker, names: dict[str, str], **extra: object) -> KafkaSettings:
    return replace(
        KafkaSettings(broker=broker.url, topic=names["topic"], app_id=names["app_id"]),
        partitions=3,
        **extra,  # type: ignore[arg-type]
    )


def configs(broker: Broker, topic: str) -> dict[str, str]:
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        described = admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic)], config_filter="all"
        )
        return {key: entry["value"] for key, entry in described["topic"][topic].items()}
    finally:
        admin.close()


def described(broker: Broker, topics: list[str]) -> dict[str, tuple[int, int]]:
    """(partitions, replication factor) of each topic."""
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        return {
            topic["name"]: (
                len(topic["partitions"]),
                len(topic["partitions"][0]["replica_nodes"]),
            )
            for topic in admin.describe_topics(topics)
        }
    finally:
        admin.close()


def test_every_topic_the_worker_writes_to_is_created_with_the_configured_settings(
    broker: Broker, names: dict[str, str]
) -> None:
    if broker.cluster is None:
        pytest.skip("Tansu keeps no topic configs")
    kafka = kafka_of(broker, names, topic_config={"retention.ms": "123456789"})
    info = ensure_topics(kafka)
    assert (info.partitions, info.replication_factor, info.is_tansu) == (3, 1, False)
    mine = [kafka.topic, kafka.dlq_topic, *kafka.own_topics()]
    assert described(broker, [*mine, kafka.leader_topic]) == {
        **{topic: (3, 1) for topic in mine},
        kafka.leader_topic: (1, 1),
    }
    for topic in [*mine, kafka.leader_topic]:
        assert configs(broker, topic)["retention.ms"] == "123456789", topic
    assert configs(broker, kafka.changelog_topic)["cleanup.policy"] == "compact"
    assert configs(broker, kafka.dlq_topic)["cleanup.policy"] == "delete"


def test_a_replication_factor_the_cluster_cannot_give_is_one_clear_error(
    broker: Broker, names: dict[str, str]
) -> None:
    if broker.cluster is None:
        pytest.skip("Tansu accepts any replication factor")
    kafka = kafka_of(broker, names, replication_factor=3)
    with pytest.raises(BrokerError) as raised:
        ensure_topics(kafka)
    message = str(raised.value)
    assert "\n" not in message
    assert f"cannot set up topics on {broker.url}" in message
    assert "InvalidReplicationFactor" in message, message
