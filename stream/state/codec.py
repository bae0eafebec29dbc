"""Table keys and values: domain state <-> compact JSON bytes for Faust's changelogs.

Keys carry the input partition, so a worker rebuilds exactly the partitions it owns:
`b␟{partition}␟{seq}` a bundle of members (`journal.py`; its bytes are `bundles.py`'s),
`c␟{partition}␟{cohort}` a cohort, `p␟{partition}` the partition's emitted watermark, rule
starts and pending syncs (␟ is U+001F, which cohort ids cannot contain). Values are bytes
(the table's serializer is "raw"): one immutable object per key keeps memory down and the
garbage collector off millions of lists.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import orjson

from stream.domain.membership import EventProperties, Member, PropertyKey, Snapshot, Stamp, shared

__all__ = [
    "bundle_key",
    "cohort_key",
    "partition_key",
    "parse_key",
    "encode_history",
    "decode_history",
]

_SEP = "\x1f"


def bundle_key(partition: int, seq: int) -> str:
    return f"b{_SEP}{partition}{_SEP}{seq}"


def cohort_key(partition: int, cohort_id: str) -> str:
    return f"c{_SEP}{partition}{_SEP}{cohort_id}"


def partition_key(partition: int) -> str:
    return f"p{_SEP}{partition}"


def parse_key(key: str) -> tuple[str, int, list[str]]:
    """-> (kind, partition, the remaining parts)."""
    kind, partition, *rest = key.split(_SEP)
    return kind, int(partition), rest


def encode_json(value: Any) -> bytes:
    """Compact JSON: orjson (about ten times faster, the bulk of a journal flush), or the
    standard library for what orjson refuses (integers beyond 64 bits, from the input)."""
    try:
        return orjson.dumps(value)
    except TypeError:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def decode_json(value: bytes) -> Any:
    return json.loads(value)


def encode_history(member: Member) -> bytes:
    """A member's snapshots as JSON (a journal bundle's members that do not pack)."""
    return encode_json([_encode_snapshot(item) for item in member.history])


def decode_history(value: bytes) -> Member:
    return Member([_decode_snapshot(item) for item in decode_json(value)])


def _encode_snapshot(item: Snapshot) -> tuple[Any, ...]:
    """JSON writes tuples as arrays: no list is built for a stamp."""
    stamp = item.stamp
    properties = item.properties
    if type(properties) is EventProperties and properties.stamp is stamp:  # one event's
        flat = properties.flat
        props = [(*key, value, None) for key, value in zip(flat[0::2], flat[1::2], strict=True)]
    else:
        props = [
            (name, app, value, None if prop_stamp == stamp else prop_stamp)
            for (name, app), (value, prop_stamp) in properties.items()
        ]
    user_stamp = None if item.user_stamp == stamp else item.user_stamp
    return (stamp, item.visible, int(item.enter), item.user_id, user_stamp, props)


def _decode_snapshot(value: list[Any]) -> Snapshot:
    stamp_list, visible, enter, user_id, user_stamp, props = value
    stamp: Stamp = (stamp_list[0], stamp_list[1], stamp_list[2])
    return Snapshot(
        stamp=stamp,
        visible=visible,
        enter=bool(enter),
        user_id=user_id,
        user_stamp=stamp if user_stamp is None else _stamp(user_stamp),
        properties=_decode_properties(props, stamp),
    )


def _decode_properties(props: list[list[Any]], stamp: Stamp) -> Mapping[PropertyKey, Any]:
    if all(prop_stamp is None for *_, prop_stamp in props):  # one event's: the compact form
        flat: list[Any] = []
        for name, app, value, _ in props:
            flat += (shared(name, app), value)
        return EventProperties(tuple(flat), stamp)
    return {
        (name, app): (prop_value, stamp if prop_stamp is None else _stamp(prop_stamp))
        for name, app, prop_value, prop_stamp in props
    }


def _stamp(value: list[int]) -> Stamp:
    return (value[0], value[1], value[2])
