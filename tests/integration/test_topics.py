"""The worker's topics on a cluster with auto-creation off (the suite's Apache Kafka): each
created before anything writes to it, with `kafka.replication_factor` and
`kafka.topic_config`, the changelog compacted."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType

from stream.config import KafkaSettings
from stream.errors import BrokerError
from stream.kafka.topics import ensure_topics
from tests.brokers import Broker

from .support import HOURLY_ALL, write_config


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


#: `cohort-sync worker` up to the Faust worker's run, which prints the kafka-python modules
#: the worker's process has imported by then, and the Kafka settings the worker was made with.
_WORKER_UNTIL_RUN = """
import sys
import stream.faust.worker as edge

def run_worker(worker, loglevel):
    print(sorted(m for m in sys.modules if m.partition(".")[0] == "kafka"))
    print(worker.settings.kafka.partitions, worker.app.conf.topic_replication_factor)

edge.run_worker = run_worker
from stream.commands.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_the_worker_checks_its_topics_in_a_process_of_its_own_and_never_imports_kafka_python(
    broker: Broker, names: dict[str, str], tmp_path: Path
) -> None:
    """kafka-python is 0.2-0.3 s of a start's imports, and only the topic check needs it: the
    worker forks the check before its own imports (`commands/forked.py`)."""
    destination = f'[[destinations]]\nname = "s3"\nurl = "file://{tmp_path}/out"\n'
    config = write_config(tmp_path, broker, names, destination, HOURLY_ALL)
    done = subprocess.run(
        [sys.executable, "-c", _WORKER_UNTIL_RUN, "worker", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    imported, made_with = done.stdout.splitlines()
    assert imported == "[]"
    assert made_with == "4 1"  # what the check found, from the forked process
    kafka = kafka_of(broker, names)
    made = [kafka.dlq_topic, *kafka.own_topics()]
    assert {topic: shape[0] for topic, shape in described(broker, made).items()} == {
        topic: 4 for topic in made
    }
