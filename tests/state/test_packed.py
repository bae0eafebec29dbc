"""Members packed into bytes: unpacked, each is the member it was; only what the journal has
written is packed; a processor keeps its written members packed."""

import asyncio
import json
import math
from typing import Any

import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st

from stream.domain.events import MAX_TIME_MS, MIN_TIME_MS
from stream.domain.membership import Member, Snapshot
from stream.domain.partitioner import partition_for
from stream.engine.processor import Processor
from stream.state.members import Members
from stream.state.packed import pack, unpack
from stream.state.packed_rows import pack_rows
from tests.engine.test_incremental import SETTINGS, Collect

values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True),
    st.text(max_size=300),
    st.lists(st.integers(), max_size=2),
)


def snapshots() -> st.SearchStrategy[Snapshot]:
    stamps = st.tuples(
        st.integers(-(2**63), 2**63), st.integers(-1, 2**40), st.integers(0, 2**32 - 1)
    )
    return st.builds(
        lambda stamp, late, enter, user_id, properties, app_id: Snapshot.of_event(
            stamp, stamp[0] + late, enter, user_id, properties, app_id
        ),
        stamps,
        st.sampled_from([0, 0, 1, 3_600_000]),
        st.booleans(),
        st.one_of(st.none(), st.text(max_size=20)),
        st.one_of(st.none(), st.dictionaries(st.text(max_size=8), values, max_size=4)),
        st.one_of(st.none(), st.integers(1, 5)),
    )


def fields(member: Member) -> list[Any]:
    """Everything a member holds, floats by their text (-0.0 is not 0.0, nan is nan)."""

    def exact(value: Any) -> Any:
        return repr(value) if isinstance(value, float) else (type(value), value)

    return [member.bundle] + [
        (
            s.stamp,
            s.visible,
            s.enter,
            s.user_id,
            s.user_stamp,
            sorted(
                ((key, exact(value), stamp) for key, (value, stamp) in s.properties.items()),
                key=repr,
            ),
        )
        for s in member.history
    ]


def fits(value: int, bits: int = 64) -> bool:
    return -(2 ** (bits - 1)) <= value < 2 ** (bits - 1)


def packs(snapshot: Snapshot) -> bool:
    """What `pack` must accept: properties set by one event, values of JSON's scalar types,
    numbers within 64 bits."""
    values = [value for value, _ in snapshot.properties.values()]
    stamps = {stamp for _, stamp in snapshot.properties.values()}
    return (
        len(stamps) <= 1
        and all(not isinstance(value, list) for value in values)
        and all(fits(value) for value in values if type(value) is int)
        and all(fits(part) for stamp in (snapshot.stamp, snapshot.user_stamp) for part in stamp)
        and all(fits(part) for stamp in stamps for part in stamp)
        and fits(snapshot.visible)
    )


@given(st.lists(snapshots(), min_size=1, max_size=3), st.one_of(st.none(), st.integers(0, 2**31)))
def test_a_packed_member_unpacks_to_the_same_member(
    history: list[Snapshot], bundle: int | None
) -> None:
    member = Member()
    for snapshot in history:
        member.apply(snapshot, None)
    member.compact(2**64)  # several events folded into one snapshot: fields of several stamps
    member.bundle = bundle if bundle is None or bundle < 2**31 else None
    packed = pack(member)
    assert (packed is not None) == packs(member.history[0])
    if packed is not None:
        assert fields(unpack(packed)) == fields(member)


def test_floats_keep_their_sign_and_nan_its_nan() -> None:
    properties = {"a": -0.0, "b": math.nan, "c": math.inf, "d": 1e-300, "e": True, "f": 1}
    member = Member((Snapshot.of_event((1, 1, 0), 1, True, None, properties, None),))
    packed = pack(member)
    assert packed is not None
    assert fields(unpack(packed)) == fields(member)


def one_event(at: int, plan: str) -> Member:
    member = Member()
    member.apply(Snapshot.of_event((at, 7, 0), at, True, f"u{at}", {"plan": plan}, None), None)
    return member


def test_only_frozen_members_are_packed_and_reads_do_not_unpack_them_for_good() -> None:
    members = Members()
    members.add(1, one_event(10, "pro"))
    members.add(2, one_event(20, "free"))
    assert members.packed() == 0
    members.freeze(1)
    assert members.packed() == 1
    assert fields(members[1]) == fields(one_event(10, "pro"))
    assert members.get(1) is not members.get(1)  # an unpacked copy each time
    assert members.packed() == 1
    hot = members.hot(1)
    assert hot is members.hot(1) and members.packed() == 0


def test_a_member_with_several_snapshots_stays_objects() -> None:
    member = one_event(10, "pro")
    member.apply(Snapshot.of_event((20, 8, 0), 20, False, None, None, None), None)
    members = Members()
    members.add(1, member)
    members.freeze(1)
    assert members.packed() == 0 and members.hot(1) is member


