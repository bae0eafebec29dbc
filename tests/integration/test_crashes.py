"""What happens to the worker, its broker connection or S3 loses nothing and duplicates
nothing: kill -9 at random moments and at chosen ones (a manifest's PUT held, a CSV upload in
flight), a second worker taking over, S3 going away while a stop comes. Afterwards S3 holds
exactly the files of a clean run (every sync, its manifest, nothing else)."""

from __future__ import annotations

import difflib
import random
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest

from stream.commands.demo import demo_events
from tests.brokers import Broker
from tests.scenario import C1, C2, expected_csvs

from .conftest import AWS_ENV, WAIT, read_bucket, wait_until
from .faults import INTERNAL_ERROR, Fault, FaultyS3Proxy
from .support import (
    HOURLY_ALL,
    csvs_in,
    expected_files,
    produce,
    s3_destination,
    wait_for_objects,
    write_config,
)

SYNCS = """
[[syncs]]
cohort = "*"
destination = "s3"
cadence = "hourly"
user_properties = ["country"]

[[syncs]]
cohort = "trial"
destination = "s3"
cadence = "30m"
routing_key = "crm"
"""


def test_kill_9_at_random_moments_loses_and_duplicates_nothing(
    s3: Any,
    bucket: str,
    workers: Any,
    s3_config: Callable[..., Path],
) -> None:
    config = s3_config(SYNCS)
    lines = demo_events()
    expected = expected_files(config, lines)
    half = len(lines) // 2
    produce(config, lines[:half])
    rng = random.Random(20261129)
    for round_ in range(4):
        worker = workers(config)
        if round_ == 2:
            produce(config, lines[half:])  # the rest arrives while workers come and go
        time.sleep(rng.uniform(1.0, 4.0))  # a random moment to kill at, not a synchronisation
        worker.assert_running()
        worker.stop(signal.SIGKILL)
    final = workers(config)
    objects = wait_for_objects(s3, bucket, len(expected), final)
    assert objects.keys() == expected.keys()
    mismatched = [key for key in expected if objects[key] != expected[key]]
    assert mismatched == [], _differences(objects, expected, mismatched)
    final.stop()
    assert read_bucket(s3, bucket) == expected


class _Gate:
    """Holds the first PUT whose path contains `target` until `open`, then fails it (its
    worker was killed meanwhile: the write must not land late)."""

    def __init__(self) -> None:
        self.target: str | None = None
        self.caught = threading.Event()
        self._open = threading.Event()
        self._dropped: set[str] = set()

    def arm(self, target: str | None) -> None:
        self.target = target
        self.caught.clear()
        self._open.clear()

    def open(self) -> None:
        self._open.set()

    def hold(self, method: str, path: str) -> None:
        target = self.target
        if method == "PUT" and target and target in path and not self.caught.is_set():
            self.caught.set()
            self._open.wait(60)
            self._dropped.add(path)

    def fail(self, method: str, path: str) -> Fault | None:
        if path in self._dropped:
            self._dropped.discard(path)
            return INTERNAL_ERROR
        return None


def test_kill_9_between_the_csvs_and_the_manifest_and_during_an_upload(
    tmp_path: Path,
    broker: Broker,
    names: dict[str, str],
    s3: Any,
    bucket: str,
    s3_endpoint: str,
    workers: Any,
) -> None:
    gate = _Gate()
    with FaultyS3Proxy(s3_endpoint, fail=gate.fail, hold=gate.hold) as proxy:
        destination = s3_destination("s3", bucket, proxy.url)
        config = write_config(tmp_path, broker, names, destination, SYNCS)
        lines = demo_events()
        expected = expected_files(config, lines)
        produce(config, lines)
        for target in ("_manifest", "_exiting"):  # the CSVs are written; a CSV is in flight
            gate.arm(target)
            worker = workers(config)
            wait_until(gate.caught.is_set, WAIT, f"a PUT of a {target} file held")
            worker.stop(signal.SIGKILL)
            gate.open()
        gate.arm(None)
        final = workers(config)
        objects = wait_for_objects(s3, bucket, len(expected), final)
        final.stop()
    mismatched = [key for key in expected if objects.get(key) != expected[key]]
    assert objects.keys() == expected.keys()
    assert mismatched == [], _differences(objects, expected, mismatched)


