"""In-order delivery: hand each partition's records on in offset order, none skipped.

Faust's consumer can skip records: a fetched batch still being iterated after a seek, or
records dropped when flow control resumes, move its read position past records the agent
never saw (seen against Tansu by the kill -9 test: a sync written without the first records
of a partition). A sync written from such state is wrong for good, so the agent puts every
record through `InOrderDelivery` first:

- a record at the expected offset is released, with any held successors;
- a record below it was already handled by this process: released to nobody (a duplicate);
- a record above it is held, and the caller is asked to rewind the partition to the
  expected offset, so the missing records are fetched again.

Offsets that really do not exist (a transactional producer's commit markers, compaction)
come back the same way every time: once a rewind has delivered the first held record again
`confirmations` times with nothing before it, the hole is accepted as absent.

The caller acknowledges a record only once it is released and handled, so a commit never
covers a record that is only held. Pure: no Faust, no clock.
"""

from __future__ import annotations

import itertools
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

__all__ = ["Released", "InOrderDelivery"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Released(Generic[T]):
    """What to do after offering one record.

    `records`: handle these now, in this order. `duplicates`: already handled, acknowledge
    them without handling. `rewind_to`: seek the partition back to this offset. `absent`:
    the offsets `[start, end)` do not exist and count as handled.
    """

    records: list[T] = field(default_factory=list)
    duplicates: list[T] = field(default_factory=list)
    rewind_to: int | None = None
    absent: tuple[int, int] | None = None


_tenures = itertools.count()
"""Numbers the assignments of partitions, process-wide."""


@dataclass(slots=True)
class _Partition(Generic[T]):
    expected: int | None
    started: bool
    held: dict[int, list[T]] = field(default_factory=dict)
    rewound_for: int | None = None
    redeliveries: int = 0
    tenure: int = field(default_factory=lambda: next(_tenures))
    """Which assignment of the partition this is: a new state after `revoke` has a new one."""


class InOrderDelivery(Generic[T]):
    def __init__(self, *, confirmations: int = 2) -> None:
        self.confirmations = confirmations
        self._partitions: dict[Hashable, _Partition[T]] = {}

    def start(self, key: Hashable, next_offset: int | None) -> list[T]:
        """The partition's records begin at `next_offset` (its committed offset; None: at
        the lowest offset delivered). Until then its records are only held; the next offer
        releases what can go. Records this process handled already stay handled. Returns
        the held records below the start (handled before: duplicates)."""
        state = self._partitions.setdefault(key, _Partition(expected=None, started=False))
        state.started = True
        if next_offset is not None and (state.expected is None or next_offset > state.expected):
            state.expected = next_offset
        return self._drop_below(state)

    def held(self) -> list[T]:
        """Every record held, of every partition (to give them up when stopping)."""
        return [record for state in self._partitions.values() for record in _held(state)]

    def tenure(self, key: Hashable) -> int | None:
        """Which assignment of the partition records are handled under (None: not ours).
        When it differs after a record's handling, the partition was revoked meanwhile: the
        record belongs to its new owner (or the next assignment) and must not be
        acknowledged here, whatever order Faust runs a rebalance's callbacks in."""
        state = self._partitions.get(key)
        return None if state is None else state.tenure

    def revoke(self, key: Hashable) -> list[T]:
        """The partition was revoked: returns the records it still held (never acked)."""
        state = self._partitions.pop(key, None)
        return [] if state is None else _held(state)

    def next_offset(self, key: Hashable) -> int | None:
        state = self._partitions.get(key)
        return None if state is None else state.expected

    def offer(self, key: Hashable, offset: int, record: T) -> Released[T]:
        state = self._partitions.get(key)
        if state is None:
            state = self._partitions[key] = _Partition(expected=None, started=False)
        elif state.expected == offset and state.started and not state.held:
            state.expected = offset + 1  # the usual case: the next record, nothing held
            state.redeliveries = 0
            return Released([record])
        state.held.setdefault(offset, []).append(record)
        if not state.started:
            return Released()
        if state.expected is None:
            state.expected = min(state.held)
        stale = self._drop_below(state)
        if state.expected in state.held:
            state.redeliveries = 0
            records, duplicates = self._drain(state)
            return Released(records, stale + duplicates)
        if offset < state.expected:
            return Released(duplicates=stale)  # handled already
        return self._missing(state, offset, stale)

    def _missing(self, state: _Partition[T], offset: int, stale: list[T]) -> Released[T]:
        """The expected record has not come; `offset` (now held) is beyond it."""
        assert state.expected is not None
        if state.rewound_for != state.expected:
            state.rewound_for = state.expected
            return Released(duplicates=stale, rewind_to=state.expected)  # fetch the hole again
        if len(state.held[offset]) == 1 or offset != min(state.held):
            return Released(duplicates=stale)  # the rest of a batch fetched before the rewind
        state.redeliveries += 1  # the rewind brought the first held record again, first
        if state.redeliveries < self.confirmations:
            return Released(duplicates=stale, rewind_to=state.expected)
        absent = (state.expected, offset)
        state.expected = offset
        state.redeliveries = 0
        records, duplicates = self._drain(state)
        return Released(records, stale + duplicates, absent=absent)

    def _drain(self, state: _Partition[T]) -> tuple[list[T], list[T]]:
        """Release held records from the expected offset on; extra copies are duplicates."""
        records: list[T] = []
        duplicates: list[T] = []
        if state.expected is None:
            return records, duplicates
        while state.expected in state.held:
            first, *copies = state.held.pop(state.expected)
            records.append(first)
            duplicates.extend(copies)
            state.expected += 1
        return records, duplicates

    def _drop_below(self, state: _Partition[T]) -> list[T]:
        """Held records below the expected offset: handled already (duplicates)."""
        expected = state.expected
        if expected is None:
            return []
        below = sorted(offset for offset in state.held if offset < expected)
        return [record for offset in below for record in state.held.pop(offset)]


def _held(state: _Partition[T]) -> list[T]:
    return [record for copies in state.held.values() for record in copies]
