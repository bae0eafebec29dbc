"""The worker end to end: Kafka in, S3 (moto server) and local files out."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic

from stream.config import settings_from_mapping
from stream.domain.partitioner import partition_for
from stream.kafka.topics import ensure_topics
from tests.brokers import Broker
from tests.scenario import C1, C2, MIN, H, event, expected_csvs

from .conftest import wait_until
from .support import (
    HOURLY_ALL,
    WAIT,
    csvs_in,
    produce,
    s3_destination,
    toml_of,
    wait_for_objects,
    write_config,
)


def test_multi_cohort_scenario_writes_exactly_the_expected_files(
    tmp_path: Path,
    names: dict[str, str],
    s3: Any,
    bucket: str,
    workers: Any,
    s3_config: Callable[..., Path],
) -> None:
    config = s3_config()
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n".join(C1 + C2) + b"\n")
    produced = subprocess.run(
        [
            sys.executable,
            "-m",
            "stream.commands.cli",
            "produce",
            "--config",
            str(config),
            str(events),
        ],
        capture_output=True,
        text=True,
        timeout=WAIT,
    )
    assert produced.returncode == 0, produced.stderr
    assert produced.stdout.strip() == f"cohort-sync: sent 14 records to {names['topic']}"
    worker = workers(config)
    objects = wait_for_objects(s3, bucket, 32, worker)
    assert csvs_in(objects) == expected_csvs("exports/hourly")
    manifests = {k for k in objects if k.endswith(".json")}
    assert manifests == {
        f"exports/hourly/7_{c}_2026-01-05T0{h}:00_manifest.json"
        for c in ("c1", "c2")
        for h in range(1, 5)
    }
    manifest = json.loads(objects["exports/hourly/7_c2_2026-01-05T02:00_manifest.json"])
    assert manifest["files"]["exiting"]["rows"] == 1
    worker.stop_cleanly()


def test_two_rules_with_different_cadences_and_destinations(
    tmp_path: Path,
    broker: Broker,
    names: dict[str, str],
    s3: Any,
    bucket: str,
    s3_endpoint: str,
    workers: Any,
) -> None:
    local = tmp_path / "files"
    destinations = (
        s3_destination("s3", bucket, s3_endpoint)
        + f"""
[[destinations]]
name = "disk"
url = "{local.as_uri()}"
naming = "no-colon"
require_suffix = true
"""
    )
    syncs = (
        HOURLY_ALL
        + """
