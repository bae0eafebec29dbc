"""One record as cohort-sync's Kafka readers hand it over (kafka-python's and aiokafka's)."""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["Record"]


class Record(NamedTuple):
    """A tuple, made for every record a replay reads: half the cost of a dataclass's."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int
    """The record's Kafka timestamp (-1: none, a record of the oldest message format)."""
