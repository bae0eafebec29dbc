"""`/metrics` through prometheus-client: the worker's `Metrics`, read at each scrape, as
metric families beside the library's standard process, platform and garbage-collector ones.
The only module that imports prometheus_client.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import (
    CollectorRegistry,
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.utils import floatToGoString

from stream.metrics import Histogram, Metrics

__all__ = ["CONTENT_TYPE", "render_prometheus"]

#: The text exposition format `generate_latest` writes, without the charset (UTF-8), which
#: aiohttp wants on its own.
CONTENT_TYPE = CONTENT_TYPE_LATEST.split("; charset=")[0]


def render_prometheus(
    metrics: Metrics,
    consumer_lag: Mapping[int, int],
    watermark_lag_seconds: Mapping[int, float],
) -> bytes:
    """The exposition of one scrape: the worker's families, then process_* and python_*."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_WorkerCollector(metrics, consumer_lag, watermark_lag_seconds))
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return generate_latest(registry)


class _WorkerCollector:
    """The worker's counters and gauges, as they are when collected."""

    def __init__(
        self,
        metrics: Metrics,
        consumer_lag: Mapping[int, int],
        watermark_lag_seconds: Mapping[int, float],
    ) -> None:
        self.metrics = metrics
        self.consumer_lag = consumer_lag
        self.watermark_lag_seconds = watermark_lag_seconds

    def collect(self) -> Iterator[Metric]:
        metrics = self.metrics
        for name, value, help_text in _counters(metrics):
            family = CounterMetricFamily(name, help_text)
            family.add_metric([], value)
            yield family
        yield _labelled(
            CounterMetricFamily(
                "cohort_sync_upload_errors_total",
                "Failed sync writes, by destination and kind (permanent needs an operator).",
                labels=["destination", "kind"],
            ),
            {key: count for key, count in metrics.upload_errors.items()},
        )
        yield _by_destination(
            GaugeMetricFamily,
            "cohort_sync_queued_syncs",
            "Built syncs waiting for their destination (a failing one holds only its own).",
            metrics.queued_syncs,
        )
        yield _by_destination(
            CounterMetricFamily,
            "cohort_sync_syncs_total",
            "Syncs written, by destination.",
            metrics.syncs,
        )
        yield _histogram(
            "cohort_sync_upload_seconds", "Time to write one sync's four files.", metrics.uploads
        )
        yield _histogram(
            "cohort_sync_event_loop_lag_seconds",
            "How late the event loop woke from a 0.1 s sleep: how long it was blocked.",
            metrics.loop_lag,
        )
        yield GaugeMetricFamily(
            "cohort_sync_event_loop_lag_max_seconds",
            "The longest the event loop was blocked since the worker started.",
            value=metrics.loop_lag.largest,
        )
        yield from self._gauges()

    def _gauges(self) -> Iterator[Metric]:
        yield _labelled(
            GaugeMetricFamily(
                "cohort_sync_consumer_lag",
                "Records not yet processed, by input partition.",
                labels=["partition"],
            ),
            {(str(p),): lag for p, lag in self.consumer_lag.items()},
        )
        yield _labelled(
            GaugeMetricFamily(
                "cohort_sync_watermark_lag_seconds",
                "Wall clock minus the partition's event-time watermark.",
                labels=["partition"],
            ),
            {(str(p),): seconds for p, seconds in self.watermark_lag_seconds.items()},
        )
        yield _by_destination(
            GaugeMetricFamily,
            "cohort_sync_last_sync_timestamp_seconds",
            "Sync time (epoch seconds) of the newest sync written, by destination.",
            {name: ms / 1000 for name, ms in self.metrics.last_sync_time_ms.items()},
        )


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
            "cohort_sync_too_far_ahead_records_total",
            metrics.too_far_ahead,
            "Records dead-lettered as dated more than kafka.max_future after their Kafka time.",
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


def _by_destination(kind: Any, name: str, help_text: str, values: Mapping[str, float]) -> Metric:
    family = kind(name, help_text, labels=["destination"])
    return _labelled(family, {(destination,): value for destination, value in values.items()})


def _labelled(family: Any, values: Mapping[tuple[str, ...], float]) -> Metric:
    """One sample per label values, in their order (a stable exposition)."""
    for labels, value in sorted(values.items()):
        family.add_metric(list(labels), value)
    result: Metric = family
    return result


def _histogram(name: str, documentation: str, histogram: Histogram) -> Metric:
    buckets = [
        (floatToGoString(bound), count)
        for bound, count in zip(histogram.bounds, histogram.counts, strict=True)
    ]
    buckets.append(("+Inf", histogram.count))
    return HistogramMetricFamily(name, documentation, buckets=buckets, sum_value=histogram.total)
