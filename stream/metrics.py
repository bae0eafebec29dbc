"""What the worker did, kept in process: counters for logs, the demo and the replay summary,
Prometheus text for `/metrics`, and the recent syncs and errors for the status page."""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Metrics", "RecentSync", "UPLOAD_BUCKETS", "render_prometheus"]

UPLOAD_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass(frozen=True, slots=True)
class RecentSync:
    destination: str
    cohort_id: str
    sync_time_ms: int
    counts: Mapping[str, int]
    manifest: str


@dataclass
class Metrics:
    events: int = 0
    dead_letters: int = 0
    late_events: int = 0
    too_late: int = 0
    """Records dead-lettered for being older than the watermark minus `retain_exited`."""
    forgotten_members: int = 0
    forwarded: int = 0
    files: int = 0
    bytes: int = 0
    upload_retries: int = 0
    upload_errors: Counter[tuple[str, str]] = field(default_factory=Counter)
    """Failed sync writes by (destination, "permanent" or "transient")."""
    queued_syncs: dict[str, int] = field(default_factory=dict)
    """Built syncs waiting for their destination, by destination name."""
    new_objects: int = 0
    """Objects written where the key was free."""
    unchanged_objects: int = 0
    """Objects found holding exactly a sync's bytes already (a retry or a replay)."""
    kept_objects: int = 0
    """Objects found holding other bytes than a sync's, and kept (never replaced)."""
    syncs: Counter[str] = field(default_factory=Counter)
    """Syncs written, by destination name."""
    last_sync_time_ms: dict[str, int] = field(default_factory=dict)
    """Newest sync time written, by destination name."""
    upload_bucket_counts: list[int] = field(default_factory=lambda: [0] * len(UPLOAD_BUCKETS))
    upload_seconds_sum: float = 0.0
    upload_count: int = 0
    recent_syncs: deque[RecentSync] = field(default_factory=lambda: deque(maxlen=20))
    recent_errors: deque[str] = field(default_factory=lambda: deque(maxlen=20))

    def count_puts(self, outcomes: Iterable[str]) -> None:
        """What each put of a sync did (`sinks.Put`'s values): "written" (a new object),
        "unchanged" (identical bytes were there) or "kept" (other bytes were, and stay)."""
        for outcome in outcomes:
            if outcome == "written":
                self.new_objects += 1
            elif outcome == "unchanged":
                self.unchanged_objects += 1
            else:
                self.kept_objects += 1

    def observe_upload(self, seconds: float) -> None:
        """One sync's upload (three CSVs and the manifest) took `seconds`."""
        self.upload_count += 1
        self.upload_seconds_sum += seconds
        for index, bound in enumerate(UPLOAD_BUCKETS):
            if seconds <= bound:
                self.upload_bucket_counts[index] += 1

    def synced(self, sync: RecentSync) -> None:
        self.syncs[sync.destination] += 1
        newest = self.last_sync_time_ms.get(sync.destination)
        if newest is None or sync.sync_time_ms > newest:
            self.last_sync_time_ms[sync.destination] = sync.sync_time_ms
        self.recent_syncs.appendleft(sync)


def render_prometheus(
    metrics: Metrics,
    consumer_lag: Mapping[int, int],
    watermark_lag_seconds: Mapping[int, float],
) -> str:
    """The Prometheus text exposition format (version 0.0.4)."""
    text = _Exposition()
    for name, value, help_text in _counters(metrics):
        text.family(name, "counter", help_text)
        text.sample(name, value)
    text.family(
        "cohort_sync_upload_errors_total",
        "counter",
        "Failed sync writes, by destination and kind (permanent needs an operator).",
    )
    for (destination, kind), count in sorted(metrics.upload_errors.items()):
        text.sample("cohort_sync_upload_errors_total", count, destination=destination, kind=kind)
    text.by_label(
        "cohort_sync_queued_syncs",
        "gauge",
        "Built syncs waiting for their destination (a failing one holds only its own).",
        "destination",
        metrics.queued_syncs,
    )
    text.by_label(
        "cohort_sync_syncs_total",
        "counter",
        "Syncs written, by destination.",
        "destination",
        metrics.syncs,
    )
    _upload_histogram(text, metrics)
    _gauges(text, metrics, consumer_lag, watermark_lag_seconds)
    return text.render()


