"""What a restart reads back: a partition's metadata, cohorts and members from the table."""

from __future__ import annotations

from typing import Any

from stream.domain.events import MembershipEvent
from stream.state import codec
from stream.state.bundles import encode_bundle
from stream.state.partition import PartitionState, PendingSync
from stream.state.stored import load_partition, partition_meta
from tests.scenario import JAN5, MIN, H


def test_an_empty_table_gives_an_empty_partition() -> None:
    loaded = load_partition({}, 0)
    assert loaded.state.cohorts == {} and loaded.state.emitted_through is None
    assert loaded.next_offset is None


def test_the_metadata_and_the_members_come_back_for_their_own_partition_only() -> None:
    store: dict[str, Any] = {}
    state = PartitionState(emitted_through=JAN5 + H, rule_starts={"r": JAN5})
    state.add_pending([PendingSync("r", "c1", JAN5 + H, None, "in", 4)])
    store[codec.partition_key(0)] = partition_meta(state, next_offset=5)
    store[codec.cohort_key(0, "c1")] = codec.encode_json({"first": JAN5})
    written = PartitionState()
    written.apply([MembershipEvent("c1", 7, "u7", True, JAN5 + MIN)], 3, None)
    member = written.cohorts["c1"].members.hot(7)
    assert member is not None
    store[codec.bundle_key(0, 0)] = encode_bundle([("c1", 7, member)], 0)
    store[codec.cohort_key(1, "c9")] = codec.encode_json({"first": JAN5})  # another partition

    loaded = load_partition(store, 0)
    assert loaded.next_offset == 5
    assert loaded.state.emitted_through == JAN5 + H
    assert loaded.state.rule_starts == {"r": JAN5}
    assert [p.key for p in loaded.state.pending] == [("r", "c1", JAN5 + H)]
    assert set(loaded.state.cohorts) == {"c1"}
    restored = loaded.state.cohorts["c1"].members.get(7)
    assert restored is not None and restored.history[-1].user_id == "u7"


def test_a_restore_queues_the_exits_by_time_whatever_their_order_in_the_bundles() -> None:
    """A restart forgets exactly what the first run would: the exits old enough come off the
    front of the queue at once, not held back behind a newer one read before them."""
    written = PartitionState()
    exits = {7: 30, 3: 10, 9: 20, 5: 10}  # amplitude id: exit minute, in no order
    for amplitude_id, minute in exits.items():
        written.apply([MembershipEvent("c1", amplitude_id, None, True, JAN5)], 0, None)
        exit_event = MembershipEvent("c1", amplitude_id, None, False, JAN5 + minute * MIN)
        written.apply([exit_event], 1, JAN5 + H)  # folded: one snapshot, so packed
    written.apply([MembershipEvent("c1", 4, None, True, JAN5 + MIN)], 2, None)  # stays in
    bundled = []
    for amplitude_id in [*exits, 4]:
        member = written.cohorts["c1"].members.hot(amplitude_id)
        assert member is not None and len(member.history) == 1
        bundled.append(("c1", amplitude_id, member))
    store: dict[str, Any] = {
        codec.cohort_key(0, "c1"): codec.encode_json({"first": JAN5}),
        codec.bundle_key(0, 0): encode_bundle(bundled, 0),
    }

    queue = load_partition(store, 0, track_exits=True).state.cohorts["c1"].exits
    assert queue is not None and len(queue) == 4
    assert queue.take_before(JAN5 + 25 * MIN) == [3, 5, 9]  # by time, then by id
    assert queue.take_before(JAN5 + 31 * MIN) == [7]
