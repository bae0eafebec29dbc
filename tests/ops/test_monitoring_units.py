"""Pure parts of monitoring: lag rows, Prometheus text, the status page, progress lines."""

import io
import json

from stream.metrics import Metrics, RecentSync, render_prometheus
from stream.ops.lag import compute_lag, render_json, render_table
from stream.ops.progress import Progress
from stream.ops.status import PartitionStatus, Snapshot, render_status_page


def test_lag_is_end_minus_committed_and_end_when_nothing_was_committed() -> None:
    rows = compute_lag("t", {0: 5, 1: None}, {0: 7, 1: 3, 2: 0}, {0: 1_000}, now_ms=61_000)
    assert [(r.partition, r.committed, r.end, r.lag) for r in rows] == [
        (0, 5, 7, 2),
        (1, None, 3, 3),
        (2, None, 0, 0),
    ]
    assert rows[0].freshness_seconds == 60.0 and rows[1].freshness_seconds is None
    assert json.loads(render_json(rows))[1] == {
        "topic": "t",
        "partition": 1,
        "committed": None,
        "end": 3,
        "lag": 3,
        "freshness_seconds": None,
    }
    assert render_table(rows).splitlines()[-1].split() == ["total", "10", "5"]


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


def test_status_page_escapes_what_it_shows() -> None:
    snapshot = Snapshot(
        app_id="a",
        topic="t",
        partitions=[PartitionStatus(0, 4, 3_600_000, 12.0)],
        syncs=[
            RecentSync(
                "d", "<c1>", 3_600_000, {"entering": 1, "exiting": 0, "existing": 1}, "s3://b/k"
            )
        ],
        errors=["dead letter t/0@1: <script>"],
        events=2,
        dead_letters=1,
    )
    page = render_status_page(snapshot)
    assert "&lt;c1&gt;" in page and "&lt;script&gt;" in page and "<script>" not in page
    assert "<td>0</td><td>4</td><td>1970-01-01 01:00:00</td><td>12 s</td>" in page
    assert snapshot.as_json()["syncs"][0]["sync_time"] == "1970-01-01 01:00:00"


def test_progress_prints_plain_lines_off_a_terminal_at_most_every_interval() -> None:
    now = [0.0]
    out = io.StringIO()
    progress = Progress(100, out, tty=False, every=5.0, clock=lambda: now[0])
    now[0] = 2.0
    progress.update(done=50, event_time_ms=3_600_000, files=4)
    now[0] = 3.0
    progress.update(done=60, event_time_ms=3_600_000, files=4)  # too soon: not shown
    now[0] = 7.5
    progress.update(done=100, event_time_ms=7_200_000, files=8)
    progress.finish("done")
    assert out.getvalue().splitlines() == [
        "records 50/100 (50%)  event time 1970-01-01T01:00Z  files 4  25 records/s  ETA 0:00:02",
        "records 100/100 (100%)  event time 1970-01-01T02:00Z  files 8  13 records/s  ETA 0:00:00",
        "done",
    ]


def test_progress_redraws_one_line_on_a_terminal() -> None:
    out = io.StringIO()
    progress = Progress(10, out, tty=True, clock=lambda: 1.0)
    progress.update(done=1, event_time_ms=None, files=0)
    progress.finish("done")
    assert out.getvalue().startswith("\r\x1b[2Krecords 1/10 (10%)  event time -")
    assert out.getvalue().endswith("\ndone\n")
