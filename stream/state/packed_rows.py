"""Packed members as columns: many packed at once from events' columns (`pack_rows`), and
many read at once into columns (`decode_columns`), with numpy and Arrow and no Python object
a member. The bytes are `packed.py`'s layout, the same as `pack` makes one at a time."""

from __future__ import annotations

import struct
from typing import Any, TypeAlias

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from stream.domain.membership import shared
from stream.state.packed import (
    ENTER,
    LATE,
    MAX_CACHED,
    NARROW,
    PROPERTIES_STAMPED,
    STAMP,
    TIME,
    USER,
    USER_STAMPED,
    WIDE,
    WIDE_HEAD,
    Unpackable,
    property_bytes,
)

__all__ = ["Packed", "decode_columns", "offsets_of", "pack_rows", "warm_arrow"]

Packed: TypeAlias = pa.BinaryArray | pa.LargeBinaryArray
"""Packed members' bytes in one array: binary, or large_binary past 2 GiB."""


def pack_rows(
    *,
    time: np.ndarray,
    offset: np.ndarray,
    index: np.ndarray,
    enter: np.ndarray,
    user_ids: list[str | None],
    properties: list[dict[str, Any] | None],
    app_ids: list[int | None],
) -> tuple[pa.BinaryArray, np.ndarray]:
    """Events, a row each (their stamps' time, offset and index; presence, user id,
    properties, app id), each packed as the member it makes in a cohort that had none:
    `pack(Member([Snapshot.of_event(...)]))` of an on-time event, built column by column;
    and which of them packed (the others need objects: see `packed.py`'s docstring). Every
    event is its member's only one: no journal bundle, no late visibility, every field
    stamped by it."""
    count = len(time)
    if not count:
        return pa.array([], pa.binary()), np.zeros(0, dtype=bool)
    regions = list(map(_event_properties, properties, app_ids))
    lengths = np.array([-1 if region is None else len(region) for region in regions], np.int64)
    packs = (lengths >= 0) & (lengths < 1 << 16)
    user_bytes = _utf8(user_ids, packs)
    flags = np.where(user_bytes.is_valid().to_numpy(zero_copy_only=False), USER, 0)
    flags |= np.where(enter, ENTER, 0)
    # `pack`'s head is narrow where the offset and the index fit it, else wide
    narrow = (offset >= 0) & (offset < 1 << 32) & (index < 1 << 16)
    lengths = np.where(packs, lengths, 0)  # unused when not packed
    heads = _heads(_NARROW_ROW, narrow, flags, lengths, time, offset, index)
    if not narrow.all():
        wide = _heads(_WIDE_ROW, ~narrow, flags | WIDE_HEAD, lengths, time, offset, index)
        heads = pc.if_else(pa.array(narrow), heads, wide)
    packed = pc.binary_join_element_wise(
        heads,
        pa.array([region or b"" for region in regions], pa.binary()),
        user_bytes,
        b"",
        null_handling="replace",
        null_replacement=b"",
    )
    return packed, packs


def _heads(
    layout: np.dtype,
    rows: np.ndarray,
    flags: np.ndarray,
    lengths: np.ndarray,
    time: np.ndarray,
    offset: np.ndarray,
    index: np.ndarray,
) -> pa.BinaryArray:
    """Every row's head in `layout`, true for `rows` only (the others' offset and index are
    zeroed to fit it: the caller drops them)."""
    head = np.zeros(len(flags), dtype=layout)
    head["flags"] = flags
    head["length"] = lengths
    head["time"] = time
    head["offset"] = np.where(rows, offset, 0)
    head["index"] = np.where(rows, index, 0)
    head["bundle"] = -1
    return pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(layout.itemsize), len(head), [None, pa.py_buffer(head.tobytes())]
    ).cast(pa.binary())


_NARROW_ROW = np.dtype(
    [
        ("flags", "u1"),
        ("length", "<u2"),
        ("time", "<i8"),
        ("offset", "<u4"),
        ("index", "<u2"),
        ("bundle", "<i4"),
    ]
)
"""`NARROW` as a numpy row (packed, no alignment), and `WIDE` below."""


_WIDE_ROW = np.dtype(
    [
        ("flags", "u1"),
        ("length", "<u2"),
        ("time", "<i8"),
        ("offset", "<i8"),
        ("index", "<u4"),
        ("bundle", "<i4"),
    ]
)


_EVENT_PROPERTY_BYTES: dict[tuple[str, int | None, str], bytes] = {}
"""`property_bytes` by (name, app id, text), without making the key: a batch repeats them."""


def _event_properties(properties: dict[str, Any] | None, app_id: int | None) -> bytes | None:
    """An event's properties packed as `pack` packs them (None: they do not pack)."""
    if not properties:
        return b""
    if len(properties) == 1:  # the usual case, without the loop
        ((name, value),) = properties.items()
        if type(value) is str:
            cached = _EVENT_PROPERTY_BYTES.get((name, app_id, value))
            if cached is not None:
                return cached
    parts = []
    try:
        for name, value in properties.items():
            if type(value) is str:  # by type: True and 1 are equal keys, not equal bytes
                cache_key = (name, app_id, value)
                part = _EVENT_PROPERTY_BYTES.get(cache_key)
                if part is None:
                    part = property_bytes(shared(name, app_id), value)
                    if len(value) <= 64 and len(_EVENT_PROPERTY_BYTES) < MAX_CACHED:
                        _EVENT_PROPERTY_BYTES[cache_key] = part
            else:
                part = property_bytes(shared(name, app_id), value)
            parts.append(part)
    except (Unpackable, struct.error, UnicodeEncodeError):  # as `pack`
        return None
    return b"".join(parts)


