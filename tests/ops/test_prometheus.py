"""The Prometheus text of the worker's counters, gauges and histogram, through
prometheus-client, with the standard process and Python families."""

from __future__ import annotations

from stream.metrics import Metrics, RecentSync
from stream.ops.prometheus import render_prometheus


def test_prometheus_text_has_every_family_and_escapes_labels() -> None:
    metrics = Metrics(events=3, dead_letters=1, too_late=4, too_far_ahead=6, forgotten_members=5)
    metrics.observe_upload(0.03)
    metrics.observe_upload(4.0)
    metrics.loop_lag.observe(0.002)
    metrics.loop_lag.observe(1.7)
    metrics.synced(RecentSync('d"1', "c", 7_200_000, {}, "k"))
    metrics.upload_errors[("s3", "permanent")] += 2
    text = render_prometheus(metrics, {0: 2}, {0: 1.5}).decode()
    lines = text.splitlines()
    assert "cohort_sync_events_total 3.0" in lines
    assert 'cohort_sync_syncs_total{destination="d\\"1"} 1.0' in lines
    assert 'cohort_sync_upload_seconds_bucket{le="0.025"} 0.0' in lines
    assert 'cohort_sync_upload_seconds_bucket{le="0.05"} 1.0' in lines
    assert 'cohort_sync_upload_seconds_bucket{le="5.0"} 2.0' in lines
    assert "cohort_sync_upload_seconds_count 2.0" in lines
    assert 'cohort_sync_consumer_lag{partition="0"} 2.0' in lines
    assert 'cohort_sync_watermark_lag_seconds{partition="0"} 1.5' in lines
    assert 'cohort_sync_last_sync_timestamp_seconds{destination="d\\"1"} 7200.0' in lines
    types = [line.split()[2] for line in lines if line.startswith("# TYPE cohort_sync_")]
    assert 'cohort_sync_upload_errors_total{destination="s3",kind="permanent"} 2.0' in lines
    assert "cohort_sync_too_late_records_total 4.0" in lines
    assert "cohort_sync_forgotten_members_total 5.0" in lines
    assert "cohort_sync_too_far_ahead_records_total 6.0" in lines
    assert 'cohort_sync_event_loop_lag_seconds_bucket{le="0.005"} 1.0' in lines
    assert 'cohort_sync_event_loop_lag_seconds_bucket{le="2.5"} 2.0' in lines
    assert "cohort_sync_event_loop_lag_max_seconds 1.7" in lines
    assert len(types) == 18 and text.endswith("\n")  # the 9 the issue names, and 9 more


def test_the_standard_process_and_python_families_are_served_too() -> None:
    text = render_prometheus(Metrics(), {}, {}).decode()
    for family in ("process_resident_memory_bytes", "process_cpu_seconds_total", "python_info"):
        assert f"# TYPE {family} " in text, family
    assert "python_gc_collections_total" in text
