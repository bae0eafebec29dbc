"""A cohort's members as a base of columns and a delta: whatever is added, changed, frozen,
removed and folded, they read as a dict of the same members would."""

import numpy as np
import pyarrow as pa
import pytest
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
@given(operations, st.sampled_from([0, 1, 3]), st.sampled_from([members_module._BINARY_LIMIT, 200]))
def test_members_read_as_a_dict_of_the_same_members(
    steps: list[tuple[str, int, int]], min_fold: int, binary_limit: int
) -> None:
    old = members_module._MIN_FOLD, members_module._BINARY_LIMIT
    members_module._MIN_FOLD = min_fold  # fold often: every path through the layers
    members_module._BINARY_LIMIT = binary_limit  # 200: a few members, then large_binary
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
        members_module._MIN_FOLD, members_module._BINARY_LIMIT = old


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


def test_the_base_keeps_4_byte_offsets_while_its_bytes_fit_in_them() -> None:
    members = Members()
    chosen, packed = packed_run(999, 1000, 5)
    members.add_packed(chosen, packed.cast(pa.large_binary()))
    assert members._layers.packed.type == pa.binary()  # 4 bytes a member less
    for amplitude_id in range(2000, 2300):  # past the fold threshold
        members.add(amplitude_id, one_event(7, "pro"))
        members.freeze(amplitude_id)
    assert len(members._layers.ids) > 1000  # folded
    assert members._layers.packed.type == pa.binary()
    assert members.columns()[1].type == pa.binary()
    assert fields(members[2001]) == fields(one_event(7, "pro"))


def test_a_slice_of_bytes_past_the_limit_is_copied_into_4_byte_offsets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A partition's rebuilt members come as one large_binary array; a cohort's run far
    into it has offsets past the limit although its own bytes fit."""
    chosen, packed = packed_run(99, 100, 5)
    whole = pa.concat_arrays([packed, packed]).cast(pa.large_binary())
    monkeypatch.setattr(members_module, "_BINARY_LIMIT", packed.nbytes)
    members = Members()
    members.add_packed(chosen, whole.slice(100))
    assert members._layers.packed.type == pa.binary()
    assert members._layers.packed.offset == 0
    assert fields(members[42]) == fields(one_event(5, "bulk"))
    assert len(members) == 100


def test_a_base_past_the_limit_keeps_8_byte_offsets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(members_module, "_BINARY_LIMIT", 1000)
    members = Members()
    chosen, packed = packed_run(99, 100, 5)
    members.add_packed(chosen, packed.cast(pa.large_binary()))  # a binary one fits by its type
    assert members._layers.packed.type == pa.large_binary()
    members.add(500, one_event(7, "pro"))
    members.freeze(500)
    members.fold()
    assert members._layers.packed.type == pa.large_binary()
    assert sorted(members)[-1] == 500 and len(members) == 101
    assert fields(members[500]) == fields(one_event(7, "pro"))
