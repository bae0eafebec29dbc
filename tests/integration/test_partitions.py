"""`replay` learns the topic's partitions with aiokafka (`fetch.quick_partitions`) and
leaves every failure to kafka-python's lookup, whose one line says what to fix."""

from __future__ import annotations

import asyncio
import logging
import socket
from dataclasses import replace

import pytest

from stream.config import KafkaSettings
from stream.kafka.fetch import quick_partitions
from stream.kafka.topics import ensure_topics
from tests.brokers import Broker


def test_the_quick_lookup_gives_the_topic_s_partitions_and_none_for_a_missing_topic(
    broker: Broker, names: dict[str, str]
) -> None:
    kafka = replace(
        KafkaSettings(broker=broker.url, topic=names["topic"], app_id=names["app_id"]),
        partitions=3,
    )
    ensure_topics(kafka)
    assert asyncio.run(quick_partitions(kafka)) == [0, 1, 2]
    assert asyncio.run(quick_partitions(replace(kafka, topic=f"{kafka.topic}-none"))) is None


def test_the_quick_lookup_of_an_unreachable_cluster_is_none_and_warns_of_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with socket.socket() as probe:  # a port nothing listens on once it is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    caplog.set_level(logging.DEBUG)
    kafka = KafkaSettings(broker=f"127.0.0.1:{port}", topic="t", app_id="a")
    assert asyncio.run(quick_partitions(kafka)) is None
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
