"""One record as cohort-sync's Kafka readers hand it over (kafka-python's and aiokafka's)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Record"]


@dataclass(frozen=True, slots=True)
class Record:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int
    """The record's Kafka timestamp (-1: none, a record of the oldest message format)."""