def test_the_bundle_is_read_without_unpacking() -> None:
    members = Members()
    member = one_event(10, "pro")
    member.bundle = (1 << 20) + 3
    members.add(1, member)
    members.freeze(1)
    assert members.bundle_of(1) == (1 << 20) + 3 and members.packed() == 1
    assert members.bundle_of(2) is None


def test_a_processor_keeps_the_members_it_has_written_packed() -> None:
    processor = Processor(SETTINGS, {}, Collect(), partition_for)
    records = [
        json.dumps(
            {
                "cohort_id": "c2",
                "in_cohort": True,
                "computed_time": 1_767_571_200 + 60,
                "users": [{"amplitude_id": n, "user_properties": {"plan": "pro"}} for n in batch],
            }
        ).encode()
        for batch in (range(0, 1500), range(1500, 2000))
    ]

    async def run() -> None:
        for offset, record in enumerate(records):
            await processor.on_record(SETTINGS.kafka.topic, 0, offset, b"c2", record)

    asyncio.run(run())
    members = processor.partitions[0].cohorts["c2"].members
    assert len(members) == 2000
    assert members.packed() == 1500  # written in the first flush; the rest wait for the next
    processor.flush(0)
    assert members.packed() == 2000


def test_a_member_whose_events_were_folded_packs_again() -> None:
    member = one_event(10, "pro")  # entered with a user id and a plan
    member.apply(Snapshot.of_event((20, 8, 0), 20, False, None, None, None), None)  # exited
    member.compact(100)
    assert len(member.history) == 1 and isinstance(member.history[0].properties, dict)
    packed = pack(member)
    assert packed is not None
    assert fields(unpack(packed)) == fields(member)


@settings(max_examples=300)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["add", "apply", "freeze", "read"]),
            st.integers(0, 2),
            st.integers(1, 50),
        ),
        max_size=30,
    )
)
@example([("add", 1, 5), ("freeze", 1, 1), ("apply", 1, 10)])
def test_members_hold_what_a_dict_of_members_holds(operations: list[tuple[str, int, int]]) -> None:
    members, reference = Members(), {}
    for operation, amplitude_id, at in operations:
        if operation == "add" and amplitude_id not in reference:
            members.add(amplitude_id, one_event(at, f"p{at}"))
            reference[amplitude_id] = one_event(at, f"p{at}")
        elif operation == "apply" and amplitude_id in reference:
            event = Snapshot.of_event((at, at, 1), at, at % 2 == 0, None, {"n": at}, None)
            hot = members.hot(amplitude_id)
            assert hot is not None
            hot.apply(event, None)
            reference[amplitude_id].apply(event, None)
        elif operation == "freeze":
            members.freeze(amplitude_id)
        elif operation == "read" and amplitude_id in reference:
            packed = members.packed()
            assert fields(members[amplitude_id]) == fields(reference[amplitude_id])
            assert members.packed() == packed  # reading does not unpack for good
    assert sorted(members) == sorted(reference)
    assert {a: fields(m) for a, m in members.items()} == {
        a: fields(m) for a, m in reference.items()
    }


rows = st.lists(
    st.tuples(
        st.integers(MIN_TIME_MS, MAX_TIME_MS - 1),
        st.sampled_from([0, 7, 2**32 - 1, 2**32, 2**40]),
        st.sampled_from([0, 5, 2**16 - 1, 2**16, 2**20]),
        st.booleans(),
        st.one_of(st.none(), st.text(max_size=12)),
        st.one_of(st.none(), st.dictionaries(st.text(max_size=8), values, max_size=3)),
        st.one_of(st.none(), st.integers(1, 5)),
    ),
    min_size=1,
    max_size=8,
)


@given(rows)
@example([(MIN_TIME_MS, 0, 0, True, "\ud800", None, None)])  # a lone surrogate
def test_members_packed_in_bulk_are_the_bytes_pack_makes_of_each(
    events: list[tuple[int, int, int, bool, str | None, dict[str, Any] | None, int | None]],
) -> None:
    """Each row's stamp its own: narrow and wide heads side by side."""
    time, offset, index, enter, user_ids, properties, app_ids = (
        list(column) for column in zip(*events, strict=True)
    )
    packed, packs_at = pack_rows(
        time=np.array(time, dtype=np.int64),
        offset=np.array(offset, dtype=np.int64),
        index=np.array(index, dtype=np.int64),
        enter=np.array(enter, dtype=bool),
        user_ids=user_ids,
        properties=properties,
        app_ids=app_ids,
    )
    for at, (t, o, i, e, user_id, props, app_id) in enumerate(events):
        snapshot = Snapshot.of_event((t, o, i), t, e, user_id, props, app_id)
        expected = pack(Member((snapshot,)))
        assert bool(packs_at[at]) == (expected is not None)
        if expected is not None:
            assert packed[at].as_py() == expected
