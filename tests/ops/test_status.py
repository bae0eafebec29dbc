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
    syncs = snapshot.as_json()["syncs"]
    assert isinstance(syncs, list) and syncs[0]["sync_time"] == "1970-01-01 01:00:00"


def test_warnings_have_their_section_only_when_there_are_some() -> None:
    quiet = Snapshot(
        app_id="a", topic="t", partitions=[], syncs=[], errors=[], events=0, dead_letters=0
    )
    assert "<h2>Warnings</h2>" not in render_status_page(quiet)
    warned = Snapshot(
        app_id="a",
        topic="t",
        partitions=[],
        syncs=[],
        errors=[],
        events=0,
        dead_letters=0,
        warnings=["partition 1 is idle at <then>"],
    )
    assert "<h2>Warnings</h2>\n<ul><li>partition 1 is idle at &lt;then&gt;</li></ul>" in (
        render_status_page(warned)
    )
    assert warned.as_json()["warnings"] == ["partition 1 is idle at <then>"]