[[syncs]]
cohort = "c1"
destination = "disk"
cadence = "30m"
routing_key = "crm"
user_properties = ["plan"]
"""
    )
    config = write_config(tmp_path, broker, names, destinations, syncs)
    produce(config, C1 + C2)
    worker = workers(config)
    objects = wait_for_objects(s3, bucket, 32, worker)
    assert csvs_in(objects) == expected_csvs("exports/hourly")
    half_hours = [f"0{h}-{m}" for h in range(0, 5) for m in ("00", "30")][1:-1]  # 00:30..04:00
    wanted = {
        f"7_c1_2026-01-05T{t}_{kind}_crm.{ext}"
        for t in half_hours
        for kind, ext in [
            ("entering", "csv"),
            ("exiting", "csv"),
            ("existing", "csv"),
            ("manifest", "json"),
        ]
    }
    wait_until(
        lambda: wanted <= {p.name for p in local.iterdir()} if local.exists() else False,
        WAIT,
        "the 30-minute files on disk",
    )
    assert {p.name for p in local.iterdir()} == wanted  # no temporary files left behind
    assert (local / "7_c1_2026-01-05T01-30_existing_crm.csv").read_text() == (
        "amplitudeID,userID,plan\n1001,u1001,pro\n"
    )
    assert (local / "7_c1_2026-01-05T01-30_exiting_crm.csv").read_text() == (
        "amplitudeID,userID,plan\n1002,u1002,gone\n"
    )
    worker.stop()


def test_replay_with_a_fresh_app_id_rewrites_byte_identical_files(
    tmp_path: Path,
    broker: Broker,
    names: dict[str, str],
    s3: Any,
    bucket: str,
    s3_endpoint: str,
    workers: Any,
    s3_config: Callable[..., Path],
) -> None:
    first = s3_config()
    produce(first, C1 + C2)
    worker = workers(first)
    original = wait_for_objects(s3, bucket, 32, worker)
    worker.stop()
    for key in original:
        s3.delete_object(Bucket=bucket, Key=key)
    replay_names = {**names, "app_id": names["app_id"] + "-replay"}
    second = write_config(
        tmp_path,
        broker,
        replay_names,
        s3_destination("s3", bucket, s3_endpoint),
        HOURLY_ALL,
        name="replay.toml",
    )
    replayed = wait_for_objects(s3, bucket, 32, workers(second))
    assert replayed == original


def test_bad_messages_reach_the_dead_letter_topic_while_good_ones_sync(
    broker: Broker,
    names: dict[str, str],
    s3: Any,
    bucket: str,
    workers: Any,
    s3_config: Callable[..., Path],
) -> None:
    config = s3_config()
    bad = [
        b"not json",
        b'{"cohort_id": "c1", "amplitude_id": "x", "action": "enter", "time": 1767571200000}',
        event("c1", 5, "leave", 20 * MIN),
        b"\xff\xfe",
    ]
    produce(config, [C1[0], *bad[:2], *C1[1:4], *bad[2:], *C1[4:]])
    worker = workers(config)
    objects = wait_for_objects(s3, bucket, 16, worker)
    assert csvs_in(objects) == expected_csvs("exports/hourly", cohorts=("c1",))
    dead = _consume_all(broker, f"{names['topic']}-dlq", len(bad))
    assert sorted(value for value, _ in dead) == sorted(bad)
    reasons = {value: headers["cohort-sync-reason"].decode() for value, headers in dead}
    assert "not valid JSON" in reasons[b"not json"]
    assert "amplitude_id" in reasons[bad[1]]
    assert "action" in reasons[bad[2]]
    assert "UTF-8" in reasons[b"\xff\xfe"]
    worker.stop()


def test_a_restarted_worker_loses_no_membership(
    s3: Any,
    bucket: str,
    workers: Any,
    s3_config: Callable[..., Path],
    names: dict[str, str],
) -> None:
    config = s3_config()
    produce(config, C1[:5])  # up to 01:05: the 01:00 sync is due
    worker = workers(config)
    wait_for_objects(s3, bucket, 4, worker)
    worker.stop_cleanly(signal.SIGTERM)
    last = worker.log().rstrip().splitlines()[-1]  # the stop says why, and what it committed
    assert re.search(
        rf"stopped \(SIGTERM\): committed {names['topic']} partition@offset (\d+@\d+, )*\d+@5\b",
        last,
    ), last
    restarted = workers(config)
    produce(config, C1[5:])
    objects = wait_for_objects(s3, bucket, 16, restarted)
    assert csvs_in(objects) == expected_csvs("exports/hourly", cohorts=("c1",))
    restarted.stop()


def test_records_keyed_otherwise_are_repartitioned_by_cohort(
    broker: Broker,
    names: dict[str, str],
    s3: Any,
    bucket: str,
    workers: Any,
    s3_config: Callable[..., Path],
) -> None:
    config = s3_config()
    ensure_topics(settings_from_mapping(toml_of(config)).kafka)
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap)
    for index, record in enumerate(C1 + C2):  # keyed by user, on a partition not the cohort's
        cohort = json.loads(record)["cohort_id"].encode()
        wrong = (partition_for(cohort, 4) + 1) % 4
        producer.send(names["topic"], key=f"user-{index}".encode(), value=record, partition=wrong)
    producer.flush()
    producer.close()
    objects = wait_for_objects(s3, bucket, 32, workers(config))
    assert csvs_in(objects) == expected_csvs("exports/hourly")


def test_an_idle_partition_follows_the_wall_clock(
    tmp_path: Path,
    broker: Broker,
    names: dict[str, str],
    s3: Any,
    bucket: str,
    s3_endpoint: str,
    workers: Any,
) -> None:
    config = write_config(
        tmp_path,
        broker,
        names,
        s3_destination("s3", bucket, s3_endpoint),
        HOURLY_ALL,
        kafka_extra='idle_timeout = "1s"',
    )
    config.write_text(config.read_text().replace('idle_timeout = "off"\n', "", 1))
    now = int(time.time() * 1000)
    hour_ago = (now // H - 1) * H  # the previous full hour: its end has passed
    record = json.dumps(
        {"cohort_id": "c1", "amplitude_id": 1, "action": "enter", "time": hour_ago + MIN}
    ).encode()
    produce(config, [record])
    worker = workers(config)
    objects = wait_for_objects(s3, bucket, 4, worker)  # no later event: only the clock
    assert csvs_in(objects)[next(k for k in objects if k.endswith("_existing.csv"))] == (
        "amplitudeID,userID,plan\n1,,\n"
    )
    worker.stop()


def test_the_demo_runs_and_exits_zero(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "stream.commands.cli", "demo", "--dir", str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        timeout=WAIT,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "96/96" in result.stdout and "24 syncs" in result.stdout
    assert len(list((tmp_path / "demo" / "files").glob("*_manifest*.json"))) == 24


def _consume_all(broker: Broker, topic: str, count: int) -> list[tuple[bytes, dict]]:
    consumer = KafkaConsumer(
        bootstrap_servers=broker.bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=500,
    )
    partitions = wait_until(lambda: consumer.partitions_for_topic(topic), WAIT, topic)
    consumer.assign([TopicPartition(topic, p) for p in partitions])
    consumer.seek_to_beginning()
    records: list[tuple[bytes, dict]] = []
    deadline = time.monotonic() + WAIT
    while len(records) < count and time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=500).values():
            records.extend((r.value, dict(r.headers)) for r in batch)
    consumer.close()
    return records


def test_an_existing_topic_with_another_partition_count_is_followed(
    broker: Broker,
    names: dict[str, str],
    s3: Any,
    bucket: str,
    workers: Any,
    s3_config: Callable[..., Path],
) -> None:
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    admin.create_topics([NewTopic(names["topic"], 3, 1)])  # the config says 4
    admin.close()
    config = s3_config()
    produce(config, C1 + C2)
    worker = workers(config)
    objects = wait_for_objects(s3, bucket, 32, worker)
    assert csvs_in(objects) == expected_csvs("exports/hourly")
    assert "has 3 partitions, not kafka.partitions = 4" in worker.log()


def test_syncs_wait_for_a_missing_bucket_and_land_once_it_exists(
    tmp_path: Path,
    broker: Broker,
    names: dict[str, str],
    s3: Any,
    s3_endpoint: str,
    workers: Any,
) -> None:
    bucket = f"late-{names['app_id'][-8:]}"  # not created yet
    destination = s3_destination("s3", bucket, s3_endpoint)
    config = write_config(tmp_path, broker, names, destination, HOURLY_ALL)
    produce(config, C1)
    worker = workers(config)
    wait_until(lambda: "NoSuchBucket" in worker.log(), WAIT, "a logged NoSuchBucket error")
    s3.create_bucket(Bucket=bucket)
    objects = wait_for_objects(s3, bucket, 16, worker)
    assert csvs_in(objects) == expected_csvs("exports/hourly", cohorts=("c1",))
