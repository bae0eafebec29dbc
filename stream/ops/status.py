"""The worker's status page: plain HTML, readable without JavaScript. Pure: it renders a
snapshot that `faust/worker.py` gathers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from stream.domain.windows import format_time
from stream.metrics import RecentSync

__all__ = ["PartitionStatus", "Snapshot", "render_status_page"]


@dataclass(frozen=True, slots=True)
class PartitionStatus:
    partition: int
    lag: int | None
    watermark_ms: int | None
    freshness_seconds: float | None


@dataclass(frozen=True, slots=True)
class Snapshot:
    app_id: str
    topic: str
    partitions: Sequence[PartitionStatus]
    syncs: Sequence[RecentSync]
    errors: Sequence[str]
    events: int
    dead_letters: int
    warnings: Sequence[str] = ()

    def as_json(self) -> dict[str, object]:
        return {
            "app_id": self.app_id,
            "topic": self.topic,
            "events": self.events,
            "dead_letters": self.dead_letters,
            "partitions": [
                {
                    "partition": p.partition,
                    "lag": p.lag,
                    "watermark_ms": p.watermark_ms,
                    "freshness_seconds": p.freshness_seconds,
                }
                for p in self.partitions
            ],
            "syncs": [
                {
                    "destination": s.destination,
                    "cohort_id": s.cohort_id,
                    "sync_time": format_time(s.sync_time_ms, table=True),
                    "counts": dict(s.counts),
                    "manifest": s.manifest,
                }
                for s in self.syncs
            ],
            "errors": list(self.errors),
            "warnings": list(self.warnings),
        }


def render_status_page(snapshot: Snapshot) -> str:
    partition_rows = (
        "".join(
            f"<tr><td>{p.partition}</td><td>{_text(p.lag)}</td>"
            f"<td>{_when(p.watermark_ms)}</td>"
            f"<td>{_seconds(p.freshness_seconds)}</td></tr>"
            for p in snapshot.partitions
        )
        or '<tr><td colspan="4">no partition assigned</td></tr>'
    )
    sync_rows = (
        "".join(
            f"<tr><td>{escape(s.cohort_id)}</td><td>{format_time(s.sync_time_ms, table=True)}</td>"
            f"<td>{escape(s.destination)}</td><td>{s.counts['entering']}</td>"
            f"<td>{s.counts['exiting']}</td><td>{s.counts['existing']}</td>"
            f"<td><code>{escape(s.manifest)}</code></td></tr>"
            for s in snapshot.syncs
        )
        or '<tr><td colspan="7">no sync written yet</td></tr>'
    )
    error_items = "".join(f"<li>{escape(e)}</li>" for e in snapshot.errors) or "<li>none</li>"
    warning_items = "".join(f"<li>{escape(w)}</li>" for w in snapshot.warnings)
    warnings = f"<h2>Warnings</h2>\n<ul>{warning_items}</ul>\n" if warning_items else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>cohort-sync: {escape(snapshot.app_id)}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:.2em .6em;text-align:left}}</style></head>
<body>
<h1>cohort-sync <small>{escape(snapshot.app_id)}</small></h1>
<p>Input topic <code>{escape(snapshot.topic)}</code>: {snapshot.events:,} events applied,
{snapshot.dead_letters:,} dead letters. <a href="/metrics">metrics</a> ·
<a href="/health">health</a> · <a href="/status.json">JSON</a></p>
{warnings}<h2>Partitions</h2>
<table><tr><th>partition</th><th>lag</th><th>watermark (UTC)</th><th>behind wall clock</th></tr>
{partition_rows}</table>
<h2>Latest syncs</h2>
<table><tr><th>cohort</th><th>sync time (UTC)</th><th>destination</th><th>entering</th>
<th>exiting</th><th>existing</th><th>manifest</th></tr>
{sync_rows}</table>
<h2>Recent errors</h2>
<ul>{error_items}</ul>
</body></html>
"""


def _text(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f} s"


def _when(time_ms: int | None) -> str:
    return "-" if time_ms is None else format_time(time_ms, table=True)
