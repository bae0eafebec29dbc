"""`cohort-sync replay`: the same bytes as the live worker, windows of sync times, progress."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from stream.config import settings_from_mapping
from stream.domain.partitioner import partition_for
from stream.kafka.scan import send_records
from tests.brokers import Broker
from tests.scenario import C1, C2, MIN, H, event, expected_csvs

from .conftest import AWS_ENV, WAIT, read_bucket, wait_until
from .support import (
    HOURLY_ALL,
    csvs_in,
    produce,
    replay,
    s3_destination,
    toml_of,
    wait_for_objects,
    write_config,
)


def test_replay_writes_the_live_workers_bytes_and_shows_progress(
    tmp_path: Path,
    broker: Broker,
    names: dict[str, str],
    s3: Any,
    bucket: str,
    s3_endpoint: str,
    workers: Any,
    s3_config: Callable[..., Path],
) -> None:
    config = s3_config()
    produce(config, C1 + C2)
    worker = workers(config)
    live = wait_for_objects(s3, bucket, 32, worker)
    worker.stop()
    other = f"{bucket}-replay"
    s3.create_bucket(Bucket=other)
    replay_config = write_config(
        tmp_path,
        broker,
        names,
        s3_destination("s3", other, s3_endpoint),
        HOURLY_ALL,
        name="replay.toml",
    )
    result = replay(replay_config)
    assert result.returncode == 0, result.stderr
    assert read_bucket(s3, other) == live  # key by key, byte for byte
    lines = result.stdout.splitlines()
    assert lines[-2].startswith("records 14/14 (100%)  event time 2026-01-05T04:02Z  files 32")
    assert lines[-1].startswith(
        "replay done: 14 records, 8 syncs, 32 files (32 new, 0 identical already, 0 kept), "
    )
    again = replay(replay_config)
    assert again.returncode == 0, again.stderr
    assert "32 files (0 new, 32 identical already, 0 kept)" in again.stdout.splitlines()[-1]


def test_replay_writes_only_the_syncs_between_since_and_until(
    s3: Any,
    bucket: str,
    s3_config: Callable[..., Path],
) -> None:
    config = s3_config()
    produce(config, C1 + C2)
    result = replay(config, "--since", "2026-01-05T02:00:00Z", "--until", "2026-01-05T03:00Z")
    assert result.returncode == 0, result.stderr
    wanted = {
        key: text
        for key, text in expected_csvs("exports/hourly").items()
        if "T02:00_" in key or "T03:00_" in key
    }
    assert csvs_in(read_bucket(s3, bucket)) == wanted
    assert len(read_bucket(s3, bucket)) == 16


def test_replay_of_one_destination_with_a_prefix_on_disk(
    tmp_path: Path,
    broker: Broker,
    names: dict[str, str],
    s3: Any,
    bucket: str,
    s3_endpoint: str,
) -> None:
    disk = tmp_path / "disk"
    destinations = (
        s3_destination("s3", bucket, s3_endpoint)
        + f"""
[[destinations]]
name = "disk"
url = "{disk.as_uri()}"
user_property = "plan"
"""
    )
    syncs = (
        HOURLY_ALL
        + """
