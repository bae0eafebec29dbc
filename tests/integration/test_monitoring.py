"""Lag, metrics, health and the status page of a running worker."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from stream.config import load_settings
from stream.domain.partitioner import partition_for
from stream.kafka.embedded import free_port
from tests.brokers import Broker
from tests.scenario import C1, C2, MIN, event

from .conftest import WAIT, read_bucket, wait_until
from .support import HOURLY_ALL, cli, produce, s3_destination, wait_for_objects, write_config


def with_web_port(config: Path) -> int:
    port = free_port()
    config.write_text(config.read_text().replace("[faust]\n", f"[faust]\nweb_port = {port}\n"))
    return port


def lag(config: Path, *options: str) -> subprocess.CompletedProcess[str]:
    return cli("lag", config, *options)


def lag_rows(config: Path) -> list[dict[str, Any]]:
    result = lag(config, "--json")
    assert result.returncode == 0, result.stderr
    rows: list[dict[str, Any]] = json.loads(result.stdout)
    return rows


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_lag_before_during_and_after_processing(
    s3: Any,
    bucket: str,
    workers: Any,
    s3_config: Callable[..., Path],
) -> None:
    config = s3_config()
    with_web_port(config)
    produce(config, C1 + C2)
    before = lag_rows(config)  # the group never committed: lag = end offset
    assert all(set(row) >= {"topic", "partition", "committed", "end", "lag"} for row in before)
    assert all(row["committed"] is None and row["lag"] == row["end"] for row in before)
    assert sum(row["lag"] for row in before) == 14
    assert lag(config, "--max-lag", "0").returncode == 1
    assert lag(config, "--max-lag", "14").returncode == 0

    worker = workers(config)
    wait_for_objects(s3, bucket, 32, worker)
    caught_up = wait_until(
        lambda: (rows := lag_rows(config)) and sum(r["lag"] for r in rows) == 0 and rows,
        60,
        "the group to commit everything",
    )
    assert all(
        row["committed"] == row["end"] or (row["end"] == 0 and row["committed"] is None)
        for row in caught_up
    )
    fresh = [row for row in caught_up if row["freshness_seconds"] is not None]
    home = {partition_for(b"c1", 4), partition_for(b"c2", 4)}
    assert {row["partition"] for row in fresh} == home
    assert all(row["freshness_seconds"] > 3600 for row in fresh)  # event time is in January

    worker.stop()
    produce(config, [event("c1", 9000 + n, "enter", 5 * 60 * MIN + n) for n in range(5)])
    after = {row["partition"]: row["lag"] for row in lag_rows(config)}
    assert after == {p: (5 if p == partition_for(b"c1", 4) else 0) for p in range(4)}
    table = lag(config)
    assert table.returncode == 0
    assert table.stdout.splitlines()[0].split() == [
        "topic",
        "partition",
        "committed",
        "end",
        "lag",
        "freshness",
    ]
    assert table.stdout.splitlines()[-2].split() == ["total", "19", "5"]
    port = load_settings(config).faust["web_port"]
    assert table.stdout.splitlines()[-1] == (  # the worker is stopped: why "-" is shown
        f"freshness: unknown: the worker did not answer at http://127.0.0.1:{port}/status.json"
    )


def test_metrics_health_and_status_page(
    tmp_path: Path,
    s3: Any,
    bucket: str,
    workers: Any,
    s3_config: Callable[..., Path],
) -> None:
    config = s3_config()
    port = with_web_port(config)
    produce(config, [b"not json", *C1, *C2])
    worker = workers(config)
    wait_for_objects(s3, bucket, 32, worker)
    base = f"http://127.0.0.1:{port}"
    metrics = wait_until(
        lambda: (
            (text := get(f"{base}/metrics")[1]) and "cohort_sync_files_total 32.0" in text and text
        ),
        30,
        "all files counted",
    )
    lines = set(metrics.splitlines())
    for expected in [
        "cohort_sync_events_total 14.0",
        "cohort_sync_dead_letters_total 1.0",
        "cohort_sync_late_events_total 0.0",
        'cohort_sync_syncs_total{destination="s3"} 8.0',
        'cohort_sync_upload_seconds_bucket{le="+Inf"} 8.0',
        "cohort_sync_upload_seconds_count 8.0",
        'cohort_sync_last_sync_timestamp_seconds{destination="s3"} 1.7675856e+09',  # 04:00Z
    ]:
        assert expected in lines, expected
    for partition in range(4):
        assert f'cohort_sync_consumer_lag{{partition="{partition}"}} 0.0' in lines
    assert sum(1 for line in lines if line.startswith("cohort_sync_watermark_lag_seconds{")) == 2
    probed = next(
        line for line in lines if line.startswith("cohort_sync_event_loop_lag_seconds_count")
    )
    assert float(probed.split()[1]) > 0  # the loop-lag probe runs in the worker
    assert get(f"{base}/health") == (200, '{"status":"ok"}')
    status, page = get(f"{base}/")
    assert status == 200 and "<h2>Latest syncs</h2>" in page
    assert (
        "<td>c2</td><td>2026-01-05 04:00:00</td><td>s3</td><td>0</td><td>0</td><td>1</td>" in page
    )
    assert "dead letter" in page and "not valid JSON" in page
    _render_in_chromium(base, tmp_path)


def test_an_idle_partition_far_behind_the_wall_clock_warns_instead_of_flooding(
    s3: Any,
    bucket: str,
    workers: Any,
    s3_config: Callable[..., Path],
) -> None:
    """Events of January 2026 and a 1 s idle timeout: the partitions go idle months behind
    the wall clock, and without `kafka.idle_catch_up` would write every hourly sync since."""
    config = s3_config()
    config.write_text(config.read_text().replace('idle_timeout = "off"', 'idle_timeout = "1s"'))
    port = with_web_port(config)
    produce(config, C1 + C2)
    worker = workers(config)
    wait_for_objects(s3, bucket, 32, worker)  # what event time makes due
    health = wait_until(
        lambda: (
            (reply := get(f"http://127.0.0.1:{port}/health"))[0] == 200
            and "warnings" in reply[1]
            and json.loads(reply[1])
        ),
        WAIT,
        "the catch-up warning on /health",
    )
    homes = {partition_for(cohort.encode(), 4) for cohort in ("c1", "c2")}
    for warning in health["warnings"]:
        assert re.fullmatch(
            r"partition (\d) is idle at 2026-01-05T0\d:\d\dZ, \d+d( \d+h)? behind the wall clock: "
            r"more than kafka.idle_catch_up \(1d\), so it does not follow .*",
            warning,
        ), warning
        assert int(warning.split()[1]) in homes
    assert len(read_bucket(s3, bucket)) == 32  # nothing followed the clock
    status, page = get(f"http://127.0.0.1:{port}/")
    assert "<h2>Warnings</h2>" in page and "behind the wall clock" in page
    log = worker.log()
    for warning in health["warnings"]:  # logged once, not at every tick
        assert log.count(warning.split(",")[0]) == 1


def test_health_is_503_with_the_reason_when_a_bucket_is_missing(
    tmp_path: Path,
    broker: Broker,
    names: dict[str, str],
    s3_endpoint: str,
    workers: Any,
) -> None:
    config = write_config(
        tmp_path, broker, names, s3_destination("s3", "no-such-bucket", s3_endpoint), HOURLY_ALL
    )
    port = with_web_port(config)
    assert load_settings(config).faust["web_port"] == port
    worker = workers(config)
    status, body = wait_until(
        lambda: (answer := _try_get(f"http://127.0.0.1:{port}/health")) and answer,
        60,
        "the web server",
    )
    worker.assert_running()
    assert status == 503
    reasons = json.loads(body)["reasons"]
    assert any("destination s3" in r and "NoSuchBucket" in r for r in reasons), reasons


def _try_get(url: str) -> tuple[int, str] | None:
    try:
        return get(url)
    except OSError:
        return None


def _render_in_chromium(base: str, tmp_path: Path) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium not installed: the page was checked as HTML only")
    shot = tmp_path / "status.png"
    subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'chromium'}",
            f"--screenshot={shot}",
            "--window-size=1200,800",
            f"{base}/",
        ],
        capture_output=True,
        timeout=WAIT,
        check=True,
    )
    assert shot.stat().st_size > 10_000
