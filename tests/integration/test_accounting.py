"""Every record the broker delivers ends applied, forwarded or dead-lettered, whatever its size
and wherever its handling fails; the worker stops within its bounded time with records in
flight or failing, and what it did not finish is delivered again at the next start."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic

from stream.config import settings_from_mapping
from stream.domain.partitioner import partition_for
from stream.faust.run import STOP_DEADLINE_SECONDS
from stream.kafka.client import committed_offsets
from stream.kafka.topics import ensure_topics
from tests.scenario import C1, JAN5, MIN, H, event, expected_csvs

from .conftest import WAIT, read_bucket, wait_until
from .support import csvs_in, replay, toml_of, wait_for_objects

FAULTY_WORKER = [str(Path(__file__).with_name("faulty_worker.py"))]
MARKER = "u1004"  # the user id of C1[6], the only record that carries it
MARKED = 6
C1_OBJECTS = 16  # four hourly syncs of c1: three CSVs and a manifest each


def produce_keyed(config: Path, records: Sequence[tuple[bytes, bytes, int | None]]) -> None:
    """Send (key, value, partition) records in order, up to 4 MiB each (the input topic takes
    them: Apache Kafka's default limit is 1 MB, as the worker's producer's)."""
    settings = settings_from_mapping(toml_of(config))
    big = {"max.message.bytes": str(4 * 1024 * 1024)}
    ensure_topics(replace(settings.kafka, topic_config=big))
    producer = KafkaProducer(
        bootstrap_servers=settings.kafka.bootstrap_servers(), max_request_size=4 * 1024 * 1024
    )
    sent = [
        producer.send(settings.kafka.topic, key=key, value=value, partition=partition)
        for key, value, partition in records
    ]
    producer.flush()
    for future in sent:
        future.get(timeout=WAIT)  # raises if the broker refused it
    producer.close()


def dead_letters(config: Path, count: int) -> list[Any]:
    settings = settings_from_mapping(toml_of(config))
    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka.bootstrap_servers(),
        group_id=None,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_bytes=16 * 1024 * 1024,
    )
    topic = settings.kafka.dlq_topic
    try:
        partitions = wait_until(lambda: consumer.partitions_for_topic(topic), WAIT, topic)
        consumer.assign([TopicPartition(topic, p) for p in partitions])
        found: list[Any] = []
        deadline = time.monotonic() + WAIT
        while len(found) < count and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                found.extend(records)
        assert len(found) == count, f"{len(found)} dead letters, expected {count}"
        return found
    finally:
        consumer.close()


def c1_home(config: Path) -> int:
    return partition_for(b"c1", settings_from_mapping(toml_of(config)).kafka.partitions)


def test_a_record_larger_than_the_producer_limit_is_dead_lettered_as_a_prefix(
    s3: Any, bucket: str, workers: Any, s3_config: Callable[..., Path]
) -> None:
    config = s3_config()
    huge = b"not json " * 230_000  # 2 MiB: the broker takes it, the worker may not send it
    home = c1_home(config)
    produce_keyed(config, [(b"c1", huge, home), *((b"c1", line, home) for line in C1)])
    worker = workers(config)
    objects = wait_for_objects(s3, bucket, C1_OBJECTS, worker)
    assert csvs_in(objects) == expected_csvs("exports/hourly", cohorts=("c1",))
    (letter,) = dead_letters(config, 1)
    headers = dict(letter.headers)
    assert huge.startswith(letter.value) and 0 < len(letter.value) < 1_000_000
    assert headers["cohort-sync-original-size"] == str(len(huge)).encode()
    assert headers["cohort-sync-original-sha256"] == hashlib.sha256(huge).hexdigest().encode()
    assert headers["cohort-sync-reason"].startswith(b"not valid JSON")
    started = time.monotonic()
    assert worker.stop(timeout=STOP_DEADLINE_SECONDS + 5) == 0
    assert time.monotonic() - started < STOP_DEADLINE_SECONDS


