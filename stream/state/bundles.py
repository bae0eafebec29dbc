"""A journal bundle's bytes: the changed members of one flush as one Arrow IPC record batch.

One row a member: its cohort, amplitude id, and either its packed bytes (`packed.py`: one
snapshot, the usual case; their head names the bundle) or, for a member that does not
pack, its history as JSON (`codec.encode_history`). Beside them, the columns a restart needs
without unpacking a member: its newest snapshot's visible time, event time and presence.
The key table the packed bytes were made with (`packed.key_table`) is in the batch's
metadata, and the batch is compressed (zstd: members look alike). A process that has
numbered more than `MAX_TABLE_KEYS` property keys (input with ever new property names)
writes every member's history as JSON instead, so no bundle carries a large table.

So a restart reads a partition's bundles as columns (`read_bundles`), keeps each member's
last version with vectorised operations, and hands the packed bytes to the cohorts as they
are: no Python object is made per member, unless a bundle's key table disagrees with this
process's (then those members are unpacked with its table and packed again).
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from stream.domain.membership import Member, PropertyKey, shared
from stream.state import codec
from stream.state.packed import adopt_keys, key_table, pack, unpack

__all__ = [
    "BundleRows",
    "MAX_TABLE_KEYS",
    "encode_bundle",
    "encode_members",
    "decode_bundle",
    "bundle_members",
    "read_bundles",
]

#: The most property keys a bundle's key table lists: past it, members are stored as JSON.
MAX_TABLE_KEYS = 256

_SCHEMA = pa.schema(
    [
        ("cohort", pa.string()),
        ("amplitude_id", pa.int64()),
        ("packed", pa.binary()),
        ("history", pa.binary()),
        ("visible", pa.int64()),
        ("time", pa.int64()),
        ("enter", pa.bool_()),
    ]
)
_OPTIONS = pa.ipc.IpcWriteOptions(compression="zstd")
_KEYS_FIELD = b"keys"


def encode_bundle(members: Iterable[tuple[str, int, Member]], seq: int) -> bytes:
    """The members as bundle `seq`'s bytes (their packed bytes name `seq` as their bundle)."""
    return encode_members(members, seq)[0]


def encode_members(
    members: Iterable[tuple[str, int, Member]], seq: int
) -> tuple[bytes, list[bytes | None]]:
    """`encode_bundle`, with each member's packed bytes as the bundle holds them (None:
    stored as JSON), for the caller to keep."""
    rows = list(members)
    packed = [pack(member, seq) for _, _, member in rows]
    table = key_table()  # after packing: every key the members were packed with
    if len(table) > MAX_TABLE_KEYS:
        packed, table = [None] * len(rows), []
    latest = [member.history[-1] for _, _, member in rows]
    columns = [
        [cohort_id for cohort_id, _, _ in rows],
        [amplitude_id for _, amplitude_id, _ in rows],
        packed,
        [
            None if as_bytes is not None else codec.encode_history(member)
            for as_bytes, (_, _, member) in zip(packed, rows, strict=True)
        ],
        [snapshot.visible for snapshot in latest],
        [snapshot.stamp[0] for snapshot in latest],
        [snapshot.enter for snapshot in latest],
    ]
    keys = zlib.compress(json.dumps(table, separators=(",", ":")).encode())
    batch = pa.record_batch(columns, schema=_SCHEMA.with_metadata({_KEYS_FIELD: keys}))
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema, options=_OPTIONS) as writer:
        writer.write_batch(batch)
    return sink.getvalue().to_pybytes(), packed


def _read(value: bytes) -> tuple[pa.Table, list[PropertyKey]]:
    with pa.ipc.open_stream(value) as reader:
        table = reader.read_all()
    metadata = table.schema.metadata or {}
    listed = json.loads(zlib.decompress(metadata[_KEYS_FIELD])) if _KEYS_FIELD in metadata else []
    keys = [shared(name, app) for name, app in listed]
    return table, keys


def bundle_members(value: bytes) -> list[tuple[str, int]]:
    """Which members a bundle holds, without building them."""
    table, _ = _read(value)
    return list(
        zip(
            table.column("cohort").to_pylist(),
            table.column("amplitude_id").to_pylist(),
            strict=True,
        )
    )


def decode_bundle(value: bytes) -> list[tuple[str, int, Member]]:
    """Every member of a bundle, as objects (`Member.bundle` is the one packed bytes name)."""
    table, keys = _read(value)
    return [
        (cohort_id, amplitude_id, _member(as_bytes, history, keys))
        for cohort_id, amplitude_id, as_bytes, history in zip(
            table.column("cohort").to_pylist(),
            table.column("amplitude_id").to_pylist(),
            table.column("packed").to_pylist(),
            table.column("history").to_pylist(),
            strict=True,
        )
    ]


def _member(as_bytes: bytes | None, history: bytes | None, keys: Sequence[PropertyKey]) -> Member:
    if as_bytes is not None:
        return unpack(as_bytes, keys)
    assert history is not None
    return codec.decode_history(history)


