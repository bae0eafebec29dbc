"""A cohort's members by amplitude id: most of them packed in columns, the rest in a dict.

A small in-memory LSM. The base holds packed members (`packed.py`) as two columns: the
amplitude ids, sorted (int64), and their packed bytes (one Arrow binary array, with 4-byte
offsets while its bytes fit in them: `_compact`), about 8 + 4 + 40 bytes a member and no
Python object each. The delta, a dict, holds what changed since: members as objects (being
changed, or that do not pack), members packed since, and the base members removed. Reads
look in the delta first, then in the base (a binary search). Once the packed members of the
delta pass a fraction of the base, `freeze` folds them into a new base with vectorised
sorts and takes.

The base and the delta are swapped as one object (`_Layers`), so a reader in another thread
(a sync being built) that takes the layers once sees one consistent state; folding changes
no member's value, only where it is kept.
"""

from __future__ import annotations

import operator
from bisect import bisect_left
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import pyarrow as pa

from stream.domain.membership import Member
from stream.state.packed import bundle_in, pack, unpack
from stream.state.packed_rows import Packed, offsets_of

__all__ = ["Members"]

#: Fold the delta's packed members into the base once they are more than this share of it
#: (or than `_MIN_FOLD` members): each fold costs a pass over the base, so a member is
#: copied a bounded number of times on average.
_FOLD_SHARE = 0.125
_MIN_FOLD = 256

#: The most bytes an Arrow binary array (4-byte offsets) holds; past it, large_binary.
_BINARY_LIMIT = 2**31 - 1

_GONE = b""
"""In the delta: a base member removed (no packed member is empty: the head is 21 bytes)."""


class _Layers:
    """The base columns and the delta above them."""

    __slots__ = (
        "ids",
        "packed",
        "id_view",
        "offsets",
        "data",
        "delta",
        "packed_in_delta",
        "fold_at",
    )

    def __init__(self, ids: np.ndarray, packed: Packed) -> None:
        self.ids = ids
        self.packed = packed
        self.id_view = ids.data.cast("B").cast("q")
        _, offsets, data = packed.buffers()
        start = packed.offset
        as_ints = memoryview(offsets).cast("i" if packed.type == pa.binary() else "q")
        self.offsets = as_ints[start : start + len(packed) + 1] if len(packed) else None
        self.data = memoryview(data) if data is not None else memoryview(b"")
        self.delta: dict[int, Member | bytes] = {}
        self.packed_in_delta = 0
        """The delta's packed members and removals: what a fold would move."""
        self.fold_at = max(_MIN_FOLD, int(_FOLD_SHARE * len(ids)))

    def index(self, amplitude_id: int) -> int:
        """The member's row in the base, or -1."""
        view = self.id_view
        if not view:
            return -1
        at = bisect_left(view, amplitude_id)
        return at if at < len(view) and view[at] == amplitude_id else -1

    def row(self, at: int) -> bytes:
        offsets = self.offsets
        assert offsets is not None
        return bytes(self.data[offsets[at] : offsets[at + 1]])


def _empty() -> _Layers:
    return _Layers(np.empty(0, dtype=np.int64), pa.array([], type=pa.binary()))


