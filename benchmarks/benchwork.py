"""The benchmark's workloads: generated input records, and the in-process runs (a 1M-member
cohort's flush, memory per member) that need no worker process."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import time
from collections.abc import Callable, Iterator
from typing import Protocol

import pyarrow as pa

from stream.config import Settings, settings_from_mapping
from stream.domain.partitioner import partition_for
from stream.engine.processor import Processor
from stream.metrics import Histogram, Metrics
from stream.ops.looplag import PROBE_INTERVAL, watch_loop_lag
from stream.output.sync import SyncOutput
from stream.output.writer import SyncWriter
from stream.sinks import open_sink

__all__ = [
    "HOUR_MS",
    "T0",
    "COHORTS",
    "PARTITIONS",
    "single_events",
    "batch_messages",
    "one_cohort",
    "trigger",
    "flush_processor",
    "feeder",
    "memory_child",
    "CHURN_ROUNDS",
    "churn_child",
]

HOUR_MS = 3_600_000
T0 = 1_767_571_200_000  # 2026-01-05T00:00Z
COHORTS = 100
PARTITIONS = 4


def single_events(count: int) -> list[bytes]:
    """`count` enter/exit events over COHORTS cohorts, all inside one hour (no sync is due)."""
    return [
        json.dumps(
            {
                "cohort_id": f"c{n % COHORTS}",
                "amplitude_id": n // 3,
                "user_id": f"u{n // 3}",
                "action": "exit" if n % 5 == 4 else "enter",
                "time": T0 + (n * 997) % (HOUR_MS - 1000),
                "user_properties": {"plan": ("free", "pro")[n % 2], "country": "DE"},
            },
            separators=(",", ":"),
        ).encode()
        for n in range(count)
    ]


def batch_messages(count: int, users: int = 1000) -> list[bytes]:
    """`count` messages in Amplitude's batch form, `users` users each, inside one hour."""
    return [
        json.dumps(
            {
                "cohort_id": f"c{m % COHORTS}",
                "in_cohort": m % 4 != 3,
                "computed_time": str((T0 + m * 1000) // 1000),
                "users": [
                    {
                        "amplitude_id": m * users + u,
                        "user_id": f"u{m * users + u}",
                        "user_properties": {"plan": "pro"},
                    }
                    for u in range(users)
                ],
            },
            separators=(",", ":"),
        ).encode()
        for m in range(count)
    ]


def one_cohort(members: int, at_ms: int, per_message: int = 10_000) -> list[bytes]:
    return list(one_cohort_messages(members, at_ms, per_message))


def one_cohort_messages(
    members: int, at_ms: int, per_message: int = 10_000, cohort: str = "big"
) -> Iterator[bytes]:
    """`members` members entering `cohort` at `at_ms`, in batch messages, made as read."""
    for start in range(0, members, per_message):
        yield json.dumps(
            {
                "cohort_id": cohort,
                "in_cohort": True,
                "computed_time": at_ms / 1000,
                "users": [
                    {
                        "amplitude_id": n,
                        "user_id": f"user-{n}",
                        "user_properties": {"plan": ("free", "pro", "team")[n % 3]},
                    }
                    for n in range(start, min(start + per_message, members))
                ],
            },
            separators=(",", ":"),
        ).encode()


def trigger(at_ms: int, n: int) -> bytes:
    return json.dumps(
        {"cohort_id": "big", "amplitude_id": 10**9 + n, "action": "exit", "time": at_ms}
    ).encode()


def flush_processor(settings: Settings) -> tuple[Processor, Callable[[], None]]:
    class _Outbox:
        def __init__(self, writer: SyncWriter) -> None:
            self.writer = writer

        async def write(self, build: Callable[[], SyncOutput], written: Callable[[], None]) -> None:
            await self.writer.write(build)
            written()

        async def dead_letter(self, **_: object) -> None:
            raise AssertionError("benchmark records are valid")

        async def forward(self, **_: object) -> None:
            raise AssertionError("benchmark records are keyed by cohort")

    metrics = Metrics()
    writer = SyncWriter({n: open_sink(d) for n, d in settings.destinations.items()}, metrics)
    return Processor(settings, {}, _Outbox(writer), partition_for, metrics), writer.close


class Feed(Protocol):
    def __call__(self, records: list[bytes], lag: Histogram | None = None) -> float: ...


def feeder(processor: Processor, settings: Settings) -> Feed:
    """`feed(records, lag)`: the records to the processor, on one event loop, and the seconds
    they took (their syncs written); with `lag`, a loop-lag probe runs beside them."""
    offsets = [0] * PARTITIONS
    loop = asyncio.new_event_loop()

    def feed(records: list[bytes], lag: Histogram | None = None) -> float:
        async def run() -> float:
            probe = None if lag is None else asyncio.ensure_future(watch_loop_lag(lag))
            started = time.perf_counter()
            for record in records:
                partition = partition_for(b"big", PARTITIONS)
                await processor.on_record(
                    settings.kafka.topic, partition, offsets[partition], b"big", record
                )
                offsets[partition] += 1
            elapsed = time.perf_counter() - started
            if probe is not None:
                await asyncio.sleep(PROBE_INTERVAL * 2)  # its wake after the last block
                probe.cancel()
            return elapsed

        return loop.run_until_complete(run())

    return feed


def memory_child(members: int) -> float:
    """Runs in a fresh process: RSS growth per member after loading `members` members over
    many cohorts into the processor and its table (a dict, as Faust's memory store is)."""
    settings = settings_from_mapping(
        {
            "kafka": {"partitions": PARTITIONS, "idle_timeout": "off"},
            "destinations": [{"name": "d", "url": "file:///tmp/unused"}],
            "syncs": [{"cohort": "*", "destination": "d", "cadence": "hourly"}],
        }
    )
    processor, close = flush_processor(settings)
    pa.array([0])  # pyarrow's first conversion imports pandas when installed: not a member's
    gc.collect()
    before = _rss()
    loop = asyncio.new_event_loop()

    async def load() -> None:
        per_message = 1000
        for index, start in enumerate(range(0, members, per_message)):
            cohort = f"c{index % COHORTS}".encode()
            message = json.dumps(
                {
                    "cohort_id": cohort.decode(),
                    "in_cohort": True,
                    "computed_time": T0 / 1000 + 1,
                    "users": [
                        {
                            "amplitude_id": n,
                            "user_id": f"u{n}",
                            "user_properties": {"plan": "pro", "country": "DE"},
                        }
                        for n in range(start, min(start + per_message, members))
                    ],
                }
            ).encode()
            partition = partition_for(cohort, PARTITIONS)
            await processor.on_record(settings.kafka.topic, partition, index, cohort, message)

    loop.run_until_complete(load())
    gc.collect()
    grown = _rss() - before
    close()
    return grown / members


DAY_MS = 24 * HOUR_MS
CHURN_ROUNDS = 10
CHURN_COHORTS = 10


def churn_messages(round_index: int, members: int, per_message: int = 1000) -> list[bytes]:
    """Round `round_index` (one day of event time): `members` new members enter their cohort
    at 01:00 and exit at 12:00, in Amplitude's batch form."""
    first = round_index * members
    day = T0 + round_index * DAY_MS
    messages = []
    for enter, at in ((True, day + HOUR_MS), (False, day + 12 * HOUR_MS)):
        for index, start in enumerate(range(first, first + members, per_message)):
            users = [
                {"amplitude_id": n, "user_id": f"u{n}", "user_properties": {"plan": "pro"}}
                for n in range(start, min(start + per_message, first + members))
            ]
            document = {
                "cohort_id": f"churn{index % CHURN_COHORTS}",
                "in_cohort": enter,
                "computed_time": at // 1000,
                "users": users,
            }
            messages.append(json.dumps(document, separators=(",", ":")).encode())
    return messages


def churn_child(members: int, retain: str, out_dir: str) -> list[int]:
    """Runs in a fresh process: RSS after each of `CHURN_ROUNDS` days in which `members` new
    members enter and exit, with daily syncs and `kafka.retain_exited = retain`."""
    settings = settings_from_mapping(
        {
            "kafka": {"partitions": PARTITIONS, "idle_timeout": "off", "retain_exited": retain},
            "destinations": [{"name": "d", "url": f"file://{out_dir}"}],
            "syncs": [{"cohort": "*", "destination": "d", "cadence": "daily"}],
        }
    )
    processor, close = flush_processor(settings)
    offsets = [0] * PARTITIONS
    loop = asyncio.new_event_loop()
    sizes: list[int] = []

    async def feed(messages: list[bytes]) -> None:
        for message in messages:
            cohort = json.loads(message)["cohort_id"].encode()
            partition = partition_for(cohort, PARTITIONS)
            offset = offsets[partition]
            offsets[partition] += 1
            await processor.on_record(settings.kafka.topic, partition, offset, cohort, message)

    for round_index in range(CHURN_ROUNDS):
        loop.run_until_complete(feed(churn_messages(round_index, members)))
        gc.collect()
        sizes.append(_rss())
    close()
    return sizes


def _rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
