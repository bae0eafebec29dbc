"""`kafka.max_future`: an event dated further ahead of its record's Kafka timestamp than the
limit is dead-lettered, so one record from a skewed clock cannot move a partition's watermark
(and its syncs) into the future and make every later on-time event too late."""

import asyncio
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stream.config import Settings, settings_from_mapping
from stream.domain.partitioner import partition_for
from stream.engine.processor import Processor
from stream.errors import ConfigError
from tests.scenario import JAN5, MIN, H, iso

from .test_retention import Collect

DAY = 24 * H


def config(max_future: str | None = None, partitions: int = 1) -> Settings:
    kafka: dict[str, Any] = {"partitions": partitions, "idle_timeout": "off"}
    if max_future is not None:
        kafka["max_future"] = max_future
    return settings_from_mapping(
        {
            "project_id": 7,
            "kafka": kafka,
            "destinations": [{"name": "d", "url": "file:///out"}],
            "syncs": [{"cohort": "*", "destination": "d", "cadence": "daily"}],
        }
    )


def event(amplitude_id: int, time: int, cohort: str = "live") -> bytes:
    return json.dumps(
        {"cohort_id": cohort, "amplitude_id": amplitude_id, "action": "enter", "time": iso(time)}
    ).encode()


def batch(amplitude_ids: list[int], time: int) -> bytes:
    return json.dumps(
        {
            "cohort_id": "live",
            "in_cohort": True,
            "computed_time": time // 1000,
            "users": [{"amplitude_id": a} for a in amplitude_ids],
        }
    ).encode()


class Run:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.outbox = Collect()
        self.forwarded = 0
        self.outbox.forward = self._forward  # type: ignore[method-assign]
        self.processor = Processor(settings, {}, self.outbox, partition_for)

    async def _forward(self, **_: Any) -> None:
        self.forwarded += 1

    def feed(self, *records: tuple[bytes, int | None], partition: int = 0) -> None:
        """Each record with its Kafka timestamp, at the next offsets."""

        async def run() -> None:
            for value, timestamp in records:
                offset = self.offset
                self.offset += 1
                key = json.loads(value)["cohort_id"].encode()
                await self.processor.on_record(
                    self.settings.kafka.topic, partition, offset, key, value, timestamp_ms=timestamp
                )

        asyncio.run(run())

    offset = 0

    @property
    def syncs(self) -> list[str]:
        return [output.manifest.key for output in self.outbox.outputs]


def test_a_record_dated_400_days_ahead_is_dead_lettered_and_later_events_still_apply() -> None:
    run = Run(config())
    run.feed((event(1, JAN5), JAN5 + 5), (event(2, JAN5 + 400 * DAY), JAN5 + 10))
    assert list(run.outbox.dead) == [1]
    reason = run.outbox.dead[1]
    assert reason.startswith("too far ahead: event time 2027-02-09T00:00:00Z")
    assert "kafka.max_future (1h)" in reason
    assert "Kafka timestamp 2026-01-05T00:00:00Z" in reason
    assert "key 'live'" in reason
    assert run.syncs == []  # no daily sync was decided from the future event
    assert run.processor.metrics.too_far_ahead == 1
    run.feed((event(3, JAN5 + H), JAN5 + H), (event(4, JAN5 + DAY + H), JAN5 + DAY + H))
    assert list(run.outbox.dead) == [1]  # the on-time events after it are applied
    assert run.syncs == ["7_live_2026-01-06T00:00_manifest.json"]
    assert run.processor.partitions[0].cohorts["live"].members.keys() == {1, 3, 4}


def test_the_limit_itself_is_allowed_and_a_millisecond_more_is_not() -> None:
    run = Run(config(max_future="15m"))
    run.feed((event(1, JAN5 + 15 * MIN), JAN5), (event(2, JAN5 + 15 * MIN), JAN5 - 1))
    assert list(run.outbox.dead) == [1]
    assert "kafka.max_future (15m)" in run.outbox.dead[1]


def test_the_batch_forms_computed_time_is_checked_as_well() -> None:
    run = Run(config())
    run.feed((batch([1, 2], JAN5 + 2 * H), JAN5), (batch([3], JAN5 + 30 * MIN), JAN5))
    assert list(run.outbox.dead) == [0]
    assert run.processor.metrics.too_far_ahead == 1


def test_a_record_on_another_partition_is_checked_before_it_is_forwarded() -> None:
    run = Run(config(partitions=2))
    home = partition_for(b"live", 2)
    run.feed((event(1, JAN5 + 2 * H), JAN5), (event(2, JAN5), JAN5), partition=1 - home)
    assert list(run.outbox.dead) == [0]
    assert run.forwarded == 1  # the forwarder's copy has a new timestamp: too late to check


@pytest.mark.parametrize("timestamp", [None, -1])  # a file's line; a record without one
def test_a_record_without_a_timestamp_is_not_checked(timestamp: int | None) -> None:
    run = Run(config())
    run.feed((event(1, JAN5 + 400 * DAY), timestamp))
    assert run.outbox.dead == {}


def test_off_accepts_any_distance() -> None:
    assert config("off").kafka.max_future_ms is None
    run = Run(config("off"))
    run.feed((event(1, JAN5 + 400 * DAY), JAN5))
    assert run.outbox.dead == {}


def test_the_default_is_an_hour_and_zero_is_refused_by_name() -> None:
    assert config().kafka.max_future_ms == H
    with pytest.raises(ConfigError, match=r"kafka\.max_future.*positive.*off"):
        config("0s")


@given(
    st.lists(st.tuples(st.integers(0, 3 * DAY), st.integers(0, 3 * DAY)), min_size=1, max_size=20)
)
def test_no_record_moves_the_watermark_past_its_own_timestamp_plus_the_limit(
    times: list[tuple[int, int]],
) -> None:
    run = Run(config())
    for number, (event_time, timestamp) in enumerate(times):
        run.feed((event(number, JAN5 + event_time), JAN5 + timestamp))
        watermark = run.processor.partitions[0].watermark if run.processor.partitions else None
        newest_stamp = max(JAN5 + stamp for _, stamp in times[: number + 1])
        assert watermark is None or watermark <= newest_stamp + H
