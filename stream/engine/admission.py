"""Why a parsed record is not applied: the reasons that dead-letter it whole, each naming
the setting that decided (pure functions of the record and its partition's state)."""

from __future__ import annotations

from collections.abc import Sequence

from stream.config import KafkaSettings
from stream.domain.events import MembershipEvent, time_span
from stream.domain.windows import format_duration, format_time
from stream.state.partition import PartitionState

__all__ = ["too_far_ahead", "too_late"]


def too_late(
    kafka: KafkaSettings, state: PartitionState, events: Sequence[MembershipEvent]
) -> str | None:
    """Why the record is too late to apply (`retention.py`), or None when it is not."""
    retain, decided = kafka.retain_exited_ms, state.emitted_through
    if retain is None or decided is None:
        return None
    oldest, _ = time_span(events)
    if oldest >= decided - retain:
        return None
    return (
        f"too late: event time {format_time(oldest)} is more than kafka.retain_exited "
        f"({format_duration(retain)}) before the partition's watermark "
        f"{format_time(decided)}; members absent that long are forgotten"
    )


def too_far_ahead(
    kafka: KafkaSettings,
    timestamp_ms: int,
    key: bytes | None,
    events: Sequence[MembershipEvent],
) -> str | None:
    """Why the record's event time cannot be believed (`kafka.max_future`), or None. The
    record's Kafka timestamp is in the log, so a replay decides the same."""
    limit = kafka.max_future_ms
    if limit is None or timestamp_ms < 0:  # -1: a record of the oldest format has none
        return None
    _, newest = time_span(events)
    if newest <= timestamp_ms + limit:
        return None
    shown = "none" if key is None else repr(key.decode("utf-8", "replace")[:64])
    return (
        f"too far ahead: event time {format_time(newest)} is more than kafka.max_future "
        f"({format_duration(limit)}) after the record's Kafka timestamp "
        f"{format_time(timestamp_ms)} (key {shown})"
    )
