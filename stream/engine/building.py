"""How one sync's files are built from a cohort's state: from the rows of the rule's last
sync and the members changed since when it can, else from every member's columns (the same
bytes)."""

from __future__ import annotations

from collections.abc import Callable

from stream.config import Settings, SyncRule
from stream.domain.membership import diff_cohort
from stream.output.sync import (
    InputPosition,
    SyncOutput,
    SyncSpec,
    build_next_sync,
    build_sync_from_columns,
)
from stream.state.cohort import CohortState
from stream.state.columns import diff_columns
from stream.state.partition import SyncJob

__all__ = ["sync_builder"]


def sync_builder(
    settings: Settings,
    cohort: CohortState,
    job: SyncJob,
    position: InputPosition,
    incremental: bool = True,
) -> Callable[[], SyncOutput]:
    """A function that builds the sync `job` of `cohort` when called (in a thread: it reads
    the state as it is then, and any write of the cohort meanwhile raises) and keeps its rows
    for the rule's next sync. `incremental` False: always from every member."""
    rule = job.rule
    assert isinstance(rule, SyncRule)
    spec = SyncSpec(
        project_id=settings.project_id,
        destination=settings.destinations[rule.destination],
        rule=rule,
        cohort_id=job.cohort_id,
        sync_time=job.sync_time,
        position=position,
    )

    def build() -> SyncOutput:
        cohort.building += 1  # every write of the cohort refuses meanwhile (`writable`)
        try:
            built = None
            last = cohort.synced.get(rule.rule_id) if incremental else None
            if last is not None and last.sync_time == job.previous:
                changed = cohort.changed_since(last.sync_time)
                diff = diff_cohort(cohort.members, job.sync_time, job.previous, changed)
                built = build_next_sync(spec, last, changed, diff)
            if built is None:  # from every member: their columns
                columns = diff_columns(cohort.members, job.sync_time, job.previous)
                built = build_sync_from_columns(spec, job.previous, columns)
            output, cohort.synced[rule.rule_id] = built
            return output
        finally:
            cohort.building -= 1

    return build
