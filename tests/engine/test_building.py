"""A sync built from the rows of the one before is the sync built from every member."""

from __future__ import annotations

from typing import Any
from unittest.mock import patch

import pytest

from stream.domain.events import MembershipEvent
from stream.engine.building import sync_builder
from stream.output.sync import InputPosition, SyncOutput
from stream.state.columns import diff_columns
from stream.state.partition import PartitionState, SyncJob
from tests.engine.test_processor import config
from tests.scenario import JAN5, MIN, H


def files(output: SyncOutput) -> dict[str, bytes]:
    return {f.key: f.data for f in (*output.csv_files, output.manifest)}


def test_the_next_sync_from_the_last_one_s_rows_has_the_bytes_of_a_full_build() -> None:
    settings = config()
    [rule] = settings.syncs
    state = PartitionState()
    state.apply(
        [MembershipEvent("c1", a, f"u{a}", True, JAN5 + a * MIN) for a in (1, 2, 3)], 0, None
    )
    cohort = state.cohorts["c1"]
    position = InputPosition("in", 0, 1)
    first = sync_builder(settings, cohort, SyncJob(rule, "c1", JAN5 + H, None), position)()
    assert first.csv_files[0].data.count(b"\n") == 4  # header and three entering
    state.apply([MembershipEvent("c1", 2, "u2", False, JAN5 + H + MIN)], 1, JAN5 + H)
    second = SyncJob(rule, "c1", JAN5 + 2 * H, JAN5 + H)
    incremental = sync_builder(settings, cohort, second, position)()
    full = sync_builder(settings, cohort, second, position, incremental=False)()
    assert files(incremental) == files(full)
    assert b"2,u2" in full.csv_files[1].data  # exiting


def test_a_cohort_being_built_refuses_every_write_and_takes_them_again_after() -> None:
    """Builds read the cohort in a pool thread: a write meanwhile would change the members
    under the build, so it raises instead of changing a file silently."""
    settings = config()
    [rule] = settings.syncs
    state = PartitionState()
    enter = [MembershipEvent("c1", 1, "u1", True, JAN5 + MIN)]
    state.apply(enter, 0, None)
    cohort = state.cohorts["c1"]
    tried: list[str] = []

    def write_meanwhile(*args: Any) -> Any:
        writes = {
            "apply": lambda: state.apply(enter, 1, None),
            "drop_changes_before": lambda: cohort.drop_changes_before(JAN5),
            "restore": lambda: cohort.restore(9, state.cohorts["c1"].members.get(1)),
        }
        for name, write in writes.items():
            with pytest.raises(RuntimeError, match="while a sync of it was being built"):
                write()
            tried.append(name)
        return diff_columns(*args)

    job = SyncJob(rule, "c1", JAN5 + H, None)
    build = sync_builder(settings, cohort, job, InputPosition("in", 0, 1))
    with patch("stream.engine.building.diff_columns", side_effect=write_meanwhile):
        build()
    assert tried == ["apply", "drop_changes_before", "restore"]
    assert cohort.building == 0
    state.apply(enter, 2, None)  # no build in flight: writes go through again
