"""A member packed into one `bytes` object, and unpacked.

A member as Python objects (`Member`, its history tuple, a `Snapshot`, its stamp tuple, its
properties) costs about 500 bytes; most members are one snapshot (one event's, or older
events folded) that nothing will change until the member's next event. Once written to the
journal, such a member is packed into about 50 bytes (`pack`), and unpacked only when an
event or a sync reads it. Members with several snapshots, whose properties were set by
different events, or whose values do not pack (lists, huge integers), stay objects.

Packed layout, little-endian: flags (B), properties' length (H), the stamp: event time (q),
offset and index in the message (I and H, or q and I when they do not fit: `_WIDE_HEAD`),
journal bundle (i, -1 for none); then, each only when it differs from the stamp, the visible
time (q), the user id's stamp and the properties' stamp (qqq); per property its key id (H,
see `_key_id`), a type tag (B) and the value; last, the user id in UTF-8. A key id is this
process's: a journal bundle that stores packed bytes stores the key table with them
(`key_table`), and a process that loads it numbers its keys the same way when it can
(`adopt_keys`), or unpacks with the bundle's table (`unpack(packed, keys)`).
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from stream.domain.membership import (
    NO_STAMP,
    EventProperties,
    Member,
    PropertyKey,
    Snapshot,
    Stamp,
    shared,
)

__all__ = [
    "adopt_keys",
    "bundle_in",
    "decode_columns",
    "key_table",
    "pack",
    "pack_rows",
    "properties_of",
    "unpack",
    "warm_arrow",
]

_NARROW = struct.Struct("<BHqIHi")
_WIDE = struct.Struct("<BHqqIi")
_TIME = struct.Struct("<q")
_STAMP = struct.Struct("<qqq")
_KEY = struct.Struct("<HB")
_INT = struct.Struct("<q")
_FLOAT = struct.Struct("<d")
_SHORT_TEXT = struct.Struct("<B")
_TEXT = struct.Struct("<I")

_ENTER, _USER, _LATE, _WIDE_HEAD, _USER_STAMPED, _PROPERTIES_STAMPED = 1, 2, 4, 8, 16, 32
_UNUSUAL = _LATE | _USER_STAMPED | _PROPERTIES_STAMPED
_NONE, _TRUE, _FALSE, _INT_TAG, _FLOAT_TAG, _SHORT_TEXT_TAG, _TEXT_TAG = range(7)
_CONSTANTS: dict[int, Any] = {_NONE: None, _TRUE: True, _FALSE: False}

_KEYS: list[PropertyKey] = []
_KEY_IDS: dict[PropertyKey, int] = {}
_KEYS_LOCK = threading.Lock()
"""Numbering a key: a rebuild in a pool thread numbers keys while the loop's thread may."""
_MAX_KEYS = 1 << 16
_PROPERTY_BYTES: dict[tuple[PropertyKey, str], bytes] = {}
_FLATS: dict[bytes, tuple[Any, ...]] = {}
"""Unpacked properties by their packed bytes: members share them, and unpack faster."""
_MAX_CACHED = 100_000


def bundle_in(packed: bytes) -> int | None:
    """The journal bundle a packed member names (None: none), without unpacking it."""
    head = _WIDE if packed[0] & _WIDE_HEAD else _NARROW
    bundle: int = head.unpack_from(packed)[5]
    return None if bundle < 0 else bundle


