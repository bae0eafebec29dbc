"""Broker faults on a cluster of three KRaft Apache Kafka brokers (replication factor 3,
`min.insync.replicas = 2`): the leader killed, a rolling restart, a broker that stops
answering, a worker of three killed and replaced. Each ends with exactly the files of a run
without faults, no record dead-lettered, and the workers never restarted by hand; while the
worker cannot write, `/health` says so, and it recovers by itself.

The cluster is this module's own (the suite's broker has one node), started once.
"""

from __future__ import annotations

import signal
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

from stream.commands.demo import demo_events
from stream.config import settings_from_mapping
from stream.kafka.client import produce_lines
from stream.kafka.embedded import free_port
from tests.brokers import Broker, broker_kind, kafka_version
from tests.brokers.apache import ApacheKafka

from .conftest import WAIT, WorkerProcess, read_bucket, wait_until
from .support import (
    expected_files,
    produce,
    s3_destination,
    toml_of,
    wait_for_objects,
    write_config,
)

SYNCS = """
[[syncs]]
cohort = "*"
destination = "s3"
cadence = "hourly"
user_properties = ["country"]
"""
PRODUCTION_TOPICS = """
replication_factor = 3
topic_config = { "min.insync.replicas" = "2" }
"""


@pytest.fixture(scope="module")
def cluster() -> Iterator[ApacheKafka]:
    if broker_kind() == "tansu":
        pytest.skip("Tansu has no replication: these faults need a cluster of Apache Kafka")
    with ApacheKafka(version=kafka_version(), nodes=3) as kafka:
        yield kafka


@pytest.fixture
def run(
    tmp_path: Path,
    cluster: ApacheKafka,
    names: dict[str, str],
    bucket: str,
    s3_endpoint: str,
) -> Callable[[], Path]:
    """This test's config on the three-broker cluster, with a web port for `/health`."""

    def make() -> Path:
        for node in cluster.nodes:  # a test after a fault starts with every broker up
            cluster.start_node(node.id)
        broker = Broker(cluster.url, cluster.bootstrap, cluster.description, {}, cluster)
        config = write_config(
            tmp_path,
            broker,
            names,
            s3_destination("s3", bucket, s3_endpoint),
            SYNCS,
            kafka_extra=PRODUCTION_TOPICS,
        )
        port = free_port()
        config.write_text(config.read_text().replace("[faust]\n", f"[faust]\nweb_port = {port}\n"))
        return config

    return make


def web_port(config: Path) -> int:
    return int(toml_of(config)["faust"]["web_port"])


def health(config: Path) -> tuple[int, str]:
    url = f"http://127.0.0.1:{web_port(config)}/health"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except OSError as error:  # not serving yet
        return 0, str(error)


def dead_letters(config: Path) -> int:
    """How many records the dead-letter topic holds."""
    kafka = settings_from_mapping(toml_of(config)).kafka
    consumer = KafkaConsumer(bootstrap_servers=kafka.bootstrap_servers(), group_id=None)
    try:
        partitions = consumer.partitions_for_topic(kafka.dlq_topic) or set()
        tps = [TopicPartition(kafka.dlq_topic, p) for p in partitions]
        return sum(consumer.end_offsets(tps).values())
    finally:
        consumer.close()


def partition_leaders(cluster: ApacheKafka, config: Path) -> tuple[dict[int, int], dict[int, int]]:
    """Each partition's leader, by partition: of the input topic, and of the changelog."""
    kafka = settings_from_mapping(toml_of(config)).kafka
    admin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap)
    try:
        led = {
            topic["name"]: {p["partition_index"]: p["leader_id"] for p in topic["partitions"]}
            for topic in admin.describe_topics([kafka.topic, kafka.changelog_topic])
        }
    finally:
        admin.close()
    return led[kafka.topic], led[kafka.changelog_topic]


def leaders(cluster: ApacheKafka, config: Path) -> Counter[int]:
    """How many partitions of the input topic and the changelog each broker leads."""
    inputs, changelog = partition_leaders(cluster, config)
    return Counter([*inputs.values(), *changelog.values()])


def fully_replicated(cluster: ApacheKafka) -> bool:
    """Every partition of every topic has all three replicas in sync."""
    live = next(node for node in cluster.nodes if node.running())
    admin = KafkaAdminClient(bootstrap_servers=live.bootstrap)
    try:
        return all(
            len(partition["isr_nodes"]) == 3
            for topic in admin.describe_topics()
            for partition in topic["partitions"]
        )
    finally:
        admin.close()