@pytest.mark.parametrize("stage", ["parse", "apply"])
def test_a_record_whose_handling_raises_is_dead_lettered_and_the_rest_applied(
    stage: str, s3: Any, bucket: str, workers: Any, s3_config: Callable[..., Path]
) -> None:
    config = s3_config()
    home = c1_home(config)
    produce_keyed(config, [(b"c1", line, home) for line in C1])
    worker = workers(config, FAULTY_WORKER + [stage, MARKER])
    objects = csvs_in(wait_for_objects(s3, bucket, C1_OBJECTS, worker))
    expected = expected_csvs("exports/hourly", cohorts=("c1",))
    without_marked = {key: text.replace("1004,u1004,\n", "") for key, text in expected.items()}
    assert objects == without_marked
    (letter,) = dead_letters(config, 1)
    assert letter.value == C1[MARKED]
    reason = dict(letter.headers)["cohort-sync-reason"].decode()
    doing = {"parse": "parsing", "apply": "applying"}[stage]
    assert reason.endswith(f"Injected: injected into {doing}"), reason
    worker.stop_cleanly()


def test_an_event_a_year_ahead_of_its_kafka_timestamp_is_dead_lettered_and_moves_no_sync(
    s3: Any, bucket: str, workers: Any, s3_config: Callable[..., Path]
) -> None:
    """The first-hour issue's case: without `kafka.max_future` the worker wrote every
    hourly sync up to the future date and refused the on-time events after it."""
    config = s3_config()
    settings = settings_from_mapping(toml_of(config))
    future = event("c1", 99, "enter", 400 * 24 * H)
    # Each record stamped with its own event time; the future one a minute after the first.
    stamped = [(C1[0], JAN5 + 10 * MIN), (future, JAN5 + 11 * MIN)]
    stamped += [(line, _event_time(line)) for line in C1[1:]]
    # Kept whatever their timestamps: a topic's default retention would delete January's.
    ensure_topics(replace(settings.kafka, topic_config={"retention.ms": "-1"}))
    producer = KafkaProducer(bootstrap_servers=settings.kafka.bootstrap_servers())
    home = c1_home(config)
    sent = [
        producer.send(settings.kafka.topic, key=b"c1", value=value, partition=home, timestamp_ms=at)
        for value, at in stamped
    ]
    producer.flush()
    for each in sent:
        each.get(timeout=WAIT)
    producer.close()
    worker = workers(config)
    objects = wait_for_objects(s3, bucket, C1_OBJECTS, worker)
    assert csvs_in(objects) == expected_csvs("exports/hourly", cohorts=("c1",))
    (letter,) = dead_letters(config, 1)
    assert letter.value == future
    reason = dict(letter.headers)["cohort-sync-reason"].decode()
    assert reason == (
        "too far ahead: event time 2027-02-09T00:00:00Z is more than kafka.max_future (1h) "
        "after the record's Kafka timestamp 2026-01-05T00:11:00Z (key 'c1')"
    )
    worker.stop_cleanly()
    for key in objects:  # a replay reads the same timestamps and decides the same
        s3.delete_object(Bucket=bucket, Key=key)
    result = replay(config)
    assert result.returncode == 0, result.stderr
    assert read_bucket(s3, bucket) == objects


def _event_time(line: bytes) -> int:
    return int(datetime.fromisoformat(json.loads(line)["time"]).timestamp() * 1000)


@pytest.mark.parametrize("stage", ["store", "forward", "sync"])
def test_a_fault_of_the_worker_stops_it_and_the_next_start_loses_nothing(
    stage: str, s3: Any, bucket: str, workers: Any, s3_config: Callable[..., Path]
) -> None:
    config = s3_config()
    kafka = settings_from_mapping(toml_of(config)).kafka
    home = c1_home(config)
    elsewhere = (home + 1) % kafka.partitions
    records = [(b"c1", line, home) for line in C1]
    if stage == "forward":  # the last record arrives off its cohort's partition
        records[-1] = (b"not-c1", C1[-1], elsewhere)
    produce_keyed(config, records)
    faulty = workers(config, FAULTY_WORKER + [stage, MARKER])
    assert faulty.wait_exit(WAIT) == 1
    log = faulty.log()
    assert "cohort-sync: the worker stopped: handling" in log and "Injected: injected" in log
    committed = committed_offsets(kafka, kafka.app_id)
    failed_at = {"store": (home, MARKED), "forward": (elsewhere, 0), "sync": (home, 4)}[stage]
    partition, offset = failed_at  # C1[4] (01:05) is the record that makes 01:00 due
    assert (committed.get(partition) or 0) <= offset, committed
    restarted = workers(config)
    objects = wait_for_objects(s3, bucket, C1_OBJECTS, restarted)
    assert csvs_in(objects) == expected_csvs("exports/hourly", cohorts=("c1",))
    restarted.stop_cleanly()


