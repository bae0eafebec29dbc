"""A journal bundle's bytes: members decode to what was encoded, and a partition's bundles
read back as each member's last version, packed as this process packs."""

from __future__ import annotations

import json
import zlib
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.domain.membership import Member, Snapshot
from stream.state import bundles
from stream.state.bundles import bundle_members, decode_bundle, encode_bundle, read_bundles
from stream.state.packed import pack
from tests.state.test_codec import snapshots, stamps


def member_of(*history: Snapshot) -> Member:
    member = Member()
    for snapshot in sorted(history, key=lambda s: s.stamp):
        member.apply(snapshot, None)
    return member


def event(time: int, enter: bool = True, **props: object) -> Snapshot:
    return Snapshot.of_event((time, 0, 0), time, enter, f"u{time}", props or None, None)


@settings(max_examples=200)
@given(st.lists(snapshots, min_size=1, max_size=4, unique_by=lambda s: s.stamp))
def test_a_bundle_decodes_to_what_was_encoded(history: list[Snapshot]) -> None:
    member = member_of(*history)
    bundle = encode_bundle([("c1", 5, member), ("c␟2", 6, member)], 7)
    decoded = decode_bundle(bundle)
    assert [(c, a) for c, a, _ in decoded] == [("c1", 5), ("c␟2", 6)]
    assert all(stamps(m) == stamps(member) for _, _, m in decoded)
    assert bundle_members(bundle) == [("c1", 5), ("c␟2", 6)]
    rows = read_bundles([(7, bundle)])
    assert sorted((c, a, stamps(m)) for c, a, m in rows.members()) == [
        ("c1", 5, stamps(member)),
        ("c␟2", 6, stamps(member)),
    ]
    assert all(m.bundle == 7 for _, _, m in rows.members())


def test_each_member_keeps_its_last_version_and_bundles_count_their_live_members() -> None:
    old = encode_bundle([("c", 1, member_of(event(10))), ("c", 2, member_of(event(11)))], 0)
    new = encode_bundle([("c", 2, member_of(event(20, enter=False)))], 1)
    other = encode_bundle([("d", 2, member_of(event(30)))], 2)
    rows = read_bundles([(2, other), (1, new), (0, old)])
    members = {(c, a): m for c, a, m in rows.members()}
    assert sorted(members) == [("c", 1), ("c", 2), ("d", 2)]
    assert members[("c", 2)].history[-1].enter is False  # the version of bundle 1
    assert members[("c", 2)].bundle == 1
    assert rows.size == {0: 2, 1: 1, 2: 1}
    assert rows.live == {0: 1, 1: 1, 2: 1}
    assert rows.shadows == {1: {0}}  # bundle 0 holds an older version of one of its members
    assert [run[0] for run in rows.runs] == ["c", "d"]
    run_c = rows.runs[0]
    assert rows.amplitude_id[run_c[1] : run_c[2]].tolist() == [1, 2]
    assert rows.enter[run_c[1] : run_c[2]].tolist() == [True, False]
    assert rows.time[run_c[1] : run_c[2]].tolist() == [10, 20]


def test_packed_rows_are_the_bytes_this_process_packs() -> None:
    member = member_of(event(10, plan="pro"))
    rows = read_bundles([(4, encode_bundle([("c", 1, member)], 4))])
    assert rows.packed.to_pylist() == [pack(member, 4)]
    assert rows.objects == []


def test_a_member_that_does_not_pack_comes_back_as_objects() -> None:
    member = member_of(event(10, plan="pro"), event(20, plan="team"))  # two snapshots
    assert pack(member) is None
    rows = read_bundles([(0, encode_bundle([("c", 1, member)], 0))])
    assert rows.packed.to_pylist() == [] and rows.runs == []
    [(cohort_id, amplitude_id, restored)] = rows.objects
    assert (cohort_id, amplitude_id, restored.bundle) == ("c", 1, 0)
    assert stamps(restored) == stamps(member)


def test_a_bundle_whose_key_table_this_process_cannot_adopt_is_read_with_its_own() -> None:
    """Another process numbered its property keys otherwise: its packed bytes are read with
    its table, not this process's."""
    member = member_of(event(10, zz_first="a", zz_second="b"))
    bundle = encode_bundle([("c", 1, member)], 0)
    with pa.ipc.open_stream(bundle) as reader:
        table = reader.read_all()
    keys = json.loads(zlib.decompress(table.schema.metadata[b"keys"]))
    first, second = keys.index(["zz_first", None]), keys.index(["zz_second", None])
    keys[first], keys[second] = keys[second], keys[first]  # the other process's numbering
    table = table.replace_schema_metadata({b"keys": zlib.compress(json.dumps(keys).encode())})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    rows = read_bundles([(0, sink.getvalue().to_pybytes())])
    assert rows.packed.to_pylist() == []
    [(_, _, restored)] = rows.objects
    assert dict(restored.history[-1].properties) == {
        ("zz_first", None): ("b", (10, 0, 0)),
        ("zz_second", None): ("a", (10, 0, 0)),
    }


def test_past_max_table_keys_members_are_stored_as_json_and_read_back_the_same(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(bundles, "MAX_TABLE_KEYS", 0)  # this process has numbered more
    member = member_of(event(10, plan="pro"))
    value = encode_bundle([("c", 1, member)], 3)
    with pa.ipc.open_stream(value) as reader:
        table = reader.read_all()
    assert table.column("packed").null_count == 1
    [(_, _, restored)] = read_bundles([(3, value)]).objects
    assert stamps(restored) == stamps(member) and restored.bundle == 3


@settings(max_examples=100)
@given(
    st.lists(
        st.lists(
            st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(0, 6), st.booleans()),
            min_size=1,
            max_size=6,
            unique_by=lambda row: row[:2],
        ),
        min_size=1,
        max_size=6,
    ),
    st.randoms(use_true_random=False),
)
def test_reading_bundles_keeps_what_replaying_them_in_order_keeps(
    written: list[list[tuple[str, int, bool]]], shuffle: Any
) -> None:
    """The model: replay the bundles oldest first, each member's later version replacing
    the earlier (what the journal's load did one member at a time)."""
    values = []
    latest: dict[tuple[str, int], tuple[int, bool]] = {}
    live: dict[int, int] = {}
    shadows: dict[int, set[int]] = {}
    for seq, bundle in enumerate(written):
        values.append(
            (
                seq,
                encode_bundle(
                    [(c, a, member_of(event(seq, enter))) for c, a, enter in bundle], seq
                ),
            )
        )
        live[seq] = 0
        for cohort_id, amplitude_id, enter in bundle:
            older = latest.get((cohort_id, amplitude_id))
            if older is not None:
                shadows.setdefault(seq, set()).add(older[0])
            latest[(cohort_id, amplitude_id)] = (seq, enter)
    for seq, _ in latest.values():
        live[seq] += 1
    shuffle.shuffle(values)  # the store's order is not the bundles' order
    read = read_bundles(values)
    assert {(c, a): (m.bundle, m.history[-1].enter) for c, a, m in read.members()} == latest
    assert read.live == live
    assert read.shadows == shadows
    assert read.size == {seq: len(bundle) for seq, bundle in enumerate(written)}
    for cohort_id, start, stop in read.runs:  # each cohort's rows, by amplitude id
        assert [cohort_id] * (stop - start) == [c for c, _, _ in list(read.members())[start:stop]]
        assert read.amplitude_id[start:stop].tolist() == sorted(read.amplitude_id[start:stop])
