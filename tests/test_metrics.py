"""The Prometheus text of the worker's counters, gauges and histogram."""

from __future__ import annotations

from stream.metrics import Metrics, RecentSync, render_prometheus


def test_prometheus_text_has_every_family_and_escapes_labels() -> None:
    metrics = Metrics(events=3, dead_letters=1, too_late=4, forgotten_members=5)
    metrics.observe_upload(0.03)
    metrics.observe_upload(4.0)
    metrics.synced(RecentSync('d"1', "c", 7_200_000, {}, "k"))
    metrics.upload_errors[("s3", "permanent")] += 2
    text = render_prometheus(metrics, {0: 2}, {0: 1.5})
    lines = text.splitlines()
    assert "cohort_sync_events_total 3" in lines
    assert 'cohort_sync_syncs_total{destination="d\\"1"} 1' in lines
    assert 'cohort_sync_upload_seconds_bucket{le="0.025"} 0' in lines
    assert 'cohort_sync_upload_seconds_bucket{le="0.05"} 1' in lines
    assert 'cohort_sync_upload_seconds_bucket{le="5"} 2' in lines
    assert "cohort_sync_upload_seconds_count 2" in lines
    assert 'cohort_sync_consumer_lag{partition="0"} 2' in lines
    assert 'cohort_sync_watermark_lag_seconds{partition="0"} 1.5' in lines
    assert 'cohort_sync_last_sync_timestamp_seconds{destination="d\\"1"} 7200' in lines
    types = [line.split()[2] for line in lines if line.startswith("# TYPE")]
    assert 'cohort_sync_upload_errors_total{destination="s3",kind="permanent"} 2' in lines
    assert "cohort_sync_too_late_records_total 4" in lines
    assert "cohort_sync_forgotten_members_total 5" in lines
    assert len(types) == 15 and text.endswith("\n")  # the 9 the issue names, and 6 more