@pytest.mark.parametrize("partitions", [1, 3])
def test_an_input_topic_that_exists_is_taken_with_its_partition_count(
    partitions: int, s3: Any, bucket: str, workers: Any, s3_config: Callable[..., Path]
) -> None:
    config = s3_config()
    config.write_text(config.read_text().replace("partitions = 4\n", "", 1))  # the default
    kafka = settings_from_mapping(toml_of(config)).kafka
    admin = KafkaAdminClient(bootstrap_servers=kafka.bootstrap_servers())
    admin.create_topics([NewTopic(kafka.topic, partitions, 1)])
    admin.close()
    home = partition_for(b"c1", partitions)
    produce_keyed(config, [(b"c1", line, home) for line in C1])
    worker = workers(config)
    objects = wait_for_objects(s3, bucket, C1_OBJECTS, worker)
    assert csvs_in(objects) == expected_csvs("exports/hourly", cohorts=("c1",))
    assert "PartitionsMismatch" not in worker.log()
    worker.stop_cleanly()


def test_the_tick_and_repartition_topics_are_created_with_the_input_partition_count(
    s3_config: Callable[..., Path],
) -> None:
    """Not left to the broker's auto-creation on the first send (Tansu's 4 partitions, Kafka's
    1), which Faust refuses as not co-partitioned with the table's changelog."""
    kafka = settings_from_mapping(toml_of(s3_config())).kafka
    admin = KafkaAdminClient(bootstrap_servers=kafka.bootstrap_servers())
    try:
        admin.create_topics([NewTopic(kafka.topic, 3, 1)])
        assert ensure_topics(kafka).partitions == 3
        own = [f"{kafka.app_id}-ticks", f"{kafka.app_id}-by-cohort"]
        described = admin.describe_topics(own)
    finally:
        admin.close()
    counts = {d.get("name") or d["topic"]: len(d["partitions"]) for d in described}
    assert counts == dict.fromkeys(own, 3)


def test_own_topics_left_with_another_partition_count_stop_the_start_with_one_line(
    workers: Any, s3_config: Callable[..., Path]
) -> None:
    config = s3_config()
    kafka = settings_from_mapping(toml_of(config)).kafka
    admin = KafkaAdminClient(bootstrap_servers=kafka.bootstrap_servers())
    admin.create_topics([NewTopic(kafka.topic, 3, 1), NewTopic(f"{kafka.app_id}-ticks", 2, 1)])
    admin.close()
    worker = workers(config)
    assert worker.wait_exit(WAIT) == 2
    last = worker.log().strip().splitlines()[-1]
    assert last == (
        f"cohort-sync: topic {kafka.app_id}-ticks has 2 partitions but the input topic "
        f"{kafka.topic} has 3: it is the state of another deployment; use another "
        "kafka.app_id, or delete the worker's topics of this one to start afresh"
    )


def test_a_table_recovery_that_stops_receiving_is_read_again(
    s3: Any, bucket: str, workers: Any, s3_config: Callable[..., Path]
) -> None:
    config = s3_config()
    home = c1_home(config)
    produce_keyed(config, [(b"c1", line, home) for line in C1[:5]])  # 01:00 due, 02:00 not
    first = workers(config)
    wait_for_objects(s3, bucket, 4, first)
    first.stop_cleanly()
    produce_keyed(config, [(b"c1", line, home) for line in C1[5:]])
    stalled = workers(config, FAULTY_WORKER + ["recovery", "-"])
    objects = wait_for_objects(s3, bucket, C1_OBJECTS, stalled)
    assert csvs_in(objects) == expected_csvs("exports/hourly", cohorts=("c1",))
    assert "table recovery received nothing for 10s" in stalled.log()
    stalled.stop_cleanly()


def test_a_stop_that_never_ends_is_ended_at_the_deadline(
    s3: Any, bucket: str, workers: Any, s3_config: Callable[..., Path]
) -> None:
    config = s3_config()
    home = c1_home(config)
    produce_keyed(config, [(b"c1", line, home) for line in C1])
    worker = workers(config, FAULTY_WORKER + ["stop", "-"])
    wait_for_objects(s3, bucket, C1_OBJECTS, worker)
    started = time.monotonic()
    assert worker.stop(timeout=STOP_DEADLINE_SECONDS + 30) == 1
    assert STOP_DEADLINE_SECONDS - 1 < time.monotonic() - started < STOP_DEADLINE_SECONDS + 30
    assert f"the stop did not end within {STOP_DEADLINE_SECONDS:.0f}s: exiting now" in worker.log()
