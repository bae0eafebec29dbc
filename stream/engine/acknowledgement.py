"""When a handled record may be acknowledged: only once the table holds its changes.

The processor's journal writes a partition's changed members in bundles (`state/journal.py`),
so a record can be handled while its changes still wait in memory. Such records wait here,
per partition, and are released for acknowledgement together once the partition's journal
is durable: at once when the record left nothing unwritten, when the journal flushed by size,
or when its oldest change has waited `flush_after_s` (this flushes it). A tick sent by the
worker's flush timer handles a partition whose records stopped coming (`dirty_partitions`).

The guarantee: nothing returned by `handled` has changes the table does not hold, so a
commit never covers a record whose state a crash could lose. What is released by `revoke`
or `abandon_all` must not be acknowledged: its next owner (or the next start) reads it
again. Pure: no Faust, and the caller passes the clock's reading.
"""

from __future__ import annotations

from typing import Generic, Protocol, TypeVar

__all__ = ["Acknowledgements", "Journals", "FLUSH_SECONDS"]

#: How long a change may wait in a journal before it is flushed (and its record
#: acknowledged) though fewer than `journal.FLUSH_MEMBERS` members wait with it.
FLUSH_SECONDS = 0.25

M = TypeVar("M")
"""A record as the consumer knows it (opaque here)."""


class Journals(Protocol):
    """The partitions' journals, as `engine.processor.Processor` offers them."""

    def durable(self, partition: int) -> bool:
        """Whether the table holds every change of the records handled on `partition`."""

    def flush(self, partition: int) -> None:
        """Write the partition's waiting changes to the table now."""


class Acknowledgements(Generic[M]):
    """Handled records waiting for their partition's journal to be written."""

    def __init__(self, journals: Journals, *, flush_after_s: float = FLUSH_SECONDS) -> None:
        self._journals = journals
        self._flush_after_s = flush_after_s
        self._waiting: dict[int, list[tuple[str, M]]] = {}
        self._dirty_since: dict[int, float] = {}

    def handled(self, topic: str, partition: int, record: M, now: float) -> list[M]:
        """`record` of `topic` is handled: the records of the partition that may be
        acknowledged now (in the order they were handled), possibly none."""
        waiting = self._waiting.setdefault(partition, [])
        waiting.append((topic, record))
        if not self._journals.durable(partition):
            since = self._dirty_since.setdefault(partition, now)
            if now - since < self._flush_after_s:
                return []
            self._journals.flush(partition)
        self._dirty_since.pop(partition, None)
        released = [waiting_record for _, waiting_record in waiting]
        waiting.clear()
        return released

    def dirty_partitions(self) -> list[int]:
        """The partitions holding records that wait for a flush, ascending."""
        return sorted(self._dirty_since)

    def revoke(self, topic: str, partition: int) -> list[M]:
        """The partition of `topic` is no longer ours: its waiting records, to abandon."""
        self._dirty_since.pop(partition, None)
        waiting = self._waiting.get(partition, [])
        revoked = [record for record_topic, record in waiting if record_topic == topic]
        waiting[:] = [(t, record) for t, record in waiting if t != topic]
        return revoked

    def abandon_all(self) -> list[M]:
        """The worker stops: every waiting record, to abandon (the next start reads it)."""
        abandoned = [record for waiting in self._waiting.values() for _, record in waiting]
        self._waiting.clear()
        self._dirty_since.clear()
        return abandoned
