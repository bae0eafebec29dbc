"""The exit queue, the too-late bound and the verdict on one member (pure)."""

from __future__ import annotations

from array import array

from stream.domain.membership import Member, Snapshot
from stream.domain.retention import ExitQueue, too_late_before, verdict


def test_the_queue_gives_the_exits_older_than_the_bound_from_the_front() -> None:
    queue = ExitQueue()
    for time, amplitude_id in [(10, 1), (20, 2), (15, 3), (40, 4)]:
        queue.add(time, amplitude_id)
    assert queue.take_before(16) == [1]  # 3 is older, but waits behind 2
    assert queue.take_before(30) == [2, 3]
    queue.held.append(9)
    assert queue.take_before(30) == [9]  # held ones are asked again at every pass
    assert len(queue) == 1 and queue.take_before(41) == [4] and len(queue) == 0


def test_a_sorted_queue_gives_every_old_exit_at_once() -> None:
    queue = ExitQueue()
    for time, amplitude_id in [(20, 2), (10, 1), (40, 4), (15, 3)]:
        queue.add(time, amplitude_id)
    queue.sort()
    assert queue.take_before(30) == [1, 3, 2]


def _pairs(*pairs: tuple[int, int]) -> bytes:
    return array("q", [value for pair in pairs for value in pair]).tobytes()


def test_exits_added_in_bulk_queue_as_those_added_one_by_one() -> None:
    one_by_one, bulk = ExitQueue(), ExitQueue()
    exits = [(10, 1), (20, 2), (15, 3), (40, 4)]
    for time, amplitude_id in exits:
        one_by_one.add(time, amplitude_id)
    bulk.add(10, 1)
    bulk.add_pairs(_pairs(*exits[1:]))
    for queue in (one_by_one, bulk):
        assert len(queue) == 4
        assert queue.take_before(16) == [1] and queue.take_before(30) == [2, 3]
    bulk.add_pairs(b"")
    assert len(bulk) == 1


def test_a_sort_orders_whatever_was_not_added_in_order() -> None:
    """An ordered bulk into an empty queue needs no sort; anything added after it, or out of
    order with it, does."""
    after_one = ExitQueue()
    after_one.add_pairs(_pairs((10, 1), (20, 2)), ordered=True)
    after_one.add(5, 9)
    behind = ExitQueue()
    behind.add_pairs(_pairs((10, 1), (20, 2)), ordered=True)
    behind.add_pairs(_pairs((5, 9), (30, 3)), ordered=True)
    unordered = ExitQueue()
    unordered.add_pairs(_pairs((20, 2), (5, 9), (10, 1)))
    for queue in (after_one, behind, unordered):
        queue.sort()
        assert queue.take_before(25) == [9, 1, 2]
    in_order = ExitQueue()
    in_order.add_pairs(_pairs((5, 9), (10, 1)), ordered=True)
    in_order.add_pairs(_pairs((10, 2), (30, 3)), ordered=True)
    in_order.sort()
    assert in_order.take_before(31) == [9, 1, 2, 3]


def test_the_bound_needs_a_decided_watermark_and_a_retention() -> None:
    assert too_late_before(None, 5) is None
    assert too_late_before(100, None) is None
    assert too_late_before(100, 30) == 70


def snapshot(time: int, enter: bool, visible: int | None = None) -> Snapshot:
    return Snapshot.of_event(
        (time, time, 0), time if visible is None else visible, enter, "u", None, None
    )


def test_the_verdict_forgets_only_an_old_exit_no_sync_can_still_see() -> None:
    exited = Member([snapshot(10, True), snapshot(20, False)])
    assert verdict(exited, before=30, horizon=25) == "forget"
    assert verdict(exited, before=20, horizon=25) == "keep"  # the exit is not old enough
    assert verdict(exited, before=30, horizon=15) == "hold"  # a pending sync reads it
    back = Member([snapshot(10, False), snapshot(20, True)])
    assert verdict(back, before=30, horizon=25) == "keep"
    late = Member([snapshot(10, True), snapshot(20, False, visible=28)])
    assert verdict(late, before=30, horizon=25) == "hold"