def test_a_second_worker_takes_over_from_a_killed_one_and_writes_a_clean_runs_files(
    s3: Any,
    bucket: str,
    workers: Any,
    s3_config: Callable[..., Path],
) -> None:
    config = s3_config(SYNCS)
    lines = demo_events()
    expected = expected_files(config, lines)
    half = len(lines) // 2
    produce(config, lines[:half])
    first, second = workers(config), workers(config)
    wait_until(lambda: len(read_bucket(s3, bucket)) >= 8, WAIT, "both workers syncing")
    # Apache Kafka gives the first worker to join all partitions at once, and a rebalance
    # shares them when the second joins: wait for each worker's last assignment to be half.
    wait_until(
        lambda: _sharing(first.log(), second.log()), WAIT, "partitions shared by the two workers"
    )
    produce(config, lines[half:])
    first.stop(signal.SIGKILL)  # the second worker takes over its partitions
    objects = wait_for_objects(s3, bucket, len(expected), second)
    assert objects.keys() == expected.keys()
    mismatched = [key for key in expected if objects[key] != expected[key]]
    assert mismatched == [], _differences(objects, expected, mismatched)
    second.stop()


def test_s3_going_away_a_stop_meanwhile_and_its_return_lose_no_sync(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    broker: Broker,
    names: dict[str, str],
    workers: Any,
) -> None:
    from moto.server import ThreadedMotoServer

    from stream.kafka.embedded import free_port

    for name, value in AWS_ENV.items():
        monkeypatch.setenv(name, value)
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    bucket = f"outage-{names['app_id'][-8:]}"
    client.create_bucket(Bucket=bucket)
    config = write_config(
        tmp_path, broker, names, s3_destination("s3", bucket, endpoint), HOURLY_ALL
    )
    produce(config, C1 + C2)
    server.stop()  # connection refused from the first upload on
    worker = workers(config)
    wait_until(lambda: "not written, retrying" in worker.log(), WAIT, "uploads failing")
    worker.assert_running()
    assert worker.stop(signal.SIGTERM, timeout=20) == 0  # a bounded, clean stop mid-outage
    restarted = workers(config)  # writes what the stopped worker could not
    wait_until(lambda: "not written, retrying" in restarted.log(), WAIT, "uploads failing again")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()  # moto keeps its buckets in this process: the same S3 comes back
    try:
        objects = wait_for_objects(client, bucket, 32, restarted)
        assert csvs_in(objects) == expected_csvs("exports/hourly")
        restarted.stop()
    finally:
        server.stop()


def _sharing(*logs: str) -> bool:
    """Whether each worker's last "ready: consuming <topic> partitions 0-1, 3" line names
    partitions, and no partition is named twice."""
    owned: list[set[int]] = []
    for log in logs:
        lines = [line for line in log.splitlines() if "ready: consuming" in line]
        if not lines:
            return False
        ranges = lines[-1].split(" partitions ", 1)[1].strip()
        mine: set[int] = set()
        for part in ranges.split(", "):
            low, _, high = part.partition("-")
            mine.update(range(int(low), int(high or low) + 1))
        owned.append(mine)
    return all(owned) and sum(map(len, owned)) == len(set().union(*owned))


def _differences(objects: dict[str, bytes], expected: dict[str, bytes], keys: list[str]) -> str:
    """The first few differences, as unified diffs, for a readable failure."""
    parts = [f"{len(keys)} objects differ from a clean run's"]
    for key in sorted(keys)[:4]:
        parts.extend(
            difflib.unified_diff(
                expected[key].decode().splitlines(),
                objects[key].decode().splitlines(),
                f"expected {key}",
                f"written {key}",
                lineterm="",
                n=1,
            )
        )
    return "\n".join(parts)
