"""`cohort-sync worker` with no broker configured: it starts Tansu itself and stops it."""

from __future__ import annotations

import re
import shlex
import signal
import socket
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from stream.config import load_settings
from stream.kafka.client import produce_lines
from stream.kafka.topics import ensure_topics
from tests.scenario import C1, expected_csvs

from .conftest import WAIT, wait_until


def test_worker_without_a_broker_runs_on_an_embedded_one(tmp_path: Path, workers: Any) -> None:
    out = tmp_path / "out"
    config = _embedded_config(tmp_path, out)
    worker = workers(config)
    port = _embedded_port(worker)
    settings = load_settings(config)
    kafka = replace(settings.kafka, broker=f"127.0.0.1:{port}")
    ensure_topics(kafka)
    produce_lines(kafka, C1)
    expected = expected_csvs(cohorts=("c1",))
    wait_until(lambda: all((out / key).exists() for key in expected), WAIT, "the c1 files")
    assert {key: (out / key).read_text() for key in expected} == expected
    worker.stop_cleanly(signal.SIGTERM)
    with socket.socket() as probe:  # the broker went away with the worker
        assert probe.connect_ex(("127.0.0.1", port)) != 0


def test_a_sigterm_while_the_worker_starts_stops_its_embedded_broker_too(
    tmp_path: Path, workers: Any
) -> None:
    """SIGTERM as soon as the embedded broker listens: before Faust's worker takes the
    signal over (a second or so later). The worker stops cleanly, and the broker, in a
    session of its own, stops with it instead of running on."""
    worker = workers(_embedded_config(tmp_path, tmp_path / "out"))
    port = _embedded_port(worker)
    assert worker.stop(signal.SIGTERM) == 0, worker.log()
    assert "Traceback" not in worker.log()
    with socket.socket() as probe:  # the broker went away with the worker
        assert probe.connect_ex(("127.0.0.1", port)) != 0


def _embedded_config(tmp_path: Path, out: Path) -> Path:
    """A config with no broker (so the worker starts Tansu), hourly syncs into `out`."""
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
    return config


def _embedded_port(worker: Any) -> int:
    """The embedded broker's port, from the worker's first lines."""
    found = wait_until(
        lambda: re.search(r"embedded broker listening on 127\.0\.0\.1:(\d+)", worker.log()),
        60,
        "the embedded broker's address",
    )
    return int(found.group(1))


def test_the_quickstart_works_when_followed_literally_and_again(
    tmp_path: Path, workers: Any
) -> None:
    """examples/local.toml as it is (but for its folder), the line the worker prints run as
    it is: files within a minute, and a quiet log. Run again (with other events, as an hour
    later would give), the files of the first run are replaced without a warning."""
    out = tmp_path / "out"
    example = (Path(__file__).parents[2] / "examples" / "local.toml").read_text()
    assert 'url = "file:///tmp/cohort-sync-out"' in example
    config = tmp_path / "local.toml"
    config.write_text(example.replace("file:///tmp/cohort-sync-out", out.as_uri()))
    _quickstart(config, workers, "sample-events")
    first = {path: path.read_bytes() for path in out.glob("*_manifest*.json")}
    _quickstart(config, workers, "sample-events --seed 8")
    again = {path: path.read_bytes() for path in out.glob("*_manifest*.json")}
    assert any(again[path] != data for path, data in first.items() if path in again)


def _quickstart(config: Path, workers: Any, feed: str) -> None:
    """Start the worker, run the line it prints (with `feed` for `sample-events`), wait for
    the syncs, stop it; its log quiet throughout."""
    worker = workers(config)
    printed = wait_until(
        lambda: re.search(r"^  (cohort-sync sample-events \| .*)$", worker.log(), re.MULTILINE),
        60,
        "the line that feeds the embedded broker",
    ).group(1)
    assert f"--config {config} -" in printed
    cli = f"{shlex.quote(sys.executable)} -m stream.commands.cli"
    line = printed.replace("cohort-sync", cli).replace("sample-events", feed)
    fed = subprocess.run(line, shell=True, capture_output=True, text=True, timeout=60)
    assert fed.returncode == 0 and "sent 124 records" in fed.stdout, fed.stderr
    wait_until(lambda: worker.log().count("wrote file://") >= 20, 60, "the sample's syncs")
    before_first_sync = worker.log().split("wrote file://")[0].splitlines()
    assert len(before_first_sync) <= 10, before_first_sync  # broker, topics, folders
    assert not [line for line in before_first_sync if "[^" in line or "] kafka." in line]
    worker.stop_cleanly(signal.SIGTERM)
    assert "[WARNING]" not in worker.log(), worker.log()
    logged = [line for line in worker.log().splitlines() if line.startswith("[")]
    one_format = re.compile(r"\[[\d-]+ [\d:,]+\] \[(INFO|WARNING|ERROR)\] [\w.]+: \S")
    assert [line for line in logged if not one_format.match(line)] == []  # not Faust's own
