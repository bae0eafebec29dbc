"""In-order delivery: nothing skipped, nothing handled twice, real holes accepted."""

from hypothesis import given
from hypothesis import strategies as st

from stream.engine.delivery import InOrderDelivery, Released


def started(at: int | None = 0) -> InOrderDelivery[str]:
    delivery: InOrderDelivery[str] = InOrderDelivery(confirmations=2)
    delivery.start("p", at)
    return delivery


def test_records_in_order_are_released_at_once() -> None:
    delivery = started()
    assert delivery.offer("p", 0, "a") == Released(["a"])
    assert delivery.offer("p", 1, "b") == Released(["b"])
    assert delivery.next_offset("p") == 2


def test_a_skipped_record_holds_its_successors_and_asks_for_a_rewind() -> None:
    delivery = started()
    delivery.offer("p", 0, "a")
    assert delivery.offer("p", 2, "c") == Released(rewind_to=1)
    assert delivery.offer("p", 3, "d") == Released()  # the rest of the stale batch
    assert delivery.held() == ["c", "d"]
    assert delivery.offer("p", 1, "b") == Released(["b", "c", "d"])
    assert delivery.offer("p", 2, "c2") == Released(duplicates=["c2"])
    assert delivery.held() == []


def test_records_before_the_start_are_held_until_it() -> None:
    delivery: InOrderDelivery[str] = InOrderDelivery()
    assert delivery.offer("p", 6, "g") == Released()
    assert delivery.offer("p", 4, "e") == Released()
    assert delivery.start("p", 5) == ["e"]  # handled before: a duplicate
    assert delivery.held() == ["g"]
    assert delivery.offer("p", 5, "f") == Released(["f", "g"])


def test_a_hole_that_every_rewind_brings_back_is_accepted_as_absent() -> None:
    delivery = started(10)
    assert delivery.offer("p", 12, "m") == Released(rewind_to=10)
    assert delivery.offer("p", 12, "m2") == Released(rewind_to=10)
    assert delivery.offer("p", 12, "m3") == Released(["m"], ["m2", "m3"], absent=(10, 12))
    assert delivery.offer("p", 13, "n") == Released(["n"])


def test_unknown_start_begins_at_the_lowest_record_delivered() -> None:
    delivery: InOrderDelivery[str] = InOrderDelivery()
    delivery.offer("p", 8, "i")
    delivery.offer("p", 7, "h")
    delivery.start("p", None)
    assert delivery.offer("p", 9, "j") == Released(["h", "i", "j"])


def test_a_later_start_never_moves_back_over_handled_records() -> None:
    delivery = started()
    delivery.offer("p", 0, "a")
    delivery.offer("p", 1, "b")
    delivery.start("p", 1)  # the commit lags what this process handled
    assert delivery.offer("p", 1, "b2") == Released(duplicates=["b2"])


def test_partitions_are_independent_and_forget_returns_what_was_held() -> None:
    delivery = started()
    delivery.start("q", 0)
    delivery.offer("p", 1, "x")
    assert delivery.offer("q", 0, "y") == Released(["y"])
    assert delivery.revoke("p") == ["x"]
    assert delivery.held() == []


@given(st.lists(st.integers(min_value=0, max_value=30), max_size=200))
def test_whatever_the_delivery_order_each_offset_is_handled_once_in_order(
    deliveries: list[int],
) -> None:
    """Replays the consumer: records arrive in any order with repeats; a rewind re-sends
    from the offset asked for. Offsets are released in order, each once, none skipped."""
    delivery: InOrderDelivery[int] = InOrderDelivery(confirmations=10**9)
    delivery.start("p", 0)
    handled: list[int] = []
    queue = list(deliveries)
    for _ in range(2000):
        if not queue:
            break
        offset = queue.pop(0)
        released = delivery.offer("p", offset, offset)
        handled.extend(released.records)
        if released.rewind_to is not None:
            queue = list(range(released.rewind_to, 31)) + queue
    assert handled == list(range(len(handled)))


def test_a_partition_revoked_and_assigned_again_is_another_tenure() -> None:
    delivery: InOrderDelivery[str] = InOrderDelivery()
    assert delivery.tenure("p") is None  # not ours
    delivery.start("p", 0)
    first = delivery.tenure("p")
    delivery.offer("p", 0, "r0")
    assert delivery.tenure("p") == first  # records do not change it
    delivery.revoke("p")
    assert delivery.tenure("p") is None
    delivery.start("p", 1)  # ours again: a record handled under `first` is not ours to ack
    assert delivery.tenure("p") not in (None, first)
