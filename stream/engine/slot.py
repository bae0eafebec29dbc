"""What the processor keeps for each partition it holds, in one place: `revoke` drops it
whole, and a rebuild in flight checks it is still the same slot."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from stream.state.journal import Journal
from stream.state.partition import PartitionState
from stream.state.stored import LoadedPartition

__all__ = ["Position", "Rebuild", "Slot"]


@dataclass
class Position:
    topic: str
    next_offset: int


@dataclass(frozen=True, eq=False)
class Rebuild:
    """A partition rebuilt from `items`, a copy of the table's keys and values of it."""

    items: dict[str, Any]
    loaded: LoadedPartition

    def items_are(self, now: dict[str, Any]) -> bool:
        """Whether the table holds what the partition was rebuilt from: the same keys with
        equal values (most the very same objects, found so without comparing bytes)."""
        return now.keys() == self.items.keys() and all(
            value is self.items[key] or value == self.items[key] for key, value in now.items()
        )


@dataclass(eq=False)
class Slot:
    """Everything the processor keeps for one partition, dropped whole by `revoke`. A
    rebuild that finds another slot (or none) when it is done knows the partition was taken
    away meanwhile."""

    state: PartitionState | None = None
    """None until the partition is rebuilt from the store (records only forwarded or
    dead-lettered need none)."""
    journal: Journal | None = None
    """Set with `state`."""
    rebuild: asyncio.Future[Rebuild] | None = None
    """The rebuild in flight, from the assignment or the first record or tick (its result is
    installed as `state` at the partition's next record or tick, in stream iteration)."""
    position: Position | None = None
    """After the last record applied or dead-lettered: what syncs decided now cover."""
    input_next_offset: int | None = None
    """The input offset after the last record handled (for lag)."""
    written: set[tuple[str, str, int]] = field(default_factory=set)
    """Pending syncs the outbox reported written, not yet retired."""
    unsubmitted: bool = False
    """Its pending syncs must be handed to the outbox (again)."""
    meta_changed: bool = False
    """A reload changed its metadata, persisted at its next event."""
