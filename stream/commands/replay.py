"""`cohort-sync replay`: rebuild the files from the beginning of the input topic.

The replay reads every partition from its beginning to the end offsets it saw at start,
with no consumer group and no table topics: its state lives in memory and the live worker
is left untouched. Records go through the same `Processor` as in the worker, on event time
only (no idle ticks), so for the same input it writes the same bytes under the same keys.
"""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TextIO

from stream.config import Settings
from stream.domain.events import parse_time
from stream.domain.partitioner import partition_for
from stream.domain.wording import count
from stream.engine.processor import Processor
from stream.errors import InvalidEvent, OptionError
from stream.kafka.client import TopicReader
from stream.metrics import Metrics
from stream.ops.progress import Progress
from stream.output.sync import SyncOutput
from stream.output.writer import SyncWriter
from stream.sinks import open_sink
from stream.state.partition import SyncJob

__all__ = ["ReplayOptions", "ReplaySummary", "parse_moment", "replay_settings", "run_replay"]

_PREFIX = re.compile(r"^[A-Za-z0-9._\-=]+(/[A-Za-z0-9._\-=]+)*$")


@dataclass(frozen=True, kw_only=True)
class ReplayOptions:
    since: int | None = None
    until: int | None = None
    prefix: str | None = None
    destination: str | None = None
    overwrite: bool = False
    """Replace existing objects that hold other bytes (by default they are kept)."""

    def wants(self, job: SyncJob) -> bool:
        after_since = self.since is None or job.sync_time >= self.since
        return after_since and (self.until is None or job.sync_time <= self.until)


@dataclass(frozen=True)
class ReplaySummary:
    records: int
    syncs: int
    files: int
    """Files of the syncs: written, identical already, or kept."""
    bytes: int
    """Bytes written (files that were there already are not counted)."""
    seconds: float


def parse_moment(text: str, option: str) -> int:
    """An ISO-8601 time with an offset (`--since`, `--until`) -> epoch ms."""
    try:
        return parse_time(text, option)
    except InvalidEvent as exc:
        raise OptionError(option, exc.reason.removeprefix(f"{option}: ")) from None


def replay_settings(settings: Settings, options: ReplayOptions) -> Settings:
    """Keep one destination's syncs (`--destination`) and put `--prefix` in front of every
    destination's path (S3), or make it a subfolder (file://)."""
    destinations = dict(settings.destinations)
    syncs = settings.syncs
    if options.destination is not None:
        if options.destination not in destinations:
            known = ", ".join(sorted(destinations)) or "none defined"
            raise OptionError(
                "--destination", f"unknown destination {options.destination!r} ({known})"
            )
        destinations = {options.destination: destinations[options.destination]}
        syncs = tuple(rule for rule in syncs if rule.destination == options.destination)
    if options.prefix is not None:
        prefix = options.prefix.strip("/")
        if not _PREFIX.match(prefix) or ".." in prefix.split("/"):
            raise OptionError("--prefix", f"{options.prefix!r} is not a safe path prefix")
        destinations = {
            name: replace(
                dest,
                path="/".join(part for part in (prefix, dest.path) if part)
                if dest.scheme == "s3"
                else f"{dest.path.rstrip('/')}/{prefix}",
            )
            for name, dest in destinations.items()
        }
    return replace(settings, destinations=destinations, syncs=syncs)


class _ReplayOutbox:
    """Writes syncs; keeps dead letters and forwarded records for the replay loop."""

    def __init__(self, writer: SyncWriter) -> None:
        self.writer = writer
        self.forwarded: list[tuple[bytes, bytes, int]] = []
        self.dead_letters = 0

    async def dead_letter(self, **_: object) -> None:
        self.dead_letters += 1  # already on the dead-letter topic from the live worker

    async def forward(self, *, key: bytes, value: bytes, partition: int) -> None:
        self.forwarded.append((key, value, partition))

    async def write(self, build: Callable[[], SyncOutput], written: Callable[[], None]) -> None:
        await self.writer.write(build)
        written()


def run_replay(
    settings: Settings, options: ReplayOptions, *, out: TextIO = sys.stdout, tty: bool | None = None
) -> ReplaySummary:
    return asyncio.run(_replay(replay_settings(settings, options), options, out, tty))


async def _replay(
    settings: Settings, options: ReplayOptions, out: TextIO, tty: bool | None
) -> ReplaySummary:
    loop = asyncio.get_running_loop()
    reader = TopicReader(settings.kafka)
    await loop.run_in_executor(None, reader.start)
    settings = replace(settings, kafka=replace(settings.kafka, partitions=len(reader.end)))
    metrics = Metrics()
    sinks = {
        name: open_sink(dest, overwrite=options.overwrite)
        for name, dest in settings.destinations.items()
    }
    writer = SyncWriter(sinks, metrics)
    outbox = _ReplayOutbox(writer)
    processor = Processor(
        settings, {}, outbox, partition_for, metrics, wanted=options.wants, journal=False
    )
    progress = Progress(reader.total, out, tty=tty)
    repartitioned = settings.kafka.repartition_topic
    next_forwarded = dict.fromkeys(reader.end, 0)
    done = 0
    try:
        while not reader.done():
            for record in await loop.run_in_executor(None, reader.poll):
                await processor.on_record(
                    settings.kafka.topic,
                    record.partition,
                    record.offset,
                    record.key,
                    record.value,
                    timestamp_ms=record.timestamp_ms,
                )
                while outbox.forwarded:
                    key, value, home = outbox.forwarded.pop(0)
                    await processor.on_record(repartitioned, home, next_forwarded[home], key, value)
                    next_forwarded[home] += 1
                done += 1
            progress.update(done=done, event_time_ms=_newest(processor), files=_files(metrics))
    finally:
        writer.close()
        await loop.run_in_executor(None, reader.close)
    progress.update(done=done, event_time_ms=_newest(processor), files=_files(metrics), force=True)
    summary = ReplaySummary(
        records=done,
        syncs=sum(metrics.syncs.values()),
        files=_files(metrics),
        bytes=metrics.bytes,
        seconds=progress.elapsed,
    )
    progress.finish(_summary_line(summary, metrics, outbox.dead_letters))
    return summary


def _files(metrics: Metrics) -> int:
    """Files of the syncs so far, whether written now or found there already."""
    return metrics.new_objects + metrics.unchanged_objects + metrics.kept_objects


def _summary_line(summary: ReplaySummary, metrics: Metrics, dead_letters: int) -> str:
    line = (
        f"replay done: {count(summary.records, 'record')}, {count(summary.syncs, 'sync')}, "
        f"{count(summary.files, 'file')} ({metrics.new_objects:,} new, "
        f"{metrics.unchanged_objects:,} identical already, {metrics.kept_objects:,} kept), "
        f"{summary.bytes:,} bytes written in {summary.seconds:.1f}s"
    )
    if dead_letters:
        line += f"; {count(dead_letters, 'invalid record')} skipped"
    if metrics.kept_objects:
        line += "; kept = existing files with other bytes, left alone (--overwrite replaces them)"
    return line


def _newest(processor: Processor) -> int | None:
    marks = [s.watermark for s in processor.partitions.values() if s.watermark is not None]
    return max(marks) if marks else None
