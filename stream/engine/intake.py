"""A record's way in: parsed and admitted, or dead-lettered with the reason, and where
each partition's input stands afterwards (what syncs decided now cover, and lag).

The processor (`processor.py`) asks `Intake` about every record, one at a time or in runs
(`runs.py`); nothing here applies an event or decides a sync."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import NamedTuple, Protocol

from stream.config import Settings
from stream.domain.events import MembershipEvent, parse_message
from stream.engine.admission import too_far_ahead, too_late
from stream.engine.outbox import Outbox
from stream.engine.slot import Position, Slot
from stream.errors import InvalidEvent, describe
from stream.metrics import Metrics
from stream.state.partition import PartitionState

__all__ = ["InputRecord", "Intake", "Record"]

log = logging.getLogger(__name__)


class InputRecord(Protocol):
    """A record as the processor takes it (`kafka.record.Record` is one)."""

    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def timestamp_ms(self) -> int | None: ...


class Record(NamedTuple):
    """An `InputRecord` made from a record's fields."""

    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int | None


class Intake:
    """Admission and dead letters for the processor's records. `settings` is the
    processor's, replaced on a reload; `slot_of(partition)` its slot for the partition
    (made if need be), where the input's position is kept."""

    def __init__(
        self,
        settings: Settings,
        outbox: Outbox,
        metrics: Metrics,
        slot_of: Callable[[int], Slot],
    ) -> None:
        self.settings = settings
        self.outbox = outbox
        self.metrics = metrics
        self._slot_of = slot_of

    async def parsed(
        self, topic: str, partition: int, record: InputRecord
    ) -> Sequence[MembershipEvent] | None:
        """The record's events; None when it was dead-lettered instead."""
        try:
            return parse_message(record.value)
        except InvalidEvent as exc:
            await self.dead_letter(topic, partition, record, exc.reason)
        except Exception as exc:  # a fault of the record, not of the worker: never fatal
            reason = f"the record could not be parsed: {describe(exc)}"
            await self.dead_letter(topic, partition, record, reason)
        return None

    async def ahead(
        self,
        topic: str,
        partition: int,
        record: InputRecord,
        events: Sequence[MembershipEvent],
    ) -> bool:
        """Dead-letter an input record dated too far ahead of its Kafka timestamp; whether
        it was (`admission.too_far_ahead`)."""
        if topic != self.settings.kafka.topic or record.timestamp_ms is None:
            return False
        reason = too_far_ahead(self.settings.kafka, record.timestamp_ms, record.key, events)
        if reason is None:
            return False
        self.metrics.too_far_ahead += 1
        await self.dead_letter(topic, partition, record, reason)
        return True

    async def late(
        self,
        topic: str,
        partition: int,
        record: InputRecord,
        state: PartitionState,
        events: Sequence[MembershipEvent],
    ) -> bool:
        """Dead-letter a record too late to apply; whether it was (`admission.too_late`)."""
        reason = too_late(self.settings.kafka, state, events)
        if reason is None:
            return False
        self.metrics.too_late += 1
        await self.dead_letter(topic, partition, record, reason)
        return True

    async def dead_letter(
        self, topic: str, partition: int, record: InputRecord, reason: str
    ) -> None:
        """Send the record to the dead-letter topic with `reason`; it counts as handled."""
        self.handled(topic, partition, record.offset)
        self.metrics.dead_letters += 1
        message = f"dead letter {topic}/{partition}@{record.offset}: {reason}"
        log.warning("%s", message)
        self.metrics.recent_errors.appendleft(message)
        await self.outbox.dead_letter(
            topic=topic,
            partition=partition,
            offset=record.offset,
            key=record.key,
            value=record.value,
            reason=reason,
        )

    def handled(self, topic: str, partition: int, offset: int) -> None:
        """The record at `offset` is applied or dead-lettered: syncs decided from now on
        cover the input up to it (their manifests' `input`), also when the records after the
        last one applied are all dead letters, so a restart writes the same manifests."""
        slot = self._slot_of(partition)
        if slot.position is None:
            slot.position = Position(topic, offset + 1)
        else:
            slot.position.topic, slot.position.next_offset = topic, offset + 1

    def seen(self, topic: str, partition: int, offset: int) -> None:
        """The record at `offset` is done with (handled, forwarded or left): for lag."""
        if topic == self.settings.kafka.topic:
            self._slot_of(partition).input_next_offset = offset + 1
