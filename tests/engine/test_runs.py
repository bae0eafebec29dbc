"""`Processor.on_records`: a replay's records handled a run at a time give what `on_record`
gives one record at a time: the same files, the same counters, the same dead letters."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from stream.config import settings_from_mapping
from stream.domain.partitioner import partition_for
from stream.engine.processor import Processor
from stream.output.sync import SyncOutput
from tests.engine.test_incremental import SETTINGS
from tests.scenario import JAN5, MIN, iso


@dataclass(frozen=True)
class Record:
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int | None


class Collect:
    """What a processor hands out: files, dead letters and forwards, in order."""

    def __init__(self) -> None:
        self.files: list[tuple[str, bytes]] = []
        self.dead_letters: list[tuple[int, str]] = []
        self.forwards: list[tuple[bytes, int]] = []

    async def dead_letter(self, *, offset: int, reason: str, **_: Any) -> None:
        self.dead_letters.append((offset, reason))

    async def forward(self, *, key: bytes, partition: int, **_: Any) -> None:
        self.forwards.append((key, partition))

    async def write(self, build: Callable[[], SyncOutput], written: Callable[[], None]) -> None:
        output = build()
        self.files += [(f.key, f.data) for f in (*output.csv_files, output.manifest)]
        written()


single = st.fixed_dictionaries(
    {
        "cohort_id": st.sampled_from(["c1", "c1", "c1", "c2", "c3"]),  # long runs of c1
        "amplitude_id": st.one_of(st.integers(0, 6), st.integers(0, 400)),
        "action": st.sampled_from(["enter", "enter", "exit"]),
        "time": st.integers(0, 5 * 60).map(lambda minute: iso(JAN5 + minute * MIN)),
        "user_properties": st.one_of(
            st.none(), st.fixed_dictionaries({"plan": st.sampled_from(["pro", "=1", 3, [1]])})
        ),
        "user_id": st.sampled_from([None, "u", "-x"]),
    }
)
batch = st.fixed_dictionaries(
    {
        "cohort_id": st.sampled_from(["c1", "c2"]),
        "in_cohort": st.booleans(),
        "computed_time": st.integers(0, 5 * 60).map(lambda minute: (JAN5 + minute * MIN) // 1000),
        "users": st.lists(st.fixed_dictionaries({"amplitude_id": st.integers(0, 400)}), max_size=3),
    }
)
singles = single.map(lambda document: json.dumps(document).encode())
record_values = st.lists(
    st.one_of(
        *[singles] * 8,  # mostly single events, for runs
        batch.map(lambda document: json.dumps(document).encode()),
        st.just(b"{not json"),
        st.just(json.dumps({"cohort_id": "c1", "action": "enter", "time": 1}).encode()),
    ),
    min_size=30,
    max_size=160,
)


def handled(
    values: list[bytes], chunks: list[int] | None, *, retain: bool, ahead: int
) -> tuple[Any, ...]:
    """Everything a replay's processor hands out and counts for `values` on partition 0,
    one record at a time (`chunks` None), or `chunks` records at a time (cycled)."""
    settings_ = SETTINGS
    if retain:
        settings_ = settings_from_mapping(
            {
                "project_id": 7,
                "kafka": {
                    "partitions": 1,
                    "idle_timeout": "off",
                    "allowed_lateness": "10m",
                    "retain_exited": "1h",
                },
                "destinations": [{"name": "d", "url": "file:///out", "user_property": "plan"}],
                "syncs": [{"cohort": "*", "destination": "d", "cadence": "hourly"}],
            }
        )
    outbox = Collect()
    processor = Processor(settings_, {}, outbox, partition_for, journal=False)
    topic = settings_.kafka.topic
    records = [
        Record(offset, _key(value), value, JAN5 + ahead * MIN)
        for offset, value in enumerate(values)
    ]

    async def run() -> None:
        if chunks is None:
            for r in records:
                await processor.on_record(
                    topic, 0, r.offset, r.key, r.value, timestamp_ms=r.timestamp_ms
                )
        else:
            at, turn = 0, 0
            while at < len(records):
                size = chunks[turn % len(chunks)]
                turn += 1
                chunk = records[at : at + size]
                done = 0
                while done < len(chunk):
                    done += await processor.on_records(topic, 0, chunk[done:])
                at += len(chunk)
        await processor.on_tick(0, JAN5 + 7 * 60 * MIN)

    asyncio.run(run())
    metrics = processor.metrics
    counters = (
        metrics.events,
        metrics.late_events,
        metrics.dead_letters,
        metrics.too_late,
        metrics.too_far_ahead,
        metrics.forwarded,
    )
    return outbox.files, sorted(outbox.dead_letters), counters, processor.input_next_offset


def _key(value: bytes) -> bytes | None:
    try:
        return str(json.loads(value)["cohort_id"]).encode()
    except (ValueError, KeyError):
        return None


@settings(max_examples=80, deadline=None)
@given(
    record_values,
    st.lists(st.integers(1, 90), min_size=1, max_size=4),
    st.booleans(),
    st.sampled_from([0, 300]),
)
def test_records_handled_a_run_at_a_time_give_what_one_at_a_time_gives(
    values: list[bytes], chunks: list[int], retain: bool, ahead: int
) -> None:
    """`ahead`: the records' Kafka time, minutes after the first event: 0 makes the later
    events too far ahead (`kafka.max_future` is 1 hour)."""
    one_at_a_time = handled(values, None, retain=retain, ahead=ahead)
    assert handled(values, chunks, retain=retain, ahead=ahead) == one_at_a_time


def test_a_run_stops_after_a_record_it_forwards_and_is_taken_up_again() -> None:
    two = replace(SETTINGS, kafka=replace(SETTINGS.kafka, partitions=2))
    home = partition_for(b"c1", 2)
    outbox = Collect()
    processor = Processor(two, {}, outbox, partition_for, journal=False)
    values = [
        json.dumps(
            {"cohort_id": "c1", "amplitude_id": n, "action": "enter", "time": JAN5 + n}
        ).encode()
        for n in range(6)
    ]
    keys = [b"c1", b"c1", b"c1", b"user-9", b"c1", b"c1"]  # the fourth is keyed by user
    records = [Record(n, keys[n], values[n], None) for n in range(6)]

    async def run() -> list[int]:
        handled = [await processor.on_records(two.kafka.topic, home, records)]
        handled.append(await processor.on_records(two.kafka.topic, home, records[handled[0] :]))
        return handled

    assert asyncio.run(run()) == [4, 2]
    assert outbox.forwards == [(b"c1", home)]
    assert processor.metrics.events == 5
    assert processor.input_next_offset == {home: 6}