[[syncs]]
cohort = "c2"
destination = "disk"
cadence = "hourly"
"""
    )
    config = write_config(tmp_path, broker, names, destinations, syncs)
    produce(config, C1 + C2)
    result = replay(config, "--destination", "disk", "--prefix", "again")
    assert result.returncode == 0, result.stderr
    assert read_bucket(s3, bucket) == {}
    written = {p.name: p.read_text() for p in (disk / "again").iterdir() if p.suffix == ".csv"}
    assert written == expected_csvs(cohorts=("c2",))


def test_replay_mistakes_are_one_line(
    s3_config: Callable[..., Path],
) -> None:
    config = s3_config()
    for options, message in [
        (["--since", "yesterday"], "--since: not an ISO-8601 time"),
        (["--destination", "nope"], "--destination: unknown destination 'nope'"),
        (["--prefix", "../up"], "--prefix: '../up' is not a safe path prefix"),
    ]:
        result = replay(config, *options)
        assert result.returncode == 2
        assert result.stderr.startswith(f"cohort-sync: {message}"), result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


ONCE_AT_2 = """
[[syncs]]
cohort = "*"
destination = "s3"
cadence = "once"
at = "2026-01-05T02:00Z"
routing_key = "snapshot"
"""


def test_a_one_time_sync_live_and_by_replay_within_since_and_until(
    s3: Any,
    bucket: str,
    workers: Any,
    s3_config: Callable[..., Path],
) -> None:
    config = s3_config(ONCE_AT_2)
    produce(config, C1 + C2)
    worker = workers(config)
    live = wait_for_objects(s3, bucket, 8, worker)  # c1 and c2: three CSVs and a manifest
    worker.stop()
    assert sorted({key.split("_")[2] for key in live}) == ["2026-01-05T02:00"]
    hourly = expected_csvs("exports/hourly")
    for cohort in ("c1", "c2"):
        existing = hourly[f"exports/hourly/7_{cohort}_2026-01-05T02:00_existing.csv"]
        stem = f"exports/hourly/7_{cohort}_2026-01-05T02:00"
        assert live[f"{stem}_entering_snapshot.csv"].decode() == existing
        assert live[f"{stem}_existing_snapshot.csv"].decode() == existing
        assert live[f"{stem}_exiting_snapshot.csv"] == b"amplitudeID,userID,plan\n"
    before = replay(config, "--until", "2026-01-05T01:59Z", "--prefix", "before")
    assert before.returncode == 0, before.stderr
    assert read_bucket(s3, bucket, "before/") == {}
    again = replay(config, "--since", "2026-01-05T02:00Z", "--prefix", "again")
    assert again.returncode == 0, again.stderr
    replayed = read_bucket(s3, bucket, "again/")
    assert len(replayed) == 8  # the manifests name their keys, under the prefix
    assert csvs_in(replayed) == {f"again/{k}": v for k, v in csvs_in(live).items()}


def test_every_format_is_written_live_and_a_replay_finds_the_same_bytes(
    tmp_path: Path,
    broker: Broker,
    names: dict[str, str],
    s3: Any,
    bucket: str,
    s3_endpoint: str,
    workers: Any,
) -> None:
    formats = {"plain": "csv", "gz": "csv.gz", "pq": "parquet"}
    destinations = "".join(
        s3_destination(name, bucket, s3_endpoint, path=f"exports/{name}")
        + f'format = "{file_format}"\n'
        for name, file_format in formats.items()
    )
    syncs = "".join(
        f'\n[[syncs]]\ncohort = "*"\ndestination = "{name}"\ncadence = "hourly"\n'
        for name in formats
    )
    config = write_config(tmp_path, broker, names, destinations, syncs)
    produce(config, C1 + C2)
    worker = workers(config)
    live = wait_for_objects(s3, bucket, 96, worker)
    worker.stop()
    endings = {key.rsplit("_", 1)[1].split(".", 1)[1] for key in live}
    assert endings == {"csv", "csv.gz", "parquet", "json"}
    result = replay(config)
    assert result.returncode == 0, result.stderr
    assert "96 files (0 new, 96 identical already, 0 kept)" in result.stdout.splitlines()[-1]
    assert read_bucket(s3, bucket) == live


def test_replay_in_two_processes_writes_what_one_writes_with_records_handed_between_them(
    s3: Any,
    bucket: str,
    s3_config: Callable[..., Path],
) -> None:
    """Two processes share the four partitions ([0, 2] and [1, 3]). Cohort `moved`'s
    records sit on a partition of the other process (keyed by user), so they are handed
    over; no other cohort lives on its home partition, so where they fall there cannot
    change a byte."""
    config = s3_config()
    produce(config, C1 + C2)
    kafka = settings_from_mapping(toml_of(config), {}).kafka
    partitions = kafka.partitions
    homes = {partition_for(cohort.encode(), partitions) for cohort in ("c1", "c2")}
    moved = next(
        f"m{n}" for n in range(1000) if partition_for(f"m{n}".encode(), partitions) not in homes
    )
    home = partition_for(moved.encode(), partitions)
    key = next(
        f"user-{n}".encode()
        for n in range(1000)
        if partition_for(f"user-{n}".encode(), partitions) % 2 != home % 2
    )
    events = [
        event(moved, 7, "enter", 5 * MIN, plan="pro"),
        event(moved, 8, "enter", 70 * MIN),
        event(moved, 7, "exit", 2 * H + 10 * MIN),
        event(moved, 9, "enter", 3 * H + 30 * MIN),
    ]
    send_records(kafka, kafka.topic, [(key, value, ()) for value in events])
    two = replay(config, "--processes", "2", "--prefix", "two")
    assert two.returncode == 0, two.stderr
    assert "4 records not keyed by their cohort went to another process" in two.stdout
    one = replay(config, "--processes", "1", "--prefix", "one")
    assert one.returncode == 0, one.stderr
    assert "not keyed" not in one.stdout
    in_two, in_one = read_bucket(s3, bucket, "two/"), read_bucket(s3, bucket, "one/")
    assert {
        key.removeprefix("two/"): data for key, data in in_two.items() if key.endswith(".csv")
    } == {key.removeprefix("one/"): data for key, data in in_one.items() if key.endswith(".csv")}
    assert any(f"_{moved}_" in key for key in in_two)
    assert two.stdout.splitlines()[-1].startswith(f"replay done: {len(C1 + C2) + 4} records")


def test_a_sigterm_stops_replay_and_its_share_processes_with_it(
    tmp_path: Path, broker: Broker, names: dict[str, str]
) -> None:
    """The shares' puts go to an endpoint that takes connections and never answers, so they
    are still at work when the replay gets SIGTERM: it stops them, says so in one line and
    exits 143, instead of ending alone and leaving them to write on."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)  # connections complete in the kernel; nothing reads them
        endpoint = f"http://127.0.0.1:{silent.getsockname()[1]}"
        config = write_config(
            tmp_path, broker, names, s3_destination("s3", "silent", endpoint), HOURLY_ALL
        )
        produce(config, C1 + C2)
        command = [sys.executable, "-m", "stream.commands.cli", "replay", "--config", str(config)]
        process = subprocess.Popen(
            [*command, "--processes", "2"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **AWS_ENV},
        )
        try:
            shares = wait_until(lambda: _children(process, 2), WAIT, "two share processes")
            process.send_signal(signal.SIGTERM)
            _, stderr = process.communicate(timeout=WAIT)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert process.returncode == 128 + signal.SIGTERM, stderr
    assert stderr.strip().splitlines()[-1].startswith("cohort-sync: replay stopped (SIGTERM)")
    assert "Traceback" not in stderr
    assert [pid for pid in shares if Path(f"/proc/{pid}").exists()] == []


def _children(process: subprocess.Popen[str], count: int) -> list[int] | None:
    """The process's `count` children, once it has that many."""
    assert process.poll() is None, process.communicate()
    pid = process.pid
    found = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(child) for child in found] if len(found) >= count else None
