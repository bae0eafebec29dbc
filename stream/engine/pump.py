"""The record pump: one record's way from the consumer to its acknowledgement.

A record the consumer hands over is, in order (docs/architecture.md, "One record's life"):

1. **received**: offered to `InOrderDelivery` (`delivery.py`), which holds it while an
   earlier offset of its partition is missing (the pump then asks the consumer to rewind);
2. **handled**: released in offset order and given to the handler (the processor): its
   events are applied, or it is dead-lettered or forwarded;
3. **durable**: its partition's journal has written its changes to the table
   (`acknowledgement.py` waits for that);
4. **acknowledged**: the pump tells the consumer, whose next commit may pass it.

A record is **abandoned** instead (never acknowledged: its next owner, or the next start,
reads it again) when its partition is revoked before it is acknowledged, when the worker
stops, or when handling it failed for a reason that is not the record's. A failure that is
not the record's own stops the worker (`stop_for`): nothing after it is acknowledged.

The consumer is a small protocol (`Consumer`), so the pump runs in unit tests without
Faust or a broker; `faust/worker.py` wires Faust's consumer to it. Pure: no framework,
and the monotonic clock is passed in.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Generic, Protocol, TypeVar

from stream.engine.acknowledgement import Acknowledgements, Journals
from stream.engine.delivery import InOrderDelivery
from stream.errors import WriteAbandoned, describe

__all__ = ["Consumer", "PartitionKey", "RecordPump", "Locate"]

log = logging.getLogger(__name__)

R = TypeVar("R")
"""A record as the consumer knows it (opaque here; `Locate` reads where it is from)."""

R_contra = TypeVar("R_contra", contravariant=True)

PartitionKey = tuple[str, int]
"""A partition of a topic: `(topic, partition)` (Faust's `TP` is one)."""

Locate = Callable[[R], tuple[str, int, int]]
"""A record's topic, partition and offset."""


class Consumer(Protocol[R_contra]):
    """What the pump asks of the consumer that fetches and commits its records."""

    def acknowledge(self, record: R_contra) -> None:
        """The record is handled and durable: a commit may pass it."""

    def abandon(self, record: R_contra) -> None:
        """Give the record up unacknowledged: no commit passes it, no stop waits for it."""

    async def rewind(self, key: PartitionKey, offset: int, seen: int) -> None:
        """Fetch the partition again from `offset` (`seen` came before it)."""

    async def mark_absent(self, key: PartitionKey, start: int, end: int) -> None:
        """Offsets `[start, end)` of the partition do not exist: commits may pass them."""


class RecordPump(Generic[R]):
    """Delivers a consumer's records in order to `handle`, and acknowledges each one only
    once it is handled and durable. `stop` is called once, with the fault, when the pump
    stops the worker; from then on every record is abandoned."""

    def __init__(
        self,
        consumer: Consumer[R],
        handle: Callable[[R], Awaitable[None]],
        journals: Journals,
        *,
        locate: Locate[R],
        stop: Callable[[str], None],
        monotonic: Callable[[], float],
        confirmations: int = 3,
    ) -> None:
        self._consumer = consumer
        self._handle = handle
        self._locate = locate
        self._stop = stop
        self._monotonic = monotonic
        self.delivery: InOrderDelivery[R] = InOrderDelivery(confirmations=confirmations)
        self.acks: Acknowledgements[R] = Acknowledgements(journals)
        self.progress: dict[PartitionKey, float] = {}
        """When each partition last offered a record, or was assigned (`monotonic`)."""
        self.fault: str | None = None

    def stop_for(self, fault: str) -> None:
        """Stop the worker because of `fault`: nothing is acknowledged past the record in
        hand, so the next start delivers it again. Only the first fault counts."""
        if self.fault is not None:
            return
        self.fault = fault
        log.critical("stopping: %s", fault)
        self._stop(fault)

    # -- assignment, revocation and the stop

    def start(self, starts: Mapping[PartitionKey, int | None]) -> None:
        """The partitions' records begin at these offsets (committed; None: the lowest
        offset delivered). Records held below the start were handled already."""
        for key, offset in starts.items():
            self.progress[key] = self._monotonic()
            for duplicate in self.delivery.start(key, offset):
                self._consumer.acknowledge(duplicate)

    def revoke(self, keys: Iterable[PartitionKey]) -> None:
        """The partitions are no longer ours: their held and waiting records are abandoned
        (their new owner reads them), and the records in hand are not acknowledged."""
        for topic, partition in keys:
            self.progress.pop((topic, partition), None)
            for record in self.delivery.revoke((topic, partition)):
                self._consumer.abandon(record)
            for record in self.acks.revoke(topic, partition):
                self._consumer.abandon(record)

    def abandon_all(self) -> None:
        """The worker stops: every record held or waiting is abandoned (the next start reads
        it again)."""
        for record in self.delivery.held():
            self._consumer.abandon(record)
        for record in self.acks.abandon_all():
            self._consumer.abandon(record)

    # -- one record

    async def receive(self, record: R) -> None:
        """One record from the consumer. Nothing raised here reaches the caller: a record's
        own faults are the handler's to dead-letter, and any other exception stops the
        worker, which then acknowledges nothing more."""
        if self.fault is not None:
            self._consumer.abandon(record)
            return
        try:
            await self._deliver(record)
        except Exception as exc:
            topic, partition, offset = self._locate(record)
            self.stop_for(f"handling {topic}/{partition}@{offset} failed: {describe(exc)}")
            self._consumer.abandon(record)

    async def _deliver(self, record: R) -> None:
        """Put the record through `InOrderDelivery`, then handle what it releases."""
        topic, partition, offset = self._locate(record)
        key = (topic, partition)
        self.progress[key] = self._monotonic()
        released = self.delivery.offer(key, offset, record)
        for duplicate in released.duplicates:
            self._consumer.acknowledge(duplicate)
        if released.rewind_to is not None:
            await self._consumer.rewind(key, released.rewind_to, offset)
        tenure = self.delivery.tenure(key)
        for index, ready in enumerate(released.records):
            try:
                if self.fault is not None:
                    raise WriteAbandoned("stopping")
                await self._handle(ready)
                if self.delivery.tenure(key) != tenure:
                    log.info(
                        "%s/%d was revoked while offset %d was handled: left to its owner",
                        topic,
                        partition,
                        self._locate(ready)[2],
                    )
                    self._abandon(released.records[index:])
                    return
                self._acknowledge(topic, partition, ready)
            except WriteAbandoned:
                log.warning(
                    "stopping: %s/%d from offset %d is left for the next start",
                    topic,
                    partition,
                    self._locate(ready)[2],
                )
                self._abandon(released.records[index:])
                return
            except Exception:
                self._abandon(released.records[index:])
                raise
        if released.absent is not None:
            await self._consumer.mark_absent(key, *released.absent)

    def _abandon(self, records: list[R]) -> None:
        for record in records:
            self._consumer.abandon(record)

    def _acknowledge(self, topic: str, partition: int, record: R) -> None:
        for ready in self.acks.handled(topic, partition, record, self._monotonic()):
            self._consumer.acknowledge(ready)
