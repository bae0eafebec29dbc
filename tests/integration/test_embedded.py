"""`cohort-sync worker` with no broker configured: it starts Tansu itself and stops it."""

from __future__ import annotations

import re
import signal
import socket
from dataclasses import replace
from pathlib import Path
from typing import Any

from stream.config import load_settings
from stream.kafka.client import ensure_topics, produce_lines
from tests.scenario import C1, expected_csvs

from .conftest import WAIT, wait_until


def test_worker_without_a_broker_runs_on_an_embedded_one(tmp_path: Path, workers: Any) -> None:
    out = tmp_path / "out"
    config = tmp_path / "embedded.toml"
    config.write_text(f"""
project_id = 7
[kafka]
partitions = 2
idle_timeout = "off"
[[destinations]]
name = "disk"
url = "{out.as_uri()}"
user_property = "plan"
[[syncs]]
cohort = "*"
destination = "disk"
cadence = "hourly"
""")
    worker = workers(config)
    found = wait_until(
        lambda: re.search(r"embedded broker listening on 127\.0\.0\.1:(\d+)", worker.log()),
        60,
        "the embedded broker's address",
    )
    port = int(found.group(1))
    settings = load_settings(config)
    kafka = replace(settings.kafka, broker=f"127.0.0.1:{port}")
    ensure_topics(kafka)
    produce_lines(kafka, C1)
    expected = expected_csvs(cohorts=("c1",))
    wait_until(lambda: all((out / key).exists() for key in expected), WAIT, "the c1 files")
    assert {key: (out / key).read_text() for key in expected} == expected
    assert worker.stop(signal.SIGTERM) == 0
    with socket.socket() as probe:  # the broker went away with the worker
        assert probe.connect_ex(("127.0.0.1", port)) != 0