def pack(member: Member, bundle: int | None = None) -> bytes | None:
    """The member in bytes, or None if it does not pack (see the module docstring), with
    `bundle` as its journal bundle (None: the member's own)."""
    history = member.history
    if len(history) != 1:
        return None
    snapshot = history[0]
    stamp = snapshot.stamp
    flat, properties_stamp = _flat(snapshot.properties, stamp)
    user_id, user_stamp = snapshot.user_id, snapshot.user_stamp
    if flat is None or (user_id is None and user_stamp != NO_STAMP):
        return None
    flags = _ENTER if snapshot.enter else 0
    time, offset, index = stamp
    try:
        extra = b""
        if snapshot.visible != time:
            flags |= _LATE
            extra = _TIME.pack(snapshot.visible)
        if user_id is not None:
            flags |= _USER
            if user_stamp != stamp:
                flags |= _USER_STAMPED
                extra += _STAMP.pack(*user_stamp)
        if properties_stamp != stamp:
            flags |= _PROPERTIES_STAMPED
            extra += _STAMP.pack(*properties_stamp)
        packed_properties = b"".join(map(_property_bytes, flat[0::2], flat[1::2]))
        user = user_id.encode("utf-8") if user_id is not None else b""
        if bundle is None:
            bundle = -1 if member.bundle is None else member.bundle
        length = len(packed_properties)
        if 0 <= offset < 1 << 32 and 0 <= index < 1 << 16:
            head = _NARROW.pack(flags, length, time, offset, index, bundle)
        else:
            head = _WIDE.pack(flags | _WIDE_HEAD, length, time, offset, index, bundle)
    except (struct.error, UnicodeEncodeError, _Unpackable):  # too big, a lone surrogate...
        return None
    return head + extra + packed_properties + user


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
    and which of them packed (the others need objects: see the module docstring). Every
    event is its member's only one: no journal bundle, no late visibility, every field
    stamped by it."""
    count = len(time)
    if not count:
        return pa.array([], pa.binary()), np.zeros(0, dtype=bool)
    regions = list(map(_event_properties, properties, app_ids))
    lengths = np.array([-1 if region is None else len(region) for region in regions], np.int64)
    packs = (lengths >= 0) & (lengths < 1 << 16)
    user_bytes = _utf8(user_ids, packs)
    flags = np.where(user_bytes.is_valid().to_numpy(zero_copy_only=False), _USER, 0)
    flags |= np.where(enter, _ENTER, 0)
    # `pack`'s head is narrow where the offset and the index fit it, else wide
    narrow = (offset >= 0) & (offset < 1 << 32) & (index < 1 << 16)
    lengths = np.where(packs, lengths, 0)  # unused when not packed
    heads = _heads(_NARROW_ROW, narrow, flags, lengths, time, offset, index)
    if not narrow.all():
        wide = _heads(_WIDE_ROW, ~narrow, flags | _WIDE_HEAD, lengths, time, offset, index)
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
"""`_NARROW` as a numpy row (packed, no alignment), and `_WIDE` below."""
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
"""`_property_bytes` by (name, app id, text), without making the key: a batch repeats them."""


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
                    part = _property_bytes(shared(name, app_id), value)
                    if len(value) <= 64 and len(_EVENT_PROPERTY_BYTES) < _MAX_CACHED:
                        _EVENT_PROPERTY_BYTES[cache_key] = part
            else:
                part = _property_bytes(shared(name, app_id), value)
            parts.append(part)
    except (_Unpackable, struct.error, UnicodeEncodeError):  # as `pack`
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


def _flat(
    properties: Mapping[PropertyKey, tuple[Any, Stamp]], stamp: Stamp
) -> tuple[tuple[Any, ...] | None, Stamp]:
    """(key, value, ...) and the one stamp of all the properties; None when they have
    several (set by different events)."""
    if type(properties) is EventProperties:
        return properties.flat, properties.stamp
    stamps = {value_stamp for _, value_stamp in properties.values()}
    if len(stamps) > 1:
        return None, stamp
    flat = tuple(item for key, (value, _) in properties.items() for item in (key, value))
    return flat, stamps.pop() if stamps else stamp


class _Unpackable(Exception):
    """A property `pack` cannot represent: the member stays objects."""


def _property_bytes(key: PropertyKey, value: Any) -> bytes:
    """One property packed; short texts are cached (plans, countries repeat)."""
    if type(value) is not str or len(value) > 64:
        return _encode_property(key, value)
    cache_key = (key, value)
    cached = _PROPERTY_BYTES.get(cache_key)
    if cached is None:
        cached = _encode_property(key, value)
        if len(_PROPERTY_BYTES) < _MAX_CACHED:
            _PROPERTY_BYTES[cache_key] = cached
    return cached


def _encode_property(key: PropertyKey, value: Any) -> bytes:
    key_id = _key_id(key)
    if key_id is None:
        raise _Unpackable(key)
    kind = type(value)
    if kind is str:
        text = value.encode("utf-8")
        if len(text) < 256:
            return _KEY.pack(key_id, _SHORT_TEXT_TAG) + _SHORT_TEXT.pack(len(text)) + text
        return _KEY.pack(key_id, _TEXT_TAG) + _TEXT.pack(len(text)) + text
    if kind is bool:
        return _KEY.pack(key_id, _TRUE if value else _FALSE)
    if value is None:
        return _KEY.pack(key_id, _NONE)
    if kind is int:
        return _KEY.pack(key_id, _INT_TAG) + _INT.pack(value)
    if kind is float:
        return _KEY.pack(key_id, _FLOAT_TAG) + _FLOAT.pack(value)
    raise _Unpackable(value)


def unpack(packed: bytes, keys: Sequence[PropertyKey] | None = None) -> Member:
    """The member `pack` made; `keys`: the key table it was packed with, when it is not
    this process's (`key_table`)."""
    flags = packed[0]
    head = _WIDE if flags & _WIDE_HEAD else _NARROW
    _, length, time, offset, index, bundle = head.unpack_from(packed)
    stamp = (time, offset, index)
    at = head.size
    visible = time
    user_stamp = stamp if flags & _USER else NO_STAMP
    properties_stamp = stamp
    if flags & _UNUSUAL:  # late, or fields set by several events
        if flags & _LATE:
            visible = _TIME.unpack_from(packed, at)[0]
            at += _TIME.size
        if flags & _USER_STAMPED:
            user_stamp = _STAMP.unpack_from(packed, at)
            at += _STAMP.size
        if flags & _PROPERTIES_STAMPED:
            properties_stamp = _STAMP.unpack_from(packed, at)
            at += _STAMP.size
    end = at + length
    region = packed[at:end]
    flat = _unpack_properties(region, keys) if keys is not None else _cached_flat(region)
    member = Member(
        (
            Snapshot(
                stamp,
                visible,
                flags & _ENTER == _ENTER,
                packed[end:].decode("utf-8") if flags & _USER else None,
                user_stamp,
                EventProperties(flat, properties_stamp),
            ),
        )
    )
    if bundle >= 0:
        member.bundle = bundle
    return member


