"""`cohort-sync dead-letters` against a running worker: the list shows why records were
dead-lettered; `--requeue` after a fix lands them, and a second `--requeue` sends nothing,
not even the dead letter of a copy that failed again."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaProducer

from stream.config import settings_from_mapping
from stream.kafka.client import end_offsets
from stream.kafka.scan import scan_topic
from stream.kafka.topics import ensure_topics
from tests.scenario import C1, JAN5, H, event

from .conftest import read_bucket
from .support import cli, csvs_in, expected_files, produce, toml_of, wait_for_objects
from .test_accounting import C1_OBJECTS, c1_home, dead_letters

#: Two hours ahead of its record's timestamp: dead-lettered while `max_future` is 1h.
AHEAD = event("c1", 99, "enter", 6 * H)
NOT_AN_OBJECT = b"[1, 2]"


def test_dead_letters_are_listed_requeued_once_and_a_requeued_record_lands(
    s3: Any, bucket: str, workers: Any, s3_config: Callable[..., Path]
) -> None:
    config = s3_config()
    settings = settings_from_mapping(toml_of(config))
    kafka = replace(settings.kafka, topic_config={"retention.ms": "-1"})  # keeps January
    ensure_topics(kafka)
    produce(config, C1)
    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap_servers())
    home = c1_home(config)
    for value in (AHEAD, NOT_AN_OBJECT):
        producer.send(
            kafka.topic, key=b"c1", value=value, partition=home, timestamp_ms=JAN5 + 4 * H
        )
    producer.flush()
    producer.close()
    worker = workers(config)
    wait_for_objects(s3, bucket, C1_OBJECTS, worker)
    dead_letters(config, 2)

    listed = cli("dead-letters", config)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[-1] == f"2 dead letters in {kafka.dlq_topic}"
    assert f"  {kafka.topic}/{home}/8  too far ahead: event time 2026-01-05T06:00:00Z" in lines[0]
    assert lines[0].endswith(f"| {AHEAD.decode()[:80]}...")
    assert (
        f"  {kafka.topic}/{home}/9  message must be a JSON object, got list  | [1, 2]" in (lines[1])
    )
    chosen = cli("dead-letters", config, "--reason", "JSON OBJECT", "--json")
    (row,) = json.loads(chosen.stdout)
    assert (row["source"], row["value"]) == (f"{kafka.topic}/{home}/9", "[1, 2]")
    assert chosen.stderr.strip() == f"1 of 2 dead letters in {kafka.dlq_topic} selected"

    # The fix: a worker that allows events far ahead; the malformed record stays malformed.
    worker.stop_cleanly()
    worker = workers(_with_kafka_line(config, 'max_future = "off"'))
    first = cli("dead-letters", config, "--requeue")
    assert first.stdout.splitlines()[-1] == f"requeued 2 records to {kafka.topic}", first.stderr
    expected = expected_files(config, [*C1, AHEAD])
    wait_for_objects(s3, bucket, len(expected), worker)
    # The CSVs of a clean run; manifests name input offsets, and the copy has its own.
    assert csvs_in(read_bucket(s3, bucket)) == csvs_in(expected)
    dead_letters(config, 3)  # the malformed copy failed again

    copies = [r for r in scan_topic(kafka, kafka.topic) if r.offset >= 10]
    assert [(r.value, r.headers) for r in copies] == [
        (AHEAD, (("cohort-sync-requeued-from", f"{kafka.dlq_topic}/{home}/0".encode()),)),
        (NOT_AN_OBJECT, (("cohort-sync-requeued-from", f"{kafka.dlq_topic}/{home}/1".encode()),)),
    ]
    again = cli("dead-letters", config, "--requeue")
    assert again.stdout.splitlines()[-1] == (
        f"requeued 0 records to {kafka.topic}; 3 records requeued before: not sent again"
    )
    assert end_offsets(kafka)[home] == 12
    worker.stop_cleanly()


@pytest.mark.parametrize("command", ["dead-letters", "replay"])
def test_a_topic_that_does_not_exist_is_said_at_once(
    s3_config: Callable[..., Path], command: str
) -> None:
    """At once: not after kafka-python's wait for the topic's metadata (30 s)."""
    config = s3_config()
    kafka = settings_from_mapping(toml_of(config)).kafka
    topic = kafka.dlq_topic if command == "dead-letters" else kafka.topic
    result = cli(command, config)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"cohort-sync: topic {topic!r} does not exist on {kafka.bootstrap_servers()[0]}"
    ]


def _with_kafka_line(config: Path, line: str) -> Path:
    text = config.read_text().replace("[kafka]\n", f"[kafka]\n{line}\n", 1)
    fixed = config.with_name("fixed.toml")
    fixed.write_text(text)
    return fixed