class Run:
    """The demo's events in two halves around a fault, and the files a clean run writes."""

    def __init__(self, config: Path, s3: Any, bucket: str) -> None:
        self.config, self.s3, self.bucket = config, s3, bucket
        self.lines = demo_events()
        self.expected = expected_files(config, self.lines)
        self.half = len(self.lines) // 2

    def first_half(self) -> None:
        produce(self.config, self.lines[: self.half])

    def second_half(self, *, through: list[str] | None = None) -> None:
        """The rest, to the topics the first half set up (nothing asks the controller);
        `through`: the brokers (`host:port`) to bootstrap from, when one does not answer
        (the producer's bootstrap would spend its whole timeout on it)."""
        kafka = settings_from_mapping(toml_of(self.config)).kafka
        if through is not None:
            kafka = replace(kafka, broker=",".join(through))
        produce_lines(kafka, self.lines[self.half :])

    def some_files(self, worker: WorkerProcess) -> None:
        """Wait until the worker has written part of the run (the fault comes mid-run)."""
        wait_for_objects(self.s3, self.bucket, 8, worker)

    def finish(self, *workers: WorkerProcess) -> None:
        """Every file of a clean run and nothing else; nothing dead-lettered; every worker
        still the process the test started."""
        objects = wait_for_objects(self.s3, self.bucket, len(self.expected), workers[-1])
        assert objects.keys() == self.expected.keys()
        assert [key for key in self.expected if objects[key] != self.expected[key]] == []
        assert dead_letters(self.config) == 0
        for worker in workers:
            worker.assert_running()
        for worker in workers:
            worker.stop_cleanly()
        assert read_bucket(self.s3, self.bucket) == self.expected


def test_kill_9_of_the_broker_leading_the_input_and_the_changelog(
    cluster: ApacheKafka, run: Callable[[], Path], s3: Any, bucket: str, workers: Any
) -> None:
    config = run()
    scenario = Run(config, s3, bucket)
    scenario.first_half()
    worker = workers(config)
    scenario.some_files(worker)
    counts = leaders(cluster, config)
    busiest = max(counts, key=lambda node: counts[node])
    cluster.kill_node(busiest)
    scenario.second_half()
    scenario.finish(worker)


def test_a_rolling_restart_of_all_three_brokers(
    cluster: ApacheKafka, run: Callable[[], Path], s3: Any, bucket: str, workers: Any
) -> None:
    config = run()
    scenario = Run(config, s3, bucket)
    scenario.first_half()
    worker = workers(config)
    scenario.some_files(worker)
    for node in cluster.nodes:
        cluster.stop_node(node.id)  # a controlled shutdown, as an operator's restart
        cluster.start_node(node.id)
        wait_until(lambda: fully_replicated(cluster), WAIT, "every replica back in sync")
        if node.id == 1:
            scenario.second_half()  # the rest arrives while the restart goes on
    scenario.finish(worker)


def test_a_broker_that_stops_answering_for_longer_than_the_request_timeout(
    cluster: ApacheKafka, run: Callable[[], Path], s3: Any, bucket: str, workers: Any
) -> None:
    """SIGSTOP keeps the broker's connections open and unanswered: the worker's requests
    to it wait for their timeout (30 s), the controller moves its partitions' leadership,
    and writes waiting on it show on `/health` until the broker is back."""
    config = run()
    scenario = Run(config, s3, bucket)
    scenario.first_half()
    worker = workers(config)
    scenario.some_files(worker)
    wait_until(lambda: health(config)[0] == 200, WAIT, "/health 200 before the fault")
    # A broker leading changelog partitions whose input another broker leads: the worker
    # reads that input on, and its next changelog write waits on the paused broker at once.
    # Pausing one whose changelog partitions are fed only from its own input partitions may
    # see no write before the worker's producer learns their new leaders (a possible cause,
    # not a proven one, of the only failure seen: no 503 within 180 s).
    inputs, changelog = partition_leaders(cluster, config)
    apart = Counter(node for p, node in changelog.items() if inputs.get(p) != node)
    counts = apart or leaders(cluster, config)
    paused = max(counts, key=lambda node: counts[node])
    cluster.pause_node(paused)
    started = time.monotonic()
    try:
        answering = [node.bootstrap for node in cluster.nodes if node.id != paused]
        scenario.second_half(through=answering)  # acks=all: two of three replicas take it
        unhealthy = wait_until(
            lambda: (lambda found: found if found[0] == 503 else None)(health(config)),
            WAIT,
            "/health to say the worker cannot write",
        )
        assert "cannot write to Kafka" in unhealthy[1], unhealthy
        while time.monotonic() - started < 35:  # past the worker's 30 s request timeout
            worker.assert_running()
            time.sleep(0.5)
    finally:
        cluster.resume_node(paused)
    wait_until(lambda: health(config)[0] == 200, WAIT, "/health 200 again, by itself")
    scenario.finish(worker)


def test_three_workers_one_killed_and_a_new_one_started_mid_run(
    cluster: ApacheKafka, run: Callable[[], Path], s3: Any, bucket: str, workers: Any
) -> None:
    config = run()
    scenario = Run(config, s3, bucket)
    scenario.first_half()
    started = [workers(_own_port(config, n)) for n in range(3)]
    scenario.some_files(started[0])
    started[1].stop(signal.SIGKILL)
    scenario.second_half()
    replacement = workers(_own_port(config, 3))
    # Serving before the stops: a SIGTERM while a worker starts stops it there, before it
    # consumes anything (`stopped (SIGTERM) while starting`); its web server serves once
    # Faust's loop runs and handles the signal.
    wait_until(lambda: health(replacement.config)[0] != 0, WAIT, "the new worker to serve")
    scenario.finish(started[0], started[2], replacement)


def _own_port(config: Path, n: int) -> Path:
    """A copy of `config` with a web port of its own (workers on one machine)."""
    copy = config.with_name(f"worker-{n}.toml")
    text = config.read_text()
    copy.write_text(text.replace(f"web_port = {web_port(config)}", f"web_port = {free_port()}"))
    return copy
