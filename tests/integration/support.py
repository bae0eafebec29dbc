"""Helpers of the integration tests: configs, producing, waiting for objects."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

from stream.config import settings_from_mapping
from stream.engine.offline import expected_outputs
from stream.kafka.client import produce_lines
from stream.kafka.topics import ensure_topics
from tests.brokers import Broker

from .conftest import WAIT, WorkerProcess, read_bucket, wait_until


def write_config(
    tmp_path: Path,
    broker: Broker,
    names: dict[str, str],
    destinations: str,
    syncs: str,
    kafka_extra: str = "",
    name: str = "config.toml",
) -> Path:
    path = tmp_path / name
    path.write_text(f"""
project_id = 7

[kafka]
broker = "{broker.url}"
topic = "{names["topic"]}"
app_id = "{names["app_id"]}"
partitions = 4
idle_timeout = "off"
{kafka_extra}
{broker.faust_toml()}
{destinations}
{syncs}
""")
    return path


def s3_destination(
    name: str, bucket: str, endpoint: str, path: str = "exports/hourly", naming: str = "amplitude"
) -> str:
    return f"""
[[destinations]]
name = "{name}"
url = "s3://{bucket}/{path}"
region = "us-east-1"
endpoint_url = "{endpoint}"
naming = "{naming}"
user_property = "plan"
"""


HOURLY_ALL = """
[[syncs]]
cohort = "*"
destination = "s3"
cadence = "hourly"
"""


def produce(config: Path, records: list[bytes]) -> None:
    settings = settings_from_mapping(toml_of(config), os.environ)
    ensure_topics(settings.kafka)
    produce_lines(settings.kafka, records)


def csvs_in(objects: dict[str, bytes]) -> dict[str, str]:
    return {key: data.decode() for key, data in objects.items() if key.endswith(".csv")}


def wait_for_objects(
    s3: Any, bucket: str, count: int, worker: WorkerProcess, prefix: str = ""
) -> dict[str, bytes]:
    def ready() -> dict[str, bytes] | None:
        worker.assert_running()
        objects = read_bucket(s3, bucket, prefix)
        return objects if len(objects) >= count else None

    try:
        return wait_until(ready, WAIT, f"{count} objects in s3://{bucket}/{prefix}")
    except AssertionError as exc:
        found = sorted(read_bucket(s3, bucket, prefix))
        raise AssertionError(
            f"{exc}; found {len(found)}: {found}\n--- worker log (end) ---\n{worker.log()[-3000:]}"
        ) from None


def toml_of(path: Path) -> dict[str, Any]:
    return tomllib.loads(path.read_text())


def expected_files(config: Path, lines: list[bytes]) -> dict[str, bytes]:
    """What a clean run of `config` over `lines` writes, from the offline reference run."""
    settings = settings_from_mapping(toml_of(config), os.environ)
    return {
        file.key: file.data
        for output in expected_outputs(settings, lines)
        for file in (*output.csv_files, output.manifest)
    }


def cli(command: str, config: Path, *options: str) -> subprocess.CompletedProcess[str]:
    """`cohort-sync <command> --config <config> <options>`, its output captured."""
    return subprocess.run(
        [sys.executable, "-m", "stream.commands.cli", command, "--config", str(config), *options],
        capture_output=True,
        text=True,
        timeout=WAIT,
    )


def replay(config: Path, *options: str) -> subprocess.CompletedProcess[str]:
    return cli("replay", config, *options)
