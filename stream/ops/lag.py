"""`cohort-sync lag`: how far the worker's consumer group is behind, per input partition.

End offsets are the high watermarks of Fetch responses (right on Tansu too); a partition
the group never committed has lag = end offset. Event-time freshness comes from the
worker's `/status.json` when its web server is on. Formatting is pure.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

from stream.config import Settings
from stream.kafka.client import committed_offsets, end_offsets

__all__ = [
    "PartitionLag",
    "compute_lag",
    "measure_lag",
    "render_table",
    "render_json",
    "worker_url",
    "freshness_note",
]


@dataclass(frozen=True, slots=True)
class PartitionLag:
    topic: str
    partition: int
    committed: int | None
    end: int
    lag: int
    freshness_seconds: float | None = None


def compute_lag(
    topic: str,
    committed: Mapping[int, int | None],
    ends: Mapping[int, int],
    watermarks_ms: Mapping[int, int] | None,
    now_ms: int,
) -> list[PartitionLag]:
    rows = []
    for partition, end in sorted(ends.items()):
        done = committed.get(partition)
        watermark = (watermarks_ms or {}).get(partition)
        rows.append(
            PartitionLag(
                topic=topic,
                partition=partition,
                committed=done,
                end=end,
                lag=max(end - (done or 0), 0),
                freshness_seconds=None if watermark is None else (now_ms - watermark) / 1000,
            )
        )
    return rows


def worker_url(settings: Settings) -> str | None:
    """The worker's web address from `[faust] web_port` (and `web_host`), if it has one."""
    port = settings.faust.get("web_port")
    if port is None:
        return None
    host = settings.faust.get("web_host") or "127.0.0.1"
    return f"http://{host}:{port}"


def measure_lag(settings: Settings, now_ms: int, url: str | None) -> list[PartitionLag]:
    kafka = settings.kafka
    ends = end_offsets(kafka)
    committed = committed_offsets(kafka, kafka.app_id)
    return compute_lag(kafka.topic, committed, ends, _watermarks(url), now_ms)


def render_table(rows: Sequence[PartitionLag]) -> str:
    lines = [
        f"{'topic':<24} {'partition':>9} {'committed':>12} {'end':>12} {'lag':>10} "
        f"{'freshness':>12}"
    ]
    for row in rows:
        committed = "-" if row.committed is None else f"{row.committed:,}"
        fresh = "-" if row.freshness_seconds is None else f"{row.freshness_seconds:,.0f} s"
        lines.append(
            f"{row.topic:<24} {row.partition:>9} {committed:>12} {row.end:>12,} "
            f"{row.lag:>10,} {fresh:>12}"
        )
    total_end = sum(row.end for row in rows)
    total_lag = sum(row.lag for row in rows)
    lines.append(f"{'total':<24} {'':>9} {'':>12} {total_end:>12,} {total_lag:>10,}")
    return "\n".join(lines)


def render_json(rows: Sequence[PartitionLag]) -> str:
    return json.dumps([asdict(row) for row in rows])


def freshness_note(url: str | None) -> str | None:
    """Why the freshness column is empty, when it is (None: the worker answered)."""
    if url is None:
        return (
            "freshness: unknown without the worker's web server: set [faust] web_port, or "
            "pass --worker-url"
        )
    if _watermarks(url) is None:
        return f"freshness: unknown: the worker did not answer at {url}/status.json"
    return None


def _watermarks(url: str | None) -> dict[int, int] | None:
    if url is None:
        return None
    try:
        with urllib.request.urlopen(f"{url}/status.json", timeout=2) as response:
            status = json.load(response)
    except (OSError, urllib.error.URLError, ValueError):
        return None  # the worker is not running, or has no web server: no freshness
    return {
        int(p["partition"]): int(p["watermark_ms"])
        for p in status.get("partitions", [])
        if p.get("watermark_ms") is not None
    }
