"""Real services for integration tests: the broker (Apache Kafka by default, see
`tests/brokers`) and moto's S3 server, each on free loopback ports for the session, plus
helpers to run worker processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from stream.kafka.embedded import free_port
from tests.brokers import Broker, running_broker
from tests.brokers.apache import die_with_parent

AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
#: How long an integration test waits for something before it fails: a deadline, never a
#: pace (every wait polls). Generous, so that a machine several times slower, or one core
#: shared by the broker, the worker and the test, still passes.
WAIT = 180.0


def pytest_configure(config: pytest.Config) -> None:
    import logging

    logging.getLogger("werkzeug").setLevel(logging.WARNING)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def broker() -> Iterator[Broker]:
    """One broker for the whole run; each test has topics and groups of its own."""
    with running_broker() as running:
        yield running


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    os.environ.update(AWS_ENV)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3(s3_endpoint: str) -> Any:
    return boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")


@pytest.fixture
def bucket(s3: Any) -> str:
    name = f"bucket-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture
def names() -> dict[str, str]:
    """A topic and an app id of this test's own, so tests on one broker never meet."""
    tag = uuid.uuid4().hex[:8]
    return {"topic": f"membership-{tag}", "app_id": f"cohort-sync-{tag}"}


def read_bucket(s3: Any, bucket: str, prefix: str = "") -> dict[str, bytes]:
    objects: dict[str, bytes] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            objects[item["Key"]] = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
    return objects


def wait_until(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll `condition` until it returns something truthy, or fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.1)


class WorkerProcess:
    """`cohort-sync worker` in a subprocess, its output kept in a log file."""

    def __init__(self, config: Path, cwd: Path, program: list[str] | None = None) -> None:
        self.config = config
        self.cwd = cwd
        self.program = program or ["-m", "stream.commands.cli"]
        """What runs the command line, after the interpreter (tests/integration/faulty_worker.py
        for a worker with a fault injected)."""
        self.log_path = cwd / f"worker-{uuid.uuid4().hex[:6]}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        env = {**os.environ, **AWS_ENV}
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    *self.program,
                    "worker",
                    "--config",
                    str(self.config),
                    "--log-level",
                    os.environ.get("TEST_WORKER_LOG_LEVEL", "info"),
                ],
                cwd=self.cwd,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=die_with_parent,  # a test run that dies takes its workers along
            )
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def assert_running(self) -> None:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"worker exited with {self.process.returncode}:\n{self.log()}")

    def wait_exit(self, timeout: float) -> int:
        """The exit code of a worker that stops by itself within `timeout` seconds."""
        assert self.process is not None
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"worker still running after {timeout}s:\n{self.log()}") from None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"worker did not stop within {timeout}s:\n{self.log()}") from None

    def stop_cleanly(self, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
        """Stop the worker and fail, with its log, unless it exits with 0."""
        code = self.stop(sig, timeout)
        if code != 0:
            raise AssertionError(
                f"worker exited with {code} on {signal.Signals(sig).name}:\n{self.log()}"
            )


@pytest.fixture
def s3_config(
    tmp_path: Path, broker: Broker, names: dict[str, str], bucket: str, s3_endpoint: str
) -> Callable[..., Path]:
    """`s3_config(syncs=HOURLY_ALL)`: this test's config, on its topic, into its bucket."""
    from .support import HOURLY_ALL, s3_destination, write_config

    def make(syncs: str = HOURLY_ALL) -> Path:
        destination = s3_destination("s3", bucket, s3_endpoint)
        return write_config(tmp_path, broker, names, destination, syncs)

    return make


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Callable[[Path], WorkerProcess]]:
    started: list[WorkerProcess] = []

    def start(config: Path, program: list[str] | None = None) -> WorkerProcess:
        worker = WorkerProcess(config, tmp_path, program).start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        if worker.process is not None and worker.process.poll() is None:
            worker.process.send_signal(signal.SIGKILL)
            worker.process.wait()
