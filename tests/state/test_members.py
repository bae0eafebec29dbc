"""A cohort's members as a base of columns and a delta: whatever is added, changed, frozen,
removed and folded, they read as a dict of the same members would."""

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.domain.membership import Member
from stream.state import members as members_module
from stream.state.members import Members
from stream.state.packed import pack, unpack
from tests.state.test_packed import fields, one_event

ids = st.integers(0, 40)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("add"), ids, st.integers(1, 50)),
        st.tuples(st.just("hot"), ids, st.integers(1, 50)),
        st.tuples(st.just("freeze"), ids, st.just(0)),
        st.tuples(st.just("remove"), ids, st.just(0)),
        st.tuples(st.just("fold"), st.just(0), st.just(0)),
        st.tuples(st.just("bulk"), ids, st.integers(1, 5)),
        st.tuples(st.just("fresh"), ids, st.integers(1, 8)),
    ),
    max_size=60,
)


def packed_run(first: int, count: int, at: int) -> tuple[np.ndarray, pa.Array]:
    """`count` members from id `first` down (unsorted, as a caller may give them)."""
    chosen = list(range(first, max(first - count, -1), -1))
    packed = [pack(one_event(at, "bulk")) for _ in chosen]
    return np.array(chosen, dtype=np.int64), pa.array(packed, type=pa.binary())


def check(members: Members, model: dict[int, Member]) -> None:
    assert len(members) == len(model)
    assert sorted(members) == sorted(model)
    assert {a: fields(m) for a, m in members.items()} == {a: fields(m) for a, m in model.items()}
    for amplitude_id in range(0, 41):
        assert (amplitude_id in members) == (amplitude_id in model)
        found = members.get(amplitude_id)
        expected = model.get(amplitude_id)
        assert (found is None) == (expected is None)
        if found is not None and expected is not None:
            assert fields(found) == fields(expected)
            assert members.bundle_of(amplitude_id) == expected.bundle
    ids, packed, objects = members.columns()  # what a sync is built from
    assert ids.tolist() == sorted(set(ids.tolist()))
    assert sorted([*ids.tolist(), *objects]) == sorted(model)
    for amplitude_id, as_bytes in zip(ids.tolist(), packed.to_pylist(), strict=True):
        assert fields(unpack(as_bytes)) == fields(model[amplitude_id])
    assert {a: fields(m) for a, m in objects.items()} == {a: fields(model[a]) for a in objects}


@settings(max_examples=300)
@given(operations, st.sampled_from([0, 1, 3]))
def test_members_read_as_a_dict_of_the_same_members(
    steps: list[tuple[str, int, int]], min_fold: int
) -> None:
    old = members_module._MIN_FOLD
    members_module._MIN_FOLD = min_fold  # fold often: every path through the layers
    try:
        members, model = Members(), {}
        for kind, amplitude_id, at in steps:
            if kind == "add":
                member = one_event(at, "pro")
                member.bundle = at % 3 or None
                members.add(amplitude_id, member)
                model[amplitude_id] = one_event(at, "pro")
                model[amplitude_id].bundle = member.bundle
            elif kind == "hot":
                hot = members.hot(amplitude_id)
                assert (hot is None) == (amplitude_id not in model)
                if hot is not None:  # changed in place, as an event changes it
                    hot.bundle = at
                    model[amplitude_id].bundle = at
            elif kind == "freeze":
                members.freeze(amplitude_id)
            elif kind == "remove":
                if amplitude_id in model:
                    members.remove(amplitude_id)
                    del model[amplitude_id]
            elif kind == "fold":
                members.fold()
            elif kind == "fresh":  # those in neither layer, added packed
                chosen, packed = packed_run(amplitude_id, at, 98)
                untouched = members.untouched(chosen)
                assert not any(one in model for one in chosen[untouched].tolist())
                members.add_fresh(chosen[untouched], packed.filter(pa.array(untouched)))
                for one in chosen[untouched].tolist():
                    model[one] = one_event(98, "bulk")
            elif not len(members):  # bulk: only into an empty cohort, or beside others
                chosen, packed = packed_run(amplitude_id, at, 99)
                members.add_packed(chosen, packed)
                for one in chosen.tolist():
                    model[one] = one_event(99, "bulk")
            check(members, model)
    finally:
        members_module._MIN_FOLD = old


def test_packed_members_are_folded_into_the_base_and_reads_find_them_there() -> None:
    members = Members()
    chosen, packed = packed_run(9999, 10_000, 5)
    members.add_packed(chosen, packed)
    assert len(members._layers.ids) == 10_000 and not members._layers.delta
    for amplitude_id in range(20_000, 20_000 + 5000):  # past the fold threshold
        members.add(amplitude_id, one_event(7, "pro"))
        members.freeze(amplitude_id)
    assert len(members._layers.ids) > 10_000  # folded
    assert len(members) == 15_000
    assert fields(members[20_001]) == fields(one_event(7, "pro"))
    assert fields(members[3]) == fields(one_event(5, "bulk"))


def test_a_reader_that_took_the_layers_before_a_fold_reads_the_same_members() -> None:
    members = Members()
    for amplitude_id in range(1, 6):
        members.add(amplitude_id, one_event(10 * amplitude_id, "pro"))
        members.freeze(amplitude_id)
    reading = members.items()  # a build in a thread: it takes the layers as it starts
    first = next(reading)
    members.fold()  # meanwhile, on the loop's thread
    members.add(6, one_event(60, "free"))
    seen = dict([first, *reading])
    assert sorted(seen) == [1, 2, 3, 4, 5]
    assert all(fields(seen[a]) == fields(one_event(10 * a, "pro")) for a in seen)
    assert sorted(members) == [1, 2, 3, 4, 5, 6]
