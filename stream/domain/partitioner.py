"""Where a record goes: its key (the cohort id) and the partition Kafka's default
partitioner gives that key. Pure, so the engine and its tests place records exactly as a
producer would without loading a Kafka client."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["cohort_key_of", "murmur2", "partition_for"]

_SEED = 0x9747B28C
_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """MurmurHash2 as the Java client computes it (`Utils.murmur2`), unsigned."""
    length = len(data)
    h = (_SEED ^ length) & _MASK
    whole = length - length % 4
    for i in range(0, whole, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    tail = data[whole:]
    if len(tail) >= 3:
        h ^= tail[2] << 16
    if len(tail) >= 2:
        h ^= tail[1] << 8
    if tail:
        h = ((h ^ tail[0]) * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h


def partition_for(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner (Java, kafka-python, aiokafka) picks."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def cohort_key_of(line: bytes) -> bytes | None:
    """The record key for one JSON line: its cohort id, or None when it has none."""
    try:
        document: Any = json.loads(line)
    except ValueError:
        return None
    cohort = document.get("cohort_id") if isinstance(document, dict) else None
    if isinstance(cohort, int | str) and not isinstance(cohort, bool):
        return str(cohort).encode("utf-8")
    return None
