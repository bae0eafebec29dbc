"""`python -m benchmarks --scale`: one cohort of 10,000,000 members on one worker's state.

In this process, with no broker: the members arrive as Amplitude batch messages through the
worker's `Processor`, with its journal writing bundles to a dict (as Faust's memory store
holds its table); syncs go to a local folder. It reports, each beside its baseline:
- bytes per member: this process's RSS growth over the members;
- the first sync (every member entering) and a steady sync (a few changes since the last)
  against pyarrow's bare `write_csv` of the same rows, put by the same sink;
- restart to ready: a new `Processor` over the same table rebuilding the partition, then its
  first sync, against the time the members took to arrive.
"""

from __future__ import annotations

import asyncio
import gc
import io
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

import pyarrow as pa
import pyarrow.csv as pa_csv

from benchmarks.benchwork import HOUR_MS, PARTITIONS, T0, _rss, one_cohort_messages
from stream.config import settings_from_mapping
from stream.domain.partitioner import partition_for
from stream.engine.processor import Processor
from stream.metrics import Metrics
from stream.output.sync import SyncOutput
from stream.output.writer import SyncWriter
from stream.sinks import Body, open_sink
from stream.state.columns import diff_columns

__all__ = ["run_scale"]

COHORT = "huge"
PER_MESSAGE = 10_000


def run_scale(members: int, out: TextIO = sys.stdout) -> dict[str, float]:
    pa.array([0])  # pyarrow's first conversion (it may import pandas): not a member's
    with tempfile.TemporaryDirectory() as folder:
        bench = _Scale(Path(folder), out)
        figures = bench.run(members)
    out.write(json.dumps(figures) + "\n")
    return figures


class _Scale:
    def __init__(self, folder: Path, out: TextIO) -> None:
        self.folder = folder
        self.out = out
        self.settings = settings_from_mapping(
            {
                "kafka": {"partitions": PARTITIONS, "idle_timeout": "off"},
                "destinations": [
                    {"name": "disk", "url": (folder / "out").as_uri(), "user_property": "plan"}
                ],
                "syncs": [{"cohort": COHORT, "destination": "disk", "cadence": "hourly"}],
            }
        )
        self.partition = partition_for(COHORT.encode(), PARTITIONS)
        self.store: dict[str, Any] = {}
        self.offset = 0
        self.loop = asyncio.new_event_loop()

    def say(self, text: str) -> None:
        self.out.write(f"  {text}\n")
        self.out.flush()

    def run(self, members: int) -> dict[str, float]:
        started = time.perf_counter()
        gc.collect()
        before = _rss()
        processor, close = self.processor()
        self.say(f"loading {members:,} members in one cohort")
        load_seconds = self.feed(
            processor, one_cohort_messages(members, T0 + 1000, PER_MESSAGE, COHORT)
        )
        gc.collect()
        bytes_per_member = (_rss() - before) / members
        self.say(f"  {load_seconds:.1f} s, {bytes_per_member:.0f} bytes a member")
        first = self.feed(processor, [_event(T0 + HOUR_MS + 1000, 1)])
        self.say(f"first sync: {first:.2f} s")
        steady_runs = []
        for hour in range(2, 4):
            self.feed(
                processor, [_event(T0 + (hour - 1) * HOUR_MS + 2000 + n, n) for n in range(2, 100)]
            )
            steady_runs.append(self.feed(processor, [_event(T0 + hour * HOUR_MS + 1000, 100)]))
        steady = statistics.median(steady_runs)
        self.say(f"steady sync: {steady:.2f} s")
        close()
        del processor
        gc.collect()
        self.say("restart: a new processor over the same table")
        restarted, close = self.processor()
        ready_started = time.perf_counter()
        restarted.partition(self.partition)  # the rebuild at assignment
        ready = time.perf_counter() - ready_started
        after_restart = self.feed(restarted, [_event(T0 + 4 * HOUR_MS + 1000, 101)])
        close()
        self.say(f"  ready in {ready:.1f} s, its first sync {after_restart:.2f} s")
        bare = self.bare_write(restarted)
        self.say(f"bare pyarrow write_csv of the existing rows: {bare:.2f} s")
        return {
            "members": members,
            "bytes_per_member": round(bytes_per_member),
            "load_seconds": round(load_seconds, 1),
            "first_sync_seconds": round(first, 2),
            "first_sync_ratio": round(first / bare, 2),
            "steady_sync_seconds": round(steady, 2),
            "steady_sync_ratio": round(steady / bare, 2),
            "ready_seconds": round(ready, 1),
            "first_sync_after_restart_seconds": round(after_restart, 2),
            "recovery_ratio": round((ready + after_restart) / load_seconds, 3),
            "bare_write_seconds": round(bare, 2),
            "run_seconds": round(time.perf_counter() - started),
        }

    def processor(self) -> tuple[Processor, Any]:
        class _Outbox:
            def __init__(self, writer: SyncWriter) -> None:
                self.writer = writer

            async def write(self, build: Any, written: Any) -> None:
                output: SyncOutput = await self.writer.write(build)
                del output
                written()

            async def dead_letter(self, **_: object) -> None:
                raise AssertionError("benchmark records are valid")

            async def forward(self, **_: object) -> None:
                raise AssertionError("benchmark records are keyed by cohort")

        metrics = Metrics()
        writer = SyncWriter(
            {n: open_sink(d, overwrite=True) for n, d in self.settings.destinations.items()},
            metrics,
        )
        processor = Processor(self.settings, self.store, _Outbox(writer), partition_for, metrics)
        return processor, writer.close

    def feed(self, processor: Processor, messages: Iterator[bytes] | list[bytes]) -> float:
        async def run() -> float:
            started = time.perf_counter()
            for message in messages:
                await processor.on_record(
                    self.settings.kafka.topic, self.partition, self.offset, COHORT.encode(), message
                )
                self.offset += 1
            return time.perf_counter() - started

        return self.loop.run_until_complete(run())

    def bare_write(self, processor: Processor) -> float:
        """pyarrow's own write_csv of the cells of the existing file (amplitude id, user id,
        plan, as text), put by the same sink (fsynced): the baseline of a sync."""
        cohort = processor.partitions[self.partition].cohorts[COHORT]
        rows = diff_columns(cohort.members, T0 + 5 * HOUR_MS, None).existing
        plans = [properties.get(("plan", None), (None,))[0] for properties in rows.property_sets]
        table = pa.table(
            {
                "amplitudeID": pa.array(rows.ids).cast(pa.string()),
                "userID": rows.user_ids.cast(pa.string()),
                "plan": pa.array(plans, pa.string()).take(pa.array(rows.set_index)),
            }
        )
        sink = open_sink(self.settings.destinations["disk"], overwrite=True)
        runs = []
        for _ in range(3):
            started = time.perf_counter()
            buffer = io.BytesIO()
            pa_csv.write_csv(table, buffer)
            sink.put("bare/existing.csv", Body.of(buffer.getvalue()))  # as a sync's files
            runs.append(time.perf_counter() - started)
        self.say(f"  {table.num_rows:,} rows, {len(buffer.getvalue()):,} bytes")
        return statistics.median(runs)


def _event(at_ms: int, n: int) -> bytes:
    return json.dumps(
        {"cohort_id": COHORT, "amplitude_id": 10**11 + n, "action": "enter", "time": at_ms}
    ).encode()
