"""A cohort's diff at a sync time, from its members' columns: a vectorised filter of the
packed members (`packed_rows.decode_columns`), and the per-member diff only for the few
held as objects. The same rows as `membership.diff_cohort` gives for the same members."""

from __future__ import annotations

import numpy as np

from stream.domain.membership import diff_cohort
from stream.formats.columns import ColumnDiff, RowColumns
from stream.state.members import Members
from stream.state.packed import properties_of
from stream.state.packed_rows import decode_columns

__all__ = ["diff_columns"]


def diff_columns(members: Members, sync_time: int, previous: int | None) -> ColumnDiff:
    """entering, exiting and existing at `sync_time` after a sync at `previous` (None: the
    first sync), as `diff_cohort(members, sync_time, previous)`."""
    ids, packed, objects = members.columns()
    visible, enter, users, regions = decode_columns(packed)
    encoded = regions.dictionary_encode()
    rows = RowColumns(
        ids,
        users,
        encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64),
        [properties_of(region) for region in encoded.dictionary.to_pylist()],
    )
    # A packed member is one snapshot: seen at T when visible before T, present when it
    # entered; it was present at the previous sync when also visible before that. An exit
    # seen now was not present before (one snapshot), so no packed member exits.
    existing = (visible < sync_time) & enter
    before = (visible < previous) & enter if previous is not None else np.zeros_like(enter)
    held = diff_cohort(objects, sync_time, previous)
    return ColumnDiff(
        entering=rows.take(existing & ~before).merged(RowColumns.of_snapshots(held.entering)),
        exiting=RowColumns.of_snapshots(held.exiting),
        existing=rows.take(existing).merged(RowColumns.of_snapshots(held.existing)),
    )
