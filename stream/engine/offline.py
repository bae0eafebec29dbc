"""Run the worker's logic over a list of records without Kafka or Faust.

Records are put on partitions exactly as the producer would (by cohort key) and numbered
with per-partition offsets, then fed to a `Processor` whose store is a dict. The demo uses
it to know which syncs and bytes to expect; tests use it as the reference run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from stream.config import Settings
from stream.domain.partitioner import cohort_key_of, partition_for
from stream.engine.processor import Processor
from stream.output.sync import SyncOutput

__all__ = ["expected_outputs"]


class _CollectingOutbox:
    def __init__(self) -> None:
        self.outputs: list[SyncOutput] = []
        self.dead_letters: list[str] = []

    async def dead_letter(self, *, reason: str, **_: object) -> None:
        self.dead_letters.append(reason)

    async def forward(self, *, key: bytes, value: bytes, partition: int) -> None:
        raise AssertionError("offline records are always on their cohort's partition")

    async def write(self, build: Callable[[], SyncOutput], written: Callable[[], None]) -> None:
        self.outputs.append(build())
        written()


def expected_outputs(settings: Settings, lines: Sequence[bytes]) -> list[SyncOutput]:
    """Every sync the worker writes for these records (event time only, no idle ticks)."""
    outbox = _CollectingOutbox()
    processor = Processor(settings, {}, outbox, partition_for)
    partitions = settings.kafka.partitions
    next_offset = [0] * partitions

    async def feed() -> None:
        for line in lines:
            key = cohort_key_of(line)
            partition = partition_for(key, partitions) if key is not None else 0
            offset = next_offset[partition]
            next_offset[partition] += 1
            await processor.on_record(settings.kafka.topic, partition, offset, key, line)

    asyncio.run(feed())
    return outbox.outputs
