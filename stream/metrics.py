"""What the worker did, kept in process: counters for logs, the demo, the replay summary and
`/metrics` (`ops/prometheus.py` exposes them), and the recent syncs and errors for the
status page."""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

__all__ = ["Histogram", "LOOP_LAG_BUCKETS", "Metrics", "RecentSync", "UPLOAD_BUCKETS"]

UPLOAD_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
LOOP_LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass
class Histogram:
    """Observations in cumulative buckets (Prometheus's form), their sum, count and largest."""

    bounds: tuple[float, ...]
    counts: list[int] = field(init=False)
    """Per bound, how many observations were at most it."""
    total: float = 0.0
    count: int = 0
    largest: float = 0.0

    def __post_init__(self) -> None:
        self.counts = [0] * len(self.bounds)

    def observe(self, value: float) -> None:
        self.count += 1
        self.total += value
        self.largest = max(self.largest, value)
        for index, bound in enumerate(self.bounds):
            if value <= bound:
                self.counts[index] += 1


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
    too_far_ahead: int = 0
    """Records dead-lettered for an event time more than `max_future` after their Kafka
    timestamp."""
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
    uploads: Histogram = field(default_factory=lambda: Histogram(UPLOAD_BUCKETS))
    """Seconds to write each sync's four files."""
    loop_lag: Histogram = field(default_factory=lambda: Histogram(LOOP_LAG_BUCKETS))
    """Seconds the event loop woke late (`ops/looplag.py`): how long it was blocked."""
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
        self.uploads.observe(seconds)

    def synced(self, sync: RecentSync) -> None:
        self.syncs[sync.destination] += 1
        newest = self.last_sync_time_ms.get(sync.destination)
        if newest is None or sync.sync_time_ms > newest:
            self.last_sync_time_ms[sync.destination] = sync.sync_time_ms
        self.recent_syncs.appendleft(sync)