def _unpack_properties(region: bytes, keys: Sequence[PropertyKey]) -> tuple[Any, ...]:
    flat: list[Any] = []
    at = 0
    while at < len(region):
        key_id, tag = _KEY.unpack_from(region, at)
        value, at = _unpack_value(region, tag, at + _KEY.size)
        flat += (keys[key_id], value)
    return tuple(flat)


def _unpack_value(packed: bytes, tag: int, at: int) -> tuple[Any, int]:
    if tag == _SHORT_TEXT_TAG:
        end = at + 1 + packed[at]
        return packed[at + 1 : end].decode("utf-8"), end
    if tag == _TEXT_TAG:
        end = at + _TEXT.size + _TEXT.unpack_from(packed, at)[0]
        return packed[at + _TEXT.size : end].decode("utf-8"), end
    if tag == _INT_TAG:
        return _INT.unpack_from(packed, at)[0], at + _INT.size
    if tag == _FLOAT_TAG:
        return _FLOAT.unpack_from(packed, at)[0], at + _FLOAT.size
    return _CONSTANTS[tag], at


def _key_id(key: PropertyKey) -> int | None:
    """A property key's number in this process (None once `_MAX_KEYS` are numbered)."""
    key_id = _KEY_IDS.get(key)
    if key_id is None:
        with _KEYS_LOCK:
            key_id = _KEY_IDS.get(key)
            if key_id is None and len(_KEYS) < _MAX_KEYS:
                key_id = _KEY_IDS[key] = len(_KEYS)
                _KEYS.append(key)
    return key_id


