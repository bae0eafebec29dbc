"""Fakes the engine's unit tests share."""

from __future__ import annotations


class Journals:
    """Partitions whose journals hold unwritten changes, and the flushes asked for
    (`engine.acknowledgement.Journals`)."""

    def __init__(self) -> None:
        self.dirty: set[int] = set()
        self.flushed: list[int] = []

    def durable(self, partition: int) -> bool:
        return partition not in self.dirty

    def flush(self, partition: int) -> None:
        self.flushed.append(partition)
        self.dirty.discard(partition)
