"""What a restart reads back: a partition's metadata, cohorts and members from the table."""

from __future__ import annotations

from typing import Any

from stream.domain.events import MembershipEvent
from stream.state import codec
from stream.state.partition import PartitionState, PendingSync
from stream.state.stored import load_partition, partition_meta
from tests.scenario import JAN5, MIN, H


def test_an_empty_table_gives_an_empty_partition() -> None:
    loaded = load_partition({}, 0)
    assert loaded.state.cohorts == {} and loaded.state.emitted_through is None
    assert loaded.due is None and loaded.next_offset is None


def test_the_metadata_and_the_members_come_back_for_their_own_partition_only() -> None:
    store: dict[str, Any] = {}
    state = PartitionState(emitted_through=JAN5 + H, rule_starts={"r": JAN5})
    state.add_pending([PendingSync("r", "c1", JAN5 + H, None, "in", 4)])
    store[codec.partition_key(0)] = partition_meta(state, next_offset=5, due=None)
    store[codec.cohort_key(0, "c1")] = codec.encode_json({"first": JAN5})
    written = PartitionState()
    written.apply([MembershipEvent("c1", 7, "u7", True, JAN5 + MIN)], 3, None)
    member = written.cohorts["c1"].members.hot(7)
    store[codec.bundle_key(0, 0)] = codec.encode_bundle([("c1", 7, member)])
    store[codec.cohort_key(1, "c9")] = codec.encode_json({"first": JAN5})  # another partition

    loaded = load_partition(store, 0)
    assert loaded.next_offset == 5
    assert loaded.state.emitted_through == JAN5 + H
    assert loaded.state.rule_starts == {"r": JAN5}
    assert [p.key for p in loaded.state.pending] == [("r", "c1", JAN5 + H)]
    assert set(loaded.state.cohorts) == {"c1"}
    restored = loaded.state.cohorts["c1"].members.get(7)
    assert restored is not None and restored.history[-1].user_id == "u7"


def test_syncs_an_older_version_found_due_keep_their_input_position() -> None:
    state = PartitionState(emitted_through=JAN5)
    state.observe(JAN5 + 2 * H, 0)
    meta = codec.decode_json(partition_meta(state, next_offset=9, due=("in", 8)))
    assert meta["due"] == ["in", 8] and meta["watermark"] == JAN5 + 2 * H
    loaded = load_partition({codec.partition_key(0): codec.encode_json(meta)}, 0)
    assert loaded.due == ("in", 8)
    assert loaded.state.watermark == JAN5 + 2 * H


def test_a_member_of_the_per_member_format_is_read_and_bundled() -> None:
    written = PartitionState()
    written.apply([MembershipEvent("c1", 3, None, True, JAN5)], 0, None)
    member = written.cohorts["c1"].members.hot(3)
    assert member is not None
    store: dict[str, Any] = {codec.member_key(0, "c1", 3): codec.encode_member(member)}
    loaded = load_partition(store, 0)
    assert 3 in loaded.state.cohorts["c1"].members
    loaded.journal.flush()
    assert list(store) == [codec.bundle_key(0, 0)]
