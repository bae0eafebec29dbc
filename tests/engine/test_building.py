"""A sync built from the rows of the one before is the sync built from every member."""

from __future__ import annotations

from stream.domain.events import MembershipEvent
from stream.engine.building import sync_builder
from stream.output.sync import InputPosition, SyncOutput
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
