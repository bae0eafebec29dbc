"""One share of a replay: some partitions of the input topic, read from their beginning to
the end offsets seen at start, and the cohorts whose home partitions they are.

Records go through the same `Processor` as in the worker, with state in memory, on event
time only (no idle ticks). A record that is not on its cohort's partition is forwarded as
the worker forwards it: to its home partition, applied there at once when this share holds
it, else handed to the share that does (`ShareLink.forward`), which applies it when it
arrives, as the live worker applies what reaches its repartition topic.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import Protocol

from stream.config import Settings
from stream.domain.partitioner import partition_for
from stream.engine.processor import Processor
from stream.kafka.fetch import PartitionFetcher
from stream.metrics import Metrics
from stream.output.lanes import DestinationLanes
from stream.output.sync import SyncOutput
from stream.output.writer import SyncWriter
from stream.sinks import open_sink
from stream.state.partition import SyncJob

__all__ = ["Forwarded", "ShareLink", "ShareReport", "replay_share"]

Forwarded = tuple[bytes, bytes, int]
"""A forwarded record: its key (the cohort's), its value and its home partition."""


@dataclass(frozen=True, slots=True)
class ShareReport:
    """What one share did, for the replay's summary line."""

    records: int
    syncs: int
    new_objects: int
    unchanged_objects: int
    kept_objects: int
    bytes: int
    dead_letters: int
    handed_over: int = 0
    """Records forwarded to a partition of another share."""

    def __add__(self, other: ShareReport) -> ShareReport:
        return ShareReport(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))


class ShareLink(Protocol):
    """How a share talks to the replay and to the other shares."""

    def started(self, total: int) -> None:
        """The share knows its records: `total` between the beginnings and the ends."""

    def progress(self, *, done: int, event_time_ms: int | None, files: int) -> None:
        """`done` records handled so far; the newest watermark; files of the syncs so far."""

    def forward(self, item: Forwarded) -> None:
        """Hand a record to the share that holds its home partition."""

    def arrived(self) -> list[Forwarded]:
        """The records other shares forwarded here since the last call (never waits)."""

    async def rest(self) -> list[Forwarded]:
        """Once this share has read all its partitions: every record still to come from
        the other shares, once they have all read theirs."""


class _Outbox:
    """Hands syncs to their destinations' lanes, which write several cohorts' at once (as
    the worker's do); keeps dead letters and forwarded records for the share's loop."""

    def __init__(self, lanes: DestinationLanes) -> None:
        self.lanes = lanes
        self.forwarded: list[Forwarded] = []
        self.dead_letters = 0

    async def dead_letter(self, **_: object) -> None:
        self.dead_letters += 1  # already on the dead-letter topic from the live worker

    async def forward(self, *, key: bytes, value: bytes, partition: int) -> None:
        self.forwarded.append((key, value, partition))

    async def write(self, build: Callable[[], SyncOutput], written: Callable[[], None]) -> None:
        await self.lanes.submit(build, written)


async def replay_share(
    settings: Settings,
    partitions: list[int],
    link: ShareLink,
    *,
    overwrite: bool,
    wanted: Callable[[SyncJob], bool],
) -> ShareReport:
    """Replay `partitions` (`settings.kafka.partitions` is the topic's partition count)."""
    # Opened first, off the event loop (an S3 client reads its service model from files),
    # so that a replay is timed from its first read
    sinks = await asyncio.to_thread(
        lambda: {
            name: open_sink(d, overwrite=overwrite) for name, d in settings.destinations.items()
        }
    )
    fetcher = PartitionFetcher(settings.kafka, partitions)
    await fetcher.start()
    link.started(fetcher.total)
    metrics = Metrics()
    writer = SyncWriter(sinks, metrics)
    lanes = DestinationLanes(writer)
    outbox = _Outbox(lanes)
    processor = Processor(
        settings, {}, outbox, partition_for, metrics, wanted=wanted, journal=False
    )
    own = set(partitions)
    repartitioned = settings.kafka.repartition_topic
    next_forwarded = dict.fromkeys(own, 0)

    async def apply(forwarded: list[Forwarded]) -> None:
        for key, value, home in forwarded:
            await processor.on_record(repartitioned, home, next_forwarded[home], key, value)
            next_forwarded[home] += 1

    done = handed_over = 0
    try:
        while not fetcher.done():
            records = await fetcher.fetch()
            at = 0
            while at < len(records):  # a partition's records at a time
                partition = records[at].partition
                end = at + 1
                while end < len(records) and records[end].partition == partition:
                    end += 1
                # up to and including the first record forwarded: it is handed on at once
                handled = await processor.on_records(
                    settings.kafka.topic, partition, records[at:end]
                )
                at += handled
                done += handled
                if outbox.forwarded:
                    forwarded, outbox.forwarded = outbox.forwarded, []
                    for item in forwarded:
                        if item[2] in own:
                            await apply([item])
                        else:
                            link.forward(item)
                            handed_over += 1
            await apply(link.arrived())
            link.progress(done=done, event_time_ms=newest(processor), files=files_of(metrics))
        await apply(await link.rest())
        await lanes.drain(timeout=None)  # every sync landed before the share reports
    finally:
        writer.abandon()  # the lanes' writers end (nothing is left to write but on a fault)
        writer.close()
        await fetcher.close()
    link.progress(done=done, event_time_ms=newest(processor), files=files_of(metrics))
    return ShareReport(
        records=done,
        syncs=sum(metrics.syncs.values()),
        new_objects=metrics.new_objects,
        unchanged_objects=metrics.unchanged_objects,
        kept_objects=metrics.kept_objects,
        bytes=metrics.bytes,
        dead_letters=outbox.dead_letters,
        handed_over=handed_over,
    )


def files_of(metrics: Metrics) -> int:
    """Files of the syncs so far, whether written now or found there already."""
    return metrics.new_objects + metrics.unchanged_objects + metrics.kept_objects


def newest(processor: Processor) -> int | None:
    marks = [s.watermark for s in processor.partitions.values() if s.watermark is not None]
    return max(marks) if marks else None


def with_partitions(settings: Settings, count: int) -> Settings:
    """`settings` for a topic of `count` partitions (where each cohort's home is)."""
    return replace(settings, kafka=replace(settings.kafka, partitions=count))