class Members(Mapping[int, Member]):
    """A cohort's members by amplitude id. Reading a packed member (`[]`, `get`) unpacks a
    copy: change members only through `hot`, which keeps the unpacked one."""

    __slots__ = ("_layers", "_length")

    def __init__(self) -> None:
        self._layers = _empty()
        self._length = 0

    def _entry(self, amplitude_id: int) -> Member | bytes | None:
        """The member as the layers hold it (None: not a member)."""
        layers = self._layers
        entry = layers.delta.get(amplitude_id)
        if entry is not None:
            return None if entry is _GONE else entry
        at = layers.index(amplitude_id)
        return None if at < 0 else layers.row(at)

    def __getitem__(self, amplitude_id: int) -> Member:
        entry = self._entry(amplitude_id)
        if entry is None:
            raise KeyError(amplitude_id)
        return unpack(entry) if isinstance(entry, bytes) else entry

    def get(self, amplitude_id: int, default: Any = None) -> Any:
        entry = self._entry(amplitude_id)
        if entry is None:
            return default
        return unpack(entry) if isinstance(entry, bytes) else entry

    def __contains__(self, amplitude_id: object) -> bool:
        try:
            key = operator.index(amplitude_id)  # type: ignore[arg-type]
        except TypeError:
            return False
        return self._entry(key) is not None

    def __iter__(self) -> Iterator[int]:
        return (amplitude_id for amplitude_id, _ in self._entries())

    def __len__(self) -> int:
        return self._length

    def items(self) -> Iterator[tuple[int, Member]]:  # type: ignore[override]
        """(amplitude id, member) in no particular order, packed ones unpacked as copies.
        The layers and the delta's ids are taken first: members added meanwhile by another
        thread are not seen, and do not break the iteration."""
        for amplitude_id, entry in self._entries():
            yield amplitude_id, unpack(entry) if isinstance(entry, bytes) else entry

    def _entries(self) -> Iterator[tuple[int, Member | bytes]]:
        layers = self._layers
        delta = dict(layers.delta)  # one C call: a consistent copy
        offsets, data = layers.offsets, layers.data
        for at, amplitude_id in enumerate(layers.ids.tolist()):
            if amplitude_id not in delta:
                assert offsets is not None
                yield amplitude_id, bytes(data[offsets[at] : offsets[at + 1]])
        for amplitude_id, entry in delta.items():
            if entry is not _GONE:
                yield amplitude_id, entry

    def hot(self, amplitude_id: int) -> Member | None:
        """The member as objects, kept so: the one to change."""
        layers = self._layers
        entry = layers.delta.get(amplitude_id)
        if entry is None:
            at = layers.index(amplitude_id)
            if at < 0:
                return None
            member = layers.delta[amplitude_id] = unpack(layers.row(at))
            return member
        if entry is _GONE:
            return None
        if isinstance(entry, bytes):
            layers.packed_in_delta -= 1
            entry = layers.delta[amplitude_id] = unpack(entry)
        return entry

    def add(self, amplitude_id: int, member: Member) -> None:
        self._put(amplitude_id, member)

    def add_packed(self, amplitude_ids: np.ndarray, packed: pa.Array) -> None:
        """Members already packed (with this process's key ids), in bulk: into an empty
        cohort they become the base as they are."""
        if self._length == 0 and len(self._layers.ids) == 0:
            ids = np.ascontiguousarray(amplitude_ids, dtype=np.int64)
            packed = _compact(packed)
            if len(ids) > 1 and not bool(np.all(ids[1:] > ids[:-1])):
                order = np.argsort(ids, kind="stable")
                ids, packed = ids[order], packed.take(pa.array(order))
            self._layers = _Layers(ids, packed)
            self._length = len(ids)
            return
        for amplitude_id, as_bytes in zip(amplitude_ids.tolist(), packed.to_pylist(), strict=True):
            self._put(amplitude_id, as_bytes)
        self._fold_when_due()

    def untouched(self, amplitude_ids: np.ndarray) -> np.ndarray:
        """Which of `amplitude_ids` are in neither layer: not members, nor removed ones
        (`add_fresh` takes those)."""
        layers = self._layers
        delta = layers.delta
        absent = np.fromiter(
            (amplitude_id not in delta for amplitude_id in amplitude_ids.tolist()),
            dtype=bool,
            count=len(amplitude_ids),
        )
        base = layers.ids
        if len(base):
            at = np.minimum(np.searchsorted(base, amplitude_ids), len(base) - 1)
            absent &= base[at] != amplitude_ids
        return absent

    def add_fresh(self, amplitude_ids: np.ndarray, packed: pa.Array) -> None:
        """Members packed already, none of them held now (`untouched`), once each."""
        if self._length == 0 and len(self._layers.ids) == 0:
            self.add_packed(amplitude_ids, packed)
            return
        layers = self._layers
        self._length += len(amplitude_ids)
        if len(amplitude_ids) > layers.fold_at:  # a fold's worth: into the base at once
            self._fold(amplitude_ids, packed)
            return
        layers.delta.update(zip(amplitude_ids.tolist(), packed.to_pylist(), strict=True))
        layers.packed_in_delta += len(amplitude_ids)
        self._fold_when_due()

    def _put(self, amplitude_id: int, entry: Member | bytes) -> None:
        layers = self._layers
        old = layers.delta.get(amplitude_id)
        if old is None:
            if layers.index(amplitude_id) < 0:
                self._length += 1
        elif old is _GONE:
            self._length += 1
            layers.packed_in_delta -= 1
        elif isinstance(old, bytes):
            layers.packed_in_delta -= 1
        layers.delta[amplitude_id] = entry
        if isinstance(entry, bytes):
            layers.packed_in_delta += 1

    def remove(self, amplitude_id: int) -> None:
        layers = self._layers
        old = layers.delta.get(amplitude_id)
        in_base = layers.index(amplitude_id) >= 0
        if old is _GONE or (old is None and not in_base):
            raise KeyError(amplitude_id)
        if isinstance(old, bytes):
            layers.packed_in_delta -= 1
        if in_base:
            layers.delta[amplitude_id] = _GONE
            layers.packed_in_delta += 1
        else:
            del layers.delta[amplitude_id]
        self._length -= 1

    def bundle_of(self, amplitude_id: int) -> int | None:
        """The journal bundle holding the member's latest version, without unpacking it."""
        entry = self._entry(amplitude_id)
        if entry is None:
            return None
        if isinstance(entry, bytes):
            return bundle_in(entry)
        return entry.bundle

    def freeze(self, amplitude_id: int, packed: bytes | None = None) -> None:
        """Pack the member if it packs: call once nothing holds its objects to change them
        (the journal has written it). `packed`: its bytes, packed already."""
        layers = self._layers
        entry = layers.delta.get(amplitude_id)
        if isinstance(entry, Member):
            if packed is None:
                packed = pack(entry)
            if packed is not None:
                layers.delta[amplitude_id] = packed
                layers.packed_in_delta += 1
                self._fold_when_due()

    def _fold_when_due(self) -> None:
        layers = self._layers
        if layers.packed_in_delta > layers.fold_at:
            self.fold()

    def fold(self) -> None:
        """Move the delta's packed members into a new base, and drop the removed ones."""
        self._fold()

    def _fold(self, fresh_ids: np.ndarray | None = None, fresh: pa.Array | None = None) -> None:
        """`fold`, with `fresh` members (in neither layer) added to the new base too."""
        layers = self._layers
        moved = {a: e for a, e in layers.delta.items() if isinstance(e, bytes)}
        if not moved and fresh_ids is None:
            return
        staying: dict[int, Member | bytes] = {
            a: e for a, e in layers.delta.items() if not isinstance(e, bytes)
        }
        replaced = np.fromiter(moved, dtype=np.int64, count=len(moved))
        keep = ~np.isin(layers.ids, replaced, assume_unique=True)
        added = [(a, e) for a, e in moved.items() if e is not _GONE]
        ids = [layers.ids[keep], np.fromiter((a for a, _ in added), np.int64, len(added))]
        packed = [
            layers.packed.filter(pa.array(keep)),
            pa.array([e for _, e in added], pa.large_binary()),
        ]
        if fresh_ids is not None and fresh is not None:
            ids.append(fresh_ids)
            packed.append(_combined(fresh))
        all_ids = np.concatenate(ids)
        order = np.argsort(all_ids, kind="stable")
        folded = _Layers(
            np.ascontiguousarray(all_ids[order]),
            pa.concat_arrays(_alike(packed)).take(pa.array(order)),
        )
        folded.delta = staying
        self._layers = folded  # one store: a reader has the old layers or the new

    def columns(self) -> tuple[np.ndarray, Packed, dict[int, Member]]:
        """The packed members as columns (amplitude ids ascending, their packed bytes) and
        the members held as objects: every member once, as one consistent state."""
        layers = self._layers
        delta = dict(layers.delta)  # one C call: a consistent copy
        ids, packed = layers.ids, layers.packed
        if not delta:
            return ids, packed, {}
        objects = {a: e for a, e in delta.items() if isinstance(e, Member)}
        replaced = np.fromiter(delta, dtype=np.int64, count=len(delta))
        kept = np.flatnonzero(~np.isin(ids, replaced, assume_unique=True))
        newer = [(a, e) for a, e in delta.items() if type(e) is bytes and e is not _GONE]
        if not newer:
            return ids[kept], packed.take(pa.array(kept)), objects
        # One gather of the base and the newer members together, in id order: the newer
        # go where they sort among the kept (every copy of a million members' bytes
        # costs, and more so in memory the process has not touched yet).
        new_ids = np.fromiter((a for a, _ in newer), dtype=np.int64, count=len(newer))
        by_id = np.argsort(new_ids)
        at = np.searchsorted(ids[kept], new_ids[by_id])
        order = np.insert(kept, at, len(ids) + by_id)
        newer_packed = pa.array([e for _, e in newer], pa.large_binary())
        gathered = pa.chunked_array(_alike([packed, newer_packed])).take(pa.array(order))
        return np.concatenate([ids, new_ids])[order], _compact(gathered), objects

    def packed(self) -> int:
        """How many members are packed (for tests)."""
        return sum(1 for _, entry in self._entries() if isinstance(entry, bytes))


