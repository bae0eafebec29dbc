"""`cohort-sync replay`: rebuild the files from the beginning of the input topic.

The replay reads every partition from its beginning to the end offsets it saw at start,
with no consumer group and no table topics: its state lives in memory and the live worker
is left untouched. Records go through the same `Processor` as in the worker, on event time
only (no idle ticks), so for the same input it writes the same bytes under the same keys.

The partitions are shared among processes (`--processes`, by default one per CPU this
process may use), so that every core works: a cohort's records and state live on its home
partition, and each partition's records are handled in order, whichever process holds it.
Each share runs in `replay_share.py`; this module starts them, shows their progress as one
and sums their summaries.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import sys
from dataclasses import dataclass, replace
from typing import TextIO

from stream.commands.replay_processes import replay_in_processes
from stream.commands.replay_share import Forwarded, ShareReport, replay_share, with_partitions
from stream.config import Settings
from stream.domain.events import parse_time
from stream.domain.wording import count
from stream.errors import InvalidEvent, OptionError
from stream.kafka.fetch import quick_partitions
from stream.ops.imports import without_pandas
from stream.ops.progress import Progress
from stream.sinks import import_sinks
from stream.state.packed_rows import warm_arrow
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
    processes: int | None = None
    """How many processes share the partitions (None: one per CPU this process may use,
    at most one per partition)."""

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


def run_replay(
    settings: Settings, options: ReplayOptions, *, out: TextIO = sys.stdout, tty: bool | None = None
) -> ReplaySummary:
    with without_pandas():  # the forked shares inherit it
        return _replay(replay_settings(settings, options), options, out=out, tty=tty)


def _replay(
    settings: Settings, options: ReplayOptions, *, out: TextIO, tty: bool | None
) -> ReplaySummary:
    # aiokafka warns of what the reader raises again as one line (a denied fetch, say)
    logging.getLogger("aiokafka").setLevel(logging.ERROR)
    partitions = asyncio.run(quick_partitions(settings.kafka)) or _partitions(settings)
    settings = with_partitions(settings, len(partitions))
    processes = min(options.processes or len(os.sched_getaffinity(0)), len(partitions))
    shares = [partitions[index::processes] for index in range(processes)]
    warm_arrow()  # once, inherited by the forked shares
    import_sinks(settings.destinations.values())  # likewise
    tally = Tally(len(shares), out, tty)
    if len(shares) == 1:
        link = _AloneLink(tally)
        report = asyncio.run(
            replay_share(
                settings, shares[0], link, overwrite=options.overwrite, wanted=options.wants
            )
        )
    else:
        report = replay_in_processes(
            settings, shares, tally, overwrite=options.overwrite, wanted=options.wants
        )
    return tally.finish(report)


def _partitions(settings: Settings) -> list[int]:
    """The topic's partitions as kafka-python learns them, which explains a failure."""
    from stream.kafka.client import topic_partitions  # kafka-python: only if need be

    return topic_partitions(settings.kafka)


class Tally:
    """The shares' progress as one line, and their summaries as one."""

    def __init__(self, shares: int, out: TextIO, tty: bool | None) -> None:
        self.shares = shares
        self.out = out
        self.tty = tty
        self.totals: dict[int, int] = {}
        self.done: dict[int, int] = {}
        self.event_times: dict[int, int] = {}
        self.files: dict[int, int] = {}
        self.progress: Progress | None = None

    def started(self, share: int, total: int) -> None:
        """Progress is timed from when every share knows its records."""
        self.totals[share] = total
        if len(self.totals) == self.shares:
            self.progress = Progress(sum(self.totals.values()), self.out, tty=self.tty)

    def update(
        self, share: int, *, done: int, event_time_ms: int | None, files: int, force: bool = False
    ) -> None:
        self.done[share] = done
        self.files[share] = files
        if event_time_ms is not None:
            self.event_times[share] = event_time_ms
        if self.progress is not None:
            self.progress.update(
                done=sum(self.done.values()),
                event_time_ms=max(self.event_times.values(), default=None),
                files=sum(self.files.values()),
                force=force,
            )

    def finish(self, report: ShareReport) -> ReplaySummary:
        progress = self.progress or Progress(0, self.out, tty=self.tty)
        progress.update(
            done=report.records,
            event_time_ms=max(self.event_times.values(), default=None),
            files=_files(report),
            force=True,
        )
        summary = ReplaySummary(
            records=report.records,
            syncs=report.syncs,
            files=_files(report),
            bytes=report.bytes,
            seconds=progress.elapsed,
        )
        progress.finish(_summary_line(summary, report))
        return summary


class _AloneLink:
    """The link of a replay in one process: every home partition is its own."""

    def __init__(self, tally: Tally) -> None:
        self.tally = tally

    def started(self, total: int) -> None:
        self.tally.started(0, total)

    def progress(self, *, done: int, event_time_ms: int | None, files: int) -> None:
        self.tally.update(0, done=done, event_time_ms=event_time_ms, files=files)

    def forward(self, item: Forwarded) -> None:
        raise AssertionError(f"partition {item[2]} belongs to the only share")

    def arrived(self) -> list[Forwarded]:
        return []

    async def rest(self) -> list[Forwarded]:
        return []


def _files(report: ShareReport) -> int:
    """Files of the syncs, whether written now or found there already."""
    return report.new_objects + report.unchanged_objects + report.kept_objects


def _seconds(seconds: float) -> str:
    """`0.43s`, `12.4s`: a short replay's time to the hundredth, so its rate means something."""
    return f"{seconds:.2f}s" if seconds < 10 else f"{seconds:.1f}s"


def _summary_line(summary: ReplaySummary, report: ShareReport) -> str:
    line = (
        f"replay done: {count(summary.records, 'record')}, {count(summary.syncs, 'sync')}, "
        f"{count(summary.files, 'file')} ({report.new_objects:,} new, "
        f"{report.unchanged_objects:,} identical already, {report.kept_objects:,} kept), "
        f"{summary.bytes:,} bytes written in {_seconds(summary.seconds)}"
    )
    if report.dead_letters:
        line += f"; {count(report.dead_letters, 'invalid record')} skipped"
    if report.kept_objects:
        line += "; kept = existing files with other bytes, left alone (--overwrite replaces them)"
    if report.handed_over:
        line += (
            f"; {count(report.handed_over, 'record')} not keyed by their cohort went to "
            "another process: where they fall among their cohort's records depends on timing, "
            "as in the live worker (--processes 1 replays them where the reader meets them)"
        )
    return line