def warm_arrow() -> None:
    """Make pyarrow's first conversion of Python objects now: it imports pandas when that is
    installed (apache/arrow#34994), about 0.3 s. A replay calls it once before its processes
    fork, rather than each one paying it while it reads."""
    pa.array([b""], pa.binary())


def key_table() -> list[PropertyKey]:
    """This process's property keys, by their number: what packed bytes mean."""
    return list(_KEYS)


def adopt_keys(table: Sequence[PropertyKey]) -> bool:
    """Whether bytes packed with `table` (another process's `key_table`) mean the same here,
    numbering its keys this process has not numbered yet in its order when they can. False:
    unpack them with `table`."""
    with _KEYS_LOCK:
        known = len(_KEYS)
        if any(_KEYS[key_id] != key for key_id, key in enumerate(table[:known])):
            return False
        for key in table[known:]:
            if key in _KEY_IDS or len(_KEYS) >= _MAX_KEYS:
                return False
            _KEY_IDS[key] = len(_KEYS)
            _KEYS.append(key)
        return True


def decode_columns(
    packed: pa.LargeBinaryArray,
) -> tuple[np.ndarray, np.ndarray, pa.StringArray, pa.BinaryArray]:
    """Packed members as columns, with vectorised gathers (no Python object a member):
    each one's visible time, whether it entered, its user id (null: none) and its
    properties' packed bytes (`properties_of` reads them)."""
    count = len(packed)
    _, offset_buffer, data_buffer = packed.buffers()
    offsets = np.frombuffer(offset_buffer, dtype=np.int64)[packed.offset :][: count + 1]
    data = np.frombuffer(data_buffer, dtype=np.uint8) if data_buffer else np.zeros(0, np.uint8)
    data = np.concatenate([data, np.zeros(_VIEW, dtype=np.uint8)])  # windows may run past
    start, end = offsets[:-1], offsets[1:]
    flags = data[start].astype(np.int64)
    time = _int64_at(data, start + 3)
    at = start + np.where(flags & _WIDE_HEAD, _WIDE.size, _NARROW.size)
    late = (flags & _LATE) != 0
    visible = time.copy()
    if late.any():
        visible[late] = _int64_at(data, at[late])
    at = at + late * _TIME.size
    at = at + ((flags & _USER_STAMPED) != 0) * _STAMP.size
    at = at + ((flags & _PROPERTIES_STAMPED) != 0) * _STAMP.size
    length = data[start + 1].astype(np.int64) | (data[start + 2].astype(np.int64) << 8)
    has_user = (flags & _USER) != 0
    regions = _slices(data, at, length, pa.binary(), None)
    users = _slices(
        data, at + length, np.where(has_user, end - at - length, 0), pa.string(), has_user
    )
    return visible, (flags & _ENTER) != 0, users, regions


def properties_of(region: bytes) -> EventProperties:
    """A packed member's properties from their bytes (`decode_columns`' regions)."""
    return EventProperties(_cached_flat(region), NO_STAMP)


def _cached_flat(region: bytes) -> tuple[Any, ...]:
    """The properties packed in `region` (with this process's keys), cached by their bytes."""
    cached = _FLATS.get(region)
    if cached is None:
        cached = _unpack_properties(region, _KEYS)
        if len(_FLATS) < _MAX_CACHED:
            _FLATS[region] = cached
    return cached


def _int64_at(data: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """The little-endian int64 at each position of `data` (padded past its last one)."""
    return np.ascontiguousarray(_windows(data, 8)[positions]).view("<i8").ravel()


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
    views[:, 1:] = np.ascontiguousarray(_windows(data, _INLINE)[starts]).view("<i4")
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
