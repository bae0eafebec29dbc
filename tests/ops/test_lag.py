"""Lag rows: committed, end and lag per partition, as a table or JSON."""

from __future__ import annotations

import json
import socket

from stream.ops.lag import compute_lag, freshness_note, render_json, render_table


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


def test_an_empty_freshness_column_is_explained() -> None:
    assert freshness_note(None) == (
        "freshness: unknown without the worker's web server: set [faust] web_port, or pass "
        "--worker-url"
    )
    with socket.socket() as probe:  # a port nothing listens on once it is closed
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}"
    assert (
        freshness_note(url) == f"freshness: unknown: the worker did not answer at {url}/status.json"
    )
