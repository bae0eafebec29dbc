"""A handled record is released for acknowledgement only once the table holds its changes."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from stream.engine.acknowledgement import Acknowledgements
from tests.engine.fakes import Journals


def test_a_record_that_left_nothing_unwritten_is_released_at_once() -> None:
    journals = Journals()
    acks: Acknowledgements[str] = Acknowledgements(journals)
    assert acks.handled("in", 0, "r1", now=0.0) == ["r1"]
    assert journals.flushed == []


def test_records_wait_for_the_flush_then_go_together_in_order() -> None:
    journals = Journals()
    acks: Acknowledgements[str] = Acknowledgements(journals, flush_after_s=0.25)
    journals.dirty.add(0)
    assert acks.handled("in", 0, "r1", now=10.0) == []
    assert acks.handled("in", 0, "r2", now=10.1) == []
    assert acks.dirty_partitions() == [0]
    assert acks.handled("in", 0, "r3", now=10.3) == ["r1", "r2", "r3"]  # oldest waited 0.3 s
    assert journals.flushed == [0]
    assert acks.dirty_partitions() == []


def test_a_flush_by_size_releases_the_waiting_records_with_the_next_one() -> None:
    journals = Journals()
    acks: Acknowledgements[str] = Acknowledgements(journals)
    journals.dirty.add(1)
    assert acks.handled("in", 1, "r1", now=0.0) == []
    journals.dirty.discard(1)  # the journal flushed by itself
    assert acks.handled("in", 1, "r2", now=0.01) == ["r1", "r2"]
    assert journals.flushed == []


def test_a_revoked_partition_gives_up_its_waiting_records_of_that_topic_only() -> None:
    journals = Journals()
    acks: Acknowledgements[str] = Acknowledgements(journals)
    journals.dirty.add(2)
    acks.handled("in", 2, "a", now=0.0)
    acks.handled("by-cohort", 2, "b", now=0.0)
    assert acks.revoke("in", 2) == ["a"]
    assert acks.dirty_partitions() == []
    assert acks.abandon_all() == ["b"]
    assert acks.abandon_all() == []


steps = st.lists(
    st.one_of(
        st.tuples(st.just("record"), st.integers(0, 2), st.booleans()),  # leaves changes?
        st.tuples(st.just("flush"), st.integers(0, 2), st.just(False)),
        st.tuples(st.just("wait"), st.just(0), st.just(False)),
    ),
    max_size=60,
)


@settings(max_examples=200)
@given(steps)
def test_nothing_is_released_while_its_partition_holds_unwritten_changes_and_nothing_twice(
    script: list[tuple[str, int, bool]],
) -> None:
    journals = Journals()
    acks: Acknowledgements[int] = Acknowledgements(journals, flush_after_s=0.25)
    now, released, handled = 0.0, [], []
    for number, (step, partition, leaves_changes) in enumerate(script):
        if step == "wait":
            now += 0.1
        elif step == "flush":
            journals.flush(partition)
        else:
            if leaves_changes:
                journals.dirty.add(partition)
            record = number * 3 + partition  # partition = record % 3
            handled.append(record)
            out = acks.handled("in", partition, record, now)
            assert not out or journals.durable(partition)
            released += out
    assert len(released) == len(set(released))
    waiting = acks.abandon_all()
    assert sorted(released + waiting) == sorted(handled)
    for partition in range(3):  # each partition's records in the order they were handled
        mine = [r for r in released if r % 3 == partition]
        assert mine == sorted(mine)
