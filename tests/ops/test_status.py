"""The status page renders what it is given, escaped."""

from __future__ import annotations

from stream.metrics import RecentSync
from stream.ops.status import PartitionStatus, Snapshot, render_status_page


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