def _counters(metrics: Metrics) -> list[tuple[str, int, str]]:
    return [
        ("cohort_sync_events_total", metrics.events, "Membership events applied."),
        ("cohort_sync_dead_letters_total", metrics.dead_letters, "Records sent to the DLQ."),
        (
            "cohort_sync_late_events_total",
            metrics.late_events,
            "Events older than a sync already written.",
        ),
        (
            "cohort_sync_too_late_records_total",
            metrics.too_late,
            "Records dead-lettered as older than the watermark minus kafka.retain_exited.",
        ),
        (
            "cohort_sync_forgotten_members_total",
            metrics.forgotten_members,
            "Members forgotten after being absent for longer than kafka.retain_exited.",
        ),
        ("cohort_sync_files_total", metrics.files, "Files written (CSVs and manifests)."),
        ("cohort_sync_upload_retries_total", metrics.upload_retries, "Failed sync writes retried."),
        (
            "cohort_sync_kept_objects_total",
            metrics.kept_objects,
            "Existing objects with other bytes than a sync's, kept (never replaced).",
        ),
    ]


def _upload_histogram(text: _Exposition, metrics: Metrics) -> None:
    text.family("cohort_sync_upload_seconds", "histogram", "Time to write one sync's four files.")
    for bound, count in zip(UPLOAD_BUCKETS, metrics.upload_bucket_counts, strict=True):
        text.sample("cohort_sync_upload_seconds_bucket", count, le=_number(bound))
    text.sample("cohort_sync_upload_seconds_bucket", metrics.upload_count, le="+Inf")
    text.sample("cohort_sync_upload_seconds_sum", metrics.upload_seconds_sum)
    text.sample("cohort_sync_upload_seconds_count", metrics.upload_count)


def _gauges(
    text: _Exposition,
    metrics: Metrics,
    consumer_lag: Mapping[int, int],
    watermark_lag_seconds: Mapping[int, float],
) -> None:
    text.by_label(
        "cohort_sync_consumer_lag",
        "gauge",
        "Records not yet processed, by input partition.",
        "partition",
        consumer_lag,
    )
    text.by_label(
        "cohort_sync_watermark_lag_seconds",
        "gauge",
        "Wall clock minus the partition's event-time watermark.",
        "partition",
        watermark_lag_seconds,
    )
    text.by_label(
        "cohort_sync_last_sync_timestamp_seconds",
        "gauge",
        "Sync time (epoch seconds) of the newest sync written, by destination.",
        "destination",
        {destination: ms / 1000 for destination, ms in metrics.last_sync_time_ms.items()},
    )


class _Exposition:
    """Lines of the text format, in the order they are added."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")

    def sample(self, name: str, value: float, **labels: object) -> None:
        label_text = ",".join(f'{k}="{_escape(str(v))}"' for k, v in labels.items())
        self.lines.append(
            f"{name}{{{label_text}}} {_number(value)}" if labels else f"{name} {_number(value)}"
        )

    def by_label(
        self, name: str, kind: str, help_text: str, label: str, values: Mapping[Any, float]
    ) -> None:
        """A family with one sample per value of one label, in the label's order."""
        self.family(name, kind, help_text)
        for key, value in sorted(values.items()):
            self.sample(name, value, **{label: key})

    def render(self) -> str:
        return "\n".join(self.lines) + "\n"


def _number(value: float) -> str:
    if isinstance(value, int) or float(value).is_integer():
        return str(int(value))
    return repr(float(value))


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
