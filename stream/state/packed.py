"""A member packed into one `bytes` object, and unpacked.

A member as Python objects (`Member`, its history tuple, a `Snapshot`, its stamp tuple, its
properties) costs about 500 bytes; most members are one snapshot (one event's, or older
events folded) that nothing will change until the member's next event. Once written to the
journal, such a member is packed into about 50 bytes (`pack`), and unpacked only when an
event or a sync reads it. Members with several snapshots, whose properties were set by
different events, or whose values do not pack (lists, huge integers), stay objects.

Packed layout, little-endian: flags (B), properties' length (H), the stamp: event time (q),
offset and index in the message (I and H, or q and I when they do not fit: `WIDE_HEAD`),
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

from stream.domain.membership import (
    NO_STAMP,
    EventProperties,
    Member,
    PropertyKey,
    Snapshot,
    Stamp,
)

__all__ = [
    "adopt_keys",
    "bundle_in",
    "key_table",
    "pack",
    "properties_of",
    "unpack",
]

NARROW = struct.Struct("<BHqIHi")
WIDE = struct.Struct("<BHqqIi")
TIME = struct.Struct("<q")
STAMP = struct.Struct("<qqq")
_KEY = struct.Struct("<HB")
_INT = struct.Struct("<q")
_FLOAT = struct.Struct("<d")
_SHORT_TEXT = struct.Struct("<B")
_TEXT = struct.Struct("<I")

ENTER, USER, LATE, WIDE_HEAD, USER_STAMPED, PROPERTIES_STAMPED = 1, 2, 4, 8, 16, 32
_UNUSUAL = LATE | USER_STAMPED | PROPERTIES_STAMPED
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
MAX_CACHED = 100_000


def bundle_in(packed: bytes) -> int | None:
    """The journal bundle a packed member names (None: none), without unpacking it."""
    head = WIDE if packed[0] & WIDE_HEAD else NARROW
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
    flags = ENTER if snapshot.enter else 0
    time, offset, index = stamp
    try:
        extra = b""
        if snapshot.visible != time:
            flags |= LATE
            extra = TIME.pack(snapshot.visible)
        if user_id is not None:
            flags |= USER
            if user_stamp != stamp:
                flags |= USER_STAMPED
                extra += STAMP.pack(*user_stamp)
        if properties_stamp != stamp:
            flags |= PROPERTIES_STAMPED
            extra += STAMP.pack(*properties_stamp)
        packed_properties = b"".join(map(property_bytes, flat[0::2], flat[1::2]))
        user = user_id.encode("utf-8") if user_id is not None else b""
        if bundle is None:
            bundle = -1 if member.bundle is None else member.bundle
        length = len(packed_properties)
        if 0 <= offset < 1 << 32 and 0 <= index < 1 << 16:
            head = NARROW.pack(flags, length, time, offset, index, bundle)
        else:
            head = WIDE.pack(flags | WIDE_HEAD, length, time, offset, index, bundle)
    except (struct.error, UnicodeEncodeError, Unpackable):  # too big, a lone surrogate...
        return None
    return head + extra + packed_properties + user


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


class Unpackable(Exception):
    """A property `pack` cannot represent: the member stays objects."""


def property_bytes(key: PropertyKey, value: Any) -> bytes:
    """One property packed; short texts are cached (plans, countries repeat)."""
    if type(value) is not str or len(value) > 64:
        return _encode_property(key, value)
    cache_key = (key, value)
    cached = _PROPERTY_BYTES.get(cache_key)
    if cached is None:
        cached = _encode_property(key, value)
        if len(_PROPERTY_BYTES) < MAX_CACHED:
            _PROPERTY_BYTES[cache_key] = cached
    return cached


def _encode_property(key: PropertyKey, value: Any) -> bytes:
    key_id = _key_id(key)
    if key_id is None:
        raise Unpackable(key)
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
    raise Unpackable(value)


def unpack(packed: bytes, keys: Sequence[PropertyKey] | None = None) -> Member:
    """The member `pack` made; `keys`: the key table it was packed with, when it is not
    this process's (`key_table`)."""
    flags = packed[0]
    head = WIDE if flags & WIDE_HEAD else NARROW
    _, length, time, offset, index, bundle = head.unpack_from(packed)
    stamp = (time, offset, index)
    at = head.size
    visible = time
    user_stamp = stamp if flags & USER else NO_STAMP
    properties_stamp = stamp
    if flags & _UNUSUAL:  # late, or fields set by several events
        if flags & LATE:
            visible = TIME.unpack_from(packed, at)[0]
            at += TIME.size
        if flags & USER_STAMPED:
            user_stamp = STAMP.unpack_from(packed, at)
            at += STAMP.size
        if flags & PROPERTIES_STAMPED:
            properties_stamp = STAMP.unpack_from(packed, at)
            at += STAMP.size
    end = at + length
    region = packed[at:end]
    flat = _unpack_properties(region, keys) if keys is not None else _cached_flat(region)
    member = Member(
        (
            Snapshot(
                stamp,
                visible,
                flags & ENTER == ENTER,
                packed[end:].decode("utf-8") if flags & USER else None,
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


def properties_of(region: bytes) -> EventProperties:
    """A packed member's properties from their bytes (`packed_rows.decode_columns`' regions)."""
    return EventProperties(_cached_flat(region), NO_STAMP)


def _cached_flat(region: bytes) -> tuple[Any, ...]:
    """The properties packed in `region` (with this process's keys), cached by their bytes."""
    cached = _FLATS.get(region)
    if cached is None:
        cached = _unpack_properties(region, _KEYS)
        if len(_FLATS) < MAX_CACHED:
            _FLATS[region] = cached
    return cached