@dataclass(frozen=True)
class BundleRows:
    """The last version of each member of a partition's bundles, as columns.

    `packed` rows hold bytes that mean the same in this process (`packed.adopt_keys`),
    ordered by cohort, then amplitude id: `runs` gives each cohort's (id, start, stop). The
    others (`objects`) were decoded: members that do not pack, and those of a bundle whose
    key table this process cannot adopt."""

    runs: list[tuple[str, int, int]]
    amplitude_id: np.ndarray
    packed: pa.LargeBinaryArray
    visible: np.ndarray
    time: np.ndarray
    enter: np.ndarray
    objects: list[tuple[str, int, Member]]
    size: dict[int, int]
    """Each bundle's row count."""
    live: dict[int, int]
    """Each bundle's count of members whose last version it holds."""
    shadows: dict[int, set[int]]
    """Per bundle: the bundles holding the version of one of its members just before it."""

    def members(self) -> Iterator[tuple[str, int, Member]]:
        """Every member as objects: (cohort, amplitude id, member), packed ones unpacked."""
        for cohort_id, start, stop in self.runs:
            for amplitude_id, as_bytes in zip(
                self.amplitude_id[start:stop].tolist(),
                self.packed[start:stop].to_pylist(),
                strict=True,
            ):
                yield cohort_id, amplitude_id, unpack(as_bytes)
        yield from self.objects


def read_bundles(bundles: Sequence[tuple[int, bytes]]) -> BundleRows:
    """Read `(seq, value)` bundles and keep each member's version of the highest `seq`."""
    tables: list[pa.Table] = []
    seqs: list[np.ndarray] = []
    size: dict[int, int] = {}
    for seq, value in sorted(bundles, key=lambda item: item[0]):
        table, keys = _read(value)
        size[seq] = table.num_rows
        if not adopt_keys(keys):  # keep its members as JSON: read with its own table
            members = [_member(b, h, keys) for b, h in _bytes_columns(table)]
            table = table.set_column(2, "packed", pa.array([None] * table.num_rows, pa.binary()))
            table = table.set_column(
                3, "history", pa.array([codec.encode_history(m) for m in members], pa.binary())
            )
        tables.append(table)
        seqs.append(np.full(table.num_rows, seq, dtype=np.int64))
    if not tables:
        empty = np.empty(0, dtype=np.int64)
        nothing = pa.array([], type=pa.large_binary())
        return BundleRows([], empty, nothing, empty, empty, np.empty(0, bool), [], size, {}, {})
    rows = pa.concat_tables(tables)
    seq_of = np.concatenate(seqs)
    cohort_codes = pa.chunked_array(rows.column("cohort")).combine_chunks().dictionary_encode()
    codes = cohort_codes.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    ids = rows.column("amplitude_id").to_numpy()
    winners, shadows = _last_versions(codes, ids, seq_of)
    live_seqs, live_counts = np.unique(seq_of[winners], return_counts=True)
    live = {seq: 0 for seq in size}
    live.update(zip(live_seqs.tolist(), live_counts.tolist(), strict=True))
    kept = rows.take(pa.array(winners))
    is_packed = kept.column("packed").is_valid().to_numpy(zero_copy_only=False)
    objects = _objects(kept.filter(pa.array(~is_packed)), seq_of[winners][~is_packed])
    packed_rows = kept.filter(pa.array(is_packed))
    packed_codes = codes[winners][is_packed]
    starts = np.flatnonzero(np.diff(packed_codes)) + 1
    bounds = [0, *starts.tolist(), len(packed_codes)]
    names = cohort_codes.dictionary.to_pylist()
    return BundleRows(
        runs=[
            (names[packed_codes[start]], start, stop)
            for start, stop in zip(bounds[:-1], bounds[1:], strict=True)
            if stop > start
        ],
        amplitude_id=packed_rows.column("amplitude_id").to_numpy(),
        packed=packed_rows.column("packed").combine_chunks().cast(pa.large_binary()),
        visible=packed_rows.column("visible").to_numpy(),
        time=packed_rows.column("time").to_numpy(),
        enter=packed_rows.column("enter").to_numpy(zero_copy_only=False),
        objects=objects,
        size=size,
        live=live,
        shadows=shadows,
    )


def _last_versions(
    codes: np.ndarray, ids: np.ndarray, seq_of: np.ndarray
) -> tuple[np.ndarray, dict[int, set[int]]]:
    """Rows (written in `seq` order) of each member's last version, ordered by cohort code,
    then amplitude id; and per bundle, the bundles holding a member's version just before."""
    order = np.lexsort((np.arange(len(ids)), ids, codes))  # by member, then as written
    same_as_next = (codes[order][1:] == codes[order][:-1]) & (ids[order][1:] == ids[order][:-1])
    last = np.ones(len(order), dtype=bool)
    last[:-1] = ~same_as_next
    later, earlier = order[1:][same_as_next], order[:-1][same_as_next]
    shadows: dict[int, set[int]] = {}
    for newer, older in set(zip(seq_of[later].tolist(), seq_of[earlier].tolist(), strict=True)):
        if newer != older:
            shadows.setdefault(newer, set()).add(older)
    return order[last], shadows


def _objects(rows: pa.Table, seqs: np.ndarray) -> list[tuple[str, int, Member]]:
    """The rows' members from their histories, each with the bundle it was read from."""
    objects = []
    for cohort_id, amplitude_id, history, seq in zip(
        rows.column("cohort").to_pylist(),
        rows.column("amplitude_id").to_pylist(),
        rows.column("history").to_pylist(),
        seqs.tolist(),
        strict=True,
    ):
        member = codec.decode_history(history)
        member.bundle = seq
        objects.append((cohort_id, amplitude_id, member))
    return objects


def _bytes_columns(table: pa.Table) -> Iterable[tuple[bytes | None, bytes | None]]:
    return zip(table.column("packed").to_pylist(), table.column("history").to_pylist(), strict=True)