def _combined(packed: pa.Array | pa.ChunkedArray) -> pa.Array:
    return packed.combine_chunks() if isinstance(packed, pa.ChunkedArray) else packed


def _compact(packed: pa.Array | pa.ChunkedArray) -> Packed:
    """`packed` with 4-byte offsets (binary: 4 bytes a member less than large_binary) when
    its bytes fit in them. Casting keeps the data buffer; a slice of one past the limit
    is copied first, so that its offsets start at 0."""
    packed = _combined(packed)
    if packed.type == pa.binary():
        return packed
    if len(packed) == 0:
        return pa.array([], pa.binary())
    offsets = offsets_of(packed)
    if offsets[-1] <= _BINARY_LIMIT:
        return packed.cast(pa.binary())
    if offsets[-1] - offsets[0] <= _BINARY_LIMIT:
        return packed.take(pa.array(np.arange(len(packed)))).cast(pa.binary())
    return packed


def _alike(arrays: list[pa.Array]) -> list[pa.Array]:
    """`arrays` of one type, that their concatenation can take: binary while their bytes
    together fit in its offsets (`nbytes` counts offsets too: an upper bound)."""
    if sum(array.nbytes for array in arrays) <= _BINARY_LIMIT:
        return [_compact(array) for array in arrays]
    return [array.cast(pa.large_binary()) for array in arrays]
