"""Progress of long runs: plain lines off a terminal, one redrawn line on one."""

from __future__ import annotations

import io

from stream.ops.progress import Progress


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