def _utf8(texts: list[str | None], packs: np.ndarray) -> pa.BinaryArray:
    """`texts` in UTF-8 (null for None); one that cannot be encoded (a lone surrogate) is
    null, and marked as not packing in `packs`."""
    try:
        return pa.array(texts, pa.string()).cast(pa.binary())
    except (UnicodeEncodeError, pa.ArrowException):
        encoded: list[bytes | None] = []
        for at, text in enumerate(texts):
            try:
                encoded.append(None if text is None else text.encode("utf-8"))
            except UnicodeEncodeError:
                packs[at] = False
                encoded.append(None)
        return pa.array(encoded, pa.binary())


def warm_arrow() -> None:
    """Make pyarrow's first conversions now, of Python and of NumPy values (with what they
    set up lazily, tens of milliseconds). A replay calls it once before its processes fork,
    rather than each one paying it in its timed read."""
    pa.array([b""], pa.binary())
    pa.array(np.zeros(1, dtype=np.int64))


def offsets_of(packed: Packed) -> np.ndarray:
    """The array's offsets, one more than its rows, as a view: int32 for binary, int64 for
    large_binary."""
    width = np.int32 if packed.type == pa.binary() else np.int64
    return np.frombuffer(packed.buffers()[1], dtype=width)[packed.offset :][: len(packed) + 1]


def decode_columns(
    packed: Packed,
) -> tuple[np.ndarray, np.ndarray, pa.StringArray, pa.BinaryArray]:
    """Packed members as columns, with vectorised gathers (no Python object a member):
    each one's visible time, whether it entered, its user id (null: none) and its
    properties' packed bytes (`properties_of` reads them)."""
    data_buffer = packed.buffers()[2]
    offsets = offsets_of(packed).astype(np.int64, copy=False)  # sums below pass 2 GiB
    data = np.frombuffer(data_buffer, dtype=np.uint8) if data_buffer else np.zeros(0, np.uint8)
    start, end = offsets[:-1], offsets[1:]
    flags = data[start].astype(np.int64)
    time = _int64_at(data, start + 3)
    at = start + np.where(flags & WIDE_HEAD, WIDE.size, NARROW.size)
    late = (flags & LATE) != 0
    visible = time.copy()
    if late.any():
        visible[late] = _int64_at(data, at[late])
    at = at + late * TIME.size
    at = at + ((flags & USER_STAMPED) != 0) * STAMP.size
    at = at + ((flags & PROPERTIES_STAMPED) != 0) * STAMP.size
    length = data[start + 1].astype(np.int64) | (data[start + 2].astype(np.int64) << 8)
    has_user = (flags & USER) != 0
    regions = _slices(data, at, length, pa.binary(), None)
    users = _slices(
        data, at + length, np.where(has_user, end - at - length, 0), pa.string(), has_user
    )
    return visible, (flags & ENTER) != 0, users, regions


def _int64_at(data: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """The little-endian int64 at each position of `data`."""
    return _bytes_at(data, positions, 8).view("<i8").ravel()


def _bytes_at(data: np.ndarray, positions: np.ndarray, size: int) -> np.ndarray:
    """The `size` bytes from each position of `data`, as rows; zeros past its end.

    The few rows that run past the end are read again from a padded copy of the last
    bytes: padding the whole of `data` would copy every member's bytes (50 MB for a
    million), in memory a first sync has often not touched yet."""
    limit = len(data) - size  # a position up to here is read in place
    if limit < 0:
        data, limit = np.concatenate([data, np.zeros(size, dtype=np.uint8)]), len(data)
    rows = _windows(data, size)[np.minimum(positions, limit)]
    past = np.flatnonzero(positions > limit)
    if len(past):
        tail = np.concatenate([data[limit:], np.zeros(size, dtype=np.uint8)])
        rows[past] = _windows(tail, size)[positions[past] - limit]
    return rows


def _windows(data: np.ndarray, size: int) -> np.ndarray:
    """A window of `size` bytes sliding over `data`: a view, nothing is copied."""
    return np.lib.stride_tricks.as_strided(data, shape=(len(data) - size + 1, size), strides=(1, 1))


_VIEW = 16
"""A view of Arrow's string_view layout: its length, then its bytes when they fit in the
next 12, else their first 4, the buffer's number and their offset in it."""


_INLINE = 12


def _slices(
    data: np.ndarray,
    starts: np.ndarray,
    lengths: np.ndarray,
    kind: pa.DataType,
    valid: np.ndarray | None,
) -> Any:
    """`data[starts[i]:starts[i] + lengths[i]]` for every i as an Arrow array of `kind`
    (null where `valid` is False), through a view array that points into `data`: only
    the views are built, then Arrow copies the bytes in C."""
    count = len(starts)
    if len(data) >= 1 << 31:  # past a view's int32 offset: copy them here
        return pa.array(
            [bytes(data[a : a + n]) for a, n in zip(starts, lengths, strict=True)], kind
        )
    # As int32 words: the length, then 12 bytes (inline: the value; else its first 4
    # bytes, the buffer's number and the offset). The view array is only cast (below),
    # which reads `length` bytes: an inline value's padding is not zeroed.
    views = np.empty((count, _VIEW // 4), dtype="<i4")
    views[:, 0] = lengths
    views[:, 1:] = _bytes_at(data, starts, _INLINE).view("<i4")
    outside = lengths > _INLINE
    if outside.any():
        views[outside, 2] = 0
        views[outside, 3] = starts[outside]
    view_kind = pa.string_view() if kind == pa.string() else pa.binary_view()
    validity = None if valid is None else pa.array(valid).buffers()[1]
    array = pa.Array.from_buffers(
        view_kind, count, [validity, pa.py_buffer(views), pa.py_buffer(data)]
    )
    return array.cast(kind)
