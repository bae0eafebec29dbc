"""`[kafka]`: one reader of `kafka.broker` for every client, and the keys of the topics the
worker creates (`kafka.replication_factor`, `kafka.topic_config`)."""

from __future__ import annotations

from typing import Any

import pytest

from stream.config import settings_from_mapping
from stream.config.kafka import KafkaSettings, parse_brokers, read_kafka
from stream.errors import ConfigError


def kafka(**section: Any) -> KafkaSettings:
    return settings_from_mapping({"kafka": section}).kafka


@pytest.mark.parametrize(
    "written",
    [
        "h1:9092,h2:9092",
        "h1:9092, h2:9092",
        "h1:9092; h2:9092",
        " kafka://h1:9092 ,kafka://h2:9092 ",
        "kafka://h1:9092;h2:9092;",
        "KAFKA://h1:9092,  h2:9092",
    ],
)
def test_every_way_of_writing_two_brokers_gives_both_clients_the_same_hosts(
    written: str,
) -> None:
    settings = kafka(broker=written)
    assert settings.bootstrap_servers() == ["h1:9092", "h2:9092"]
    assert settings.kafka_url() == "kafka://h1:9092;kafka://h2:9092"


def test_ipv6_and_dotted_hosts_are_kept_as_written() -> None:
    assert parse_brokers("[::1]:9092, b-1.msk.eu-west-1.amazonaws.com:9098") == [
        "[::1]:9092",
        "b-1.msk.eu-west-1.amazonaws.com:9098",
    ]


@pytest.mark.parametrize(
    ("written", "problem"),
    [
        ("h1", "'h1' is not host:port"),
        ("h1:port", "'h1:port' is not host:port"),
        ("h1:0", "'h1:0' is not host:port"),
        ("h1:70000", "'h1:70000' is not host:port"),
        ("h 1:9092", "'h 1:9092' is not host:port"),
        ("ssl://h1:9092", "only kafka:// (or no scheme)"),
        (" , ;", "names no host"),
    ],
)
def test_a_broker_list_that_is_not_host_port_stops_the_start_naming_the_key(
    written: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        kafka(broker=written)
    assert raised.value.key == "kafka.broker"
    assert problem in str(raised.value)


def test_the_broker_variable_is_read_by_the_same_parser() -> None:
    settings = settings_from_mapping(
        {"kafka": {"broker": "x:1"}}, environ={"COHORT_SYNC_BROKER": "a:9092 , b:9093"}
    )
    assert settings.kafka.bootstrap_servers() == ["a:9092", "b:9093"]
    with pytest.raises(ConfigError, match="kafka.broker"):
        settings_from_mapping({}, environ={"COHORT_SYNC_BROKER": "a"})


def test_own_topics_default_to_the_cluster_s_replication_factor_and_no_configs() -> None:
    settings = kafka()
    assert settings.replication_factor is None
    assert settings.topic_config == {}
    assert settings.topic_config_for(settings.dlq_topic) == {}
    assert settings.topic_config_for(settings.changelog_topic) == {"cleanup.policy": "compact"}


def test_topic_configs_go_on_every_own_topic_and_the_changelog_stays_compacted() -> None:
    settings = kafka(
        replication_factor=3,
        topic_config={"min.insync.replicas": "2", "cleanup.policy": "delete"},
    )
    assert settings.replication_factor == 3
    for topic in (settings.topic, settings.dlq_topic, settings.ticks_topic):
        assert settings.topic_config_for(topic) == {
            "min.insync.replicas": "2",
            "cleanup.policy": "delete",
        }
    assert settings.topic_config_for(settings.changelog_topic) == {
        "min.insync.replicas": "2",
        "cleanup.policy": "compact",
    }
    assert kafka(replication_factor="default").replication_factor is None


@pytest.mark.parametrize(
    ("section", "key", "problem"),
    [
        ({"replication_factor": 0}, "kafka.replication_factor", "whole number from 1"),
        ({"replication_factor": "3"}, "kafka.replication_factor", "whole number from 1"),
        ({"replication_factor": True}, "kafka.replication_factor", "whole number from 1"),
        ({"topic_config": "x"}, "kafka.topic_config", "must be a table"),
        (
            {"topic_config": {"min.insync.replicas": 2}},
            "kafka.topic_config.min.insync.replicas",
            'write min.insync.replicas = "2"',
        ),
    ],
)
def test_a_wrong_topic_key_names_itself(section: dict[str, Any], key: str, problem: str) -> None:
    with pytest.raises(ConfigError) as raised:
        kafka(**section)
    assert raised.value.key == key
    assert problem in str(raised.value)


def test_the_worker_s_own_topic_names_are_built_in_one_place() -> None:
    settings = kafka(app_id="a", topic="in")
    assert settings.own_topics() == ["a-ticks", "a-by-cohort", "a-membership-changelog"]
    assert settings.dlq_topic == "in-dlq"


def test_an_empty_kafka_table_gives_the_settings_defaults() -> None:
    """The defaults are written once, in `KafkaSettings`; the reader takes them from there."""
    assert read_kafka({}, {}) == KafkaSettings()
