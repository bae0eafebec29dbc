"""SIGHUP re-reads the config: a rule added starts at the first sync time after the
partition's decided watermark and the others are untouched; a config that does not load is
refused with one line and the running one stays."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.scenario import C1, MIN, H, event, expected_csvs

from .conftest import WAIT, read_bucket, wait_until
from .support import HOURLY_ALL, produce, wait_for_objects

QUARTER_C1 = """
[[syncs]]
cohort = "c1"
destination = "s3"
cadence = "15m"
routing_key = "q"
"""


def test_sighup_adds_a_rule_that_starts_after_the_watermark_and_refuses_a_broken_config(
    s3: Any, bucket: str, workers: Any, s3_config: Callable[..., Path]
) -> None:
    config = s3_config()
    produce(config, C1)
    worker = workers(config)
    before = wait_for_objects(s3, bucket, 16, worker)
    assert {k: v.decode() for k, v in before.items() if k.endswith(".csv")} == expected_csvs(
        "exports/hourly", cohorts=("c1",)
    )
    config.write_text(config.read_text().replace(HOURLY_ALL, HOURLY_ALL + QUARTER_C1))
    assert worker.process is not None
    worker.process.send_signal(signal.SIGHUP)
    wait_until(lambda: "config reloaded" in worker.log(), WAIT, "the reload")
    assert "2 syncs (1 added, 0 removed)" in worker.log()
    produce(config, [event("c1", 1006, "enter", 4 * H + 31 * MIN)])
    after = wait_for_objects(s3, bucket, 24, worker)
    added = sorted(key.rsplit("/", 1)[1] for key in after if key not in before)
    assert added == [  # decided watermark 04:01: the new rule starts at 04:15, not at 00:15
        f"7_c1_2026-01-05T04:{minute}_{kind}_q.{ext}"
        for minute in ("15", "30")
        for kind, ext in (
            ("entering", "csv"),
            ("existing", "csv"),
            ("exiting", "csv"),
            ("manifest", "json"),
        )
    ]
    first = after["exports/hourly/7_c1_2026-01-05T04:15_entering_q.csv"].decode()
    assert first == "amplitudeID,userID,plan\n1001,u1001,enterprise\n1004,u1004,\n1005,u1005,\n"
    assert {k: after[k] for k in before} == before  # the hourly files are untouched

    good = config.with_name("good.toml")
    good.write_text(config.read_text())
    config.write_text(config.read_text().replace('cadence = "15m"', 'cadence = "weekly"'))
    worker.process.send_signal(signal.SIGHUP)
    refusal = wait_until(
        lambda: [line for line in worker.log().splitlines() if "not reloaded" in line],
        WAIT,
        "the refusal",
    )
    assert len(refusal) == 1 and "syncs[1].cadence: 'weekly' is not a cadence" in refusal[0]
    produce(good, [event("c1", 1007, "enter", 4 * H + 46 * MIN)])
    wait_until(
        lambda: "exports/hourly/7_c1_2026-01-05T04:45_manifest_q.json" in read_bucket(s3, bucket),
        WAIT,
        "the 04:45 sync of the rule the refused config would have changed",
    )
    worker.assert_running()
