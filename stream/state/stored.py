"""A partition's state in the membership table, both ways: what a restart reads back
(`load_partition`) and the partition's metadata record (`partition_meta`).

The table holds, per input partition, its metadata (`p␟partition`: the decided watermark,
the pending syncs, the rule starts, the input position), one key per cohort (its first event
time) and the journal's bundles of members (see `journal.py` and `codec.py`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

from stream.domain.membership import Member
from stream.domain.wording import count
from stream.state import codec
from stream.state.cohort import CohortState
from stream.state.journal import Journal
from stream.state.partition import PartitionState, PendingSync

__all__ = ["LoadedPartition", "load_partition", "partition_items", "partition_meta"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LoadedPartition:
    """`next_offset`: the input offset after the last record applied."""

    state: PartitionState
    journal: Journal
    next_offset: int | None


def load_partition(
    store: MutableMapping[str, Any],
    partition: int,
    *,
    items: Mapping[str, Any] | None = None,
    journal: bool = True,
    track_exits: bool = False,
) -> LoadedPartition:
    """Rebuild a partition from the table (empty when it holds nothing of it);
    `track_exits` as for `PartitionState`. With `items` (`partition_items`, taken before)
    it reads only those and writes nothing, so it may run in a thread while the store
    changes: `store` is then only where its journal writes from its first flush on."""
    if items is None:
        items = partition_items(store, partition)
    stored_meta = items.get(codec.partition_key(partition))
    meta = codec.decode_json(stored_meta) if stored_meta else {}
    pending = [PendingSync.from_json(item) for item in meta.get("pending", [])]
    state = PartitionState(meta.get("emitted"), meta.get("rules"), pending, track_exits=track_exits)
    members = Journal(
        partition, store, _PartitionMembers(state), enabled=journal, forgetting=track_exits
    )
    bundles: list[tuple[int, bytes]] = []
    for key, value in items.items():
        kind, _, rest = codec.parse_key(key)
        if kind == "c":
            state.add_cohort(rest[0], codec.decode_json(value)["first"])
        elif kind == "b":
            bundles.append((int(rest[0]), value))
    rows = members.load(bundles)
    for cohort_id, start, stop in rows.runs:
        _cohort(state, cohort_id).restore_packed(
            rows.amplitude_id[start:stop],
            rows.packed[start:stop],
            rows.visible[start:stop],
            rows.time[start:stop],
            rows.enter[start:stop],
        )
    for cohort_id, amplitude_id, member in rows.objects:
        _cohort(state, cohort_id).restore(amplitude_id, member)
    for cohort in state.cohorts.values():
        if cohort.exits is not None:
            cohort.exits.sort()
    if state.cohorts:
        log.info(
            "partition %d: rebuilt %s from the table",
            partition,
            count(len(state.cohorts), "cohort"),
        )
    return LoadedPartition(state, members, meta.get("offset"))


def partition_items(store: Mapping[str, Any], partition: int) -> dict[str, Any]:
    """The table's keys and values of `partition` (a copy: its values are immutable bytes)."""
    found = {}
    for key, value in list(store.items()):
        if value is not None and codec.parse_key(key)[1] == partition:
            found[key] = value
    return found


def partition_meta(state: PartitionState, *, next_offset: int | None) -> bytes:
    """The partition's metadata record (write it only after flushing its journal)."""
    return codec.encode_json(
        {
            "pending": [sync.to_json() for sync in state.pending],
            "emitted": state.emitted_through,
            "watermark": state.watermark,
            "rules": dict(sorted(state.rule_starts.items())),
            "offset": next_offset,
        }
    )


def _cohort(state: PartitionState, cohort_id: str) -> CohortState:
    cohort = state.cohorts.get(cohort_id)
    return cohort if cohort is not None else state.add_cohort(cohort_id, 0)


class _PartitionMembers:
    """The partition's members as its journal reads them (`journal.MemberIndex`)."""

    def __init__(self, state: PartitionState) -> None:
        self._cohorts = state.cohorts

    def hot(self, cohort_id: str, amplitude_id: int) -> Member | None:
        cohort = self._cohorts.get(cohort_id)
        return None if cohort is None else cohort.members.hot(amplitude_id)

    def bundle_of(self, cohort_id: str, amplitude_id: int) -> int | None:
        cohort = self._cohorts.get(cohort_id)
        return None if cohort is None else cohort.members.bundle_of(amplitude_id)

    def freeze(self, cohort_id: str, amplitude_id: int, packed: bytes | None = None) -> None:
        cohort = self._cohorts.get(cohort_id)
        if cohort is not None:
            cohort.members.freeze(amplitude_id, packed)
