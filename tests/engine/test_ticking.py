"""Which tick a partition needs: load and flush first, then the wall clock once it is idle,
caught up, due and not too far behind; one tick at a time."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from stream.config import settings_from_mapping
from stream.engine.ticking import Tick, TickPolicy
from stream.state.partition import PartitionState
from tests.scenario import JAN5, H

NOW_S = (JAN5 + 2 * H) / 1000


@dataclass
class FakeProcessor:
    states: dict[int, PartitionState] = field(default_factory=dict)
    owing: set[int] = field(default_factory=set)
    due: int | None = JAN5 + H

    def state_of(self, partition: int) -> PartitionState | None:
        return self.states.get(partition)

    def needs_tick(self, partition: int) -> bool:
        return partition in self.owing

    def next_due(self, partition: int) -> int | None:
        return self.due


def policy(processor: FakeProcessor, **kafka: object) -> TickPolicy:
    settings = settings_from_mapping({"kafka": {"idle_timeout": "10s", **kafka}})
    return TickPolicy(processor, settings.kafka, started=NOW_S - 60)


def loaded(watermark: int | None = JAN5 + H - 1) -> PartitionState:
    state = PartitionState()
    state.watermark = watermark
    return state


def tick_for(ticks: TickPolicy, partition: int, now: float, caught_up: bool = True) -> Tick | None:
    async def answer() -> bool:
        return caught_up

    return asyncio.run(ticks.tick_for(partition, now, answer))


def test_a_partition_not_loaded_or_owing_housekeeping_gets_a_load_tick() -> None:
    processor = FakeProcessor()
    ticks = policy(processor)
    assert tick_for(ticks, 0, NOW_S) == Tick(None)
    processor.states[0] = loaded()
    processor.owing.add(0)
    assert tick_for(ticks, 0, NOW_S) == Tick(None)


def test_an_idle_caught_up_partition_with_a_sync_due_follows_the_wall_clock() -> None:
    processor = FakeProcessor(states={0: loaded()})
    ticks = policy(processor)
    assert tick_for(ticks, 0, NOW_S) == Tick(int(NOW_S * 1000))
    assert tick_for(ticks, 0, NOW_S, caught_up=False) is None
    processor.due = None
    assert tick_for(ticks, 0, NOW_S) is None
    processor.due = int(NOW_S * 1000) + 1  # not reached yet
    assert tick_for(ticks, 0, NOW_S) is None


def test_allowed_lateness_delays_the_wall_clock_tick() -> None:
    processor = FakeProcessor(states={0: loaded()}, due=int(NOW_S * 1000) - 1000)
    assert tick_for(policy(processor, allowed_lateness="2s"), 0, NOW_S) is None
    assert tick_for(policy(processor, allowed_lateness="1s"), 0, NOW_S) is not None


def test_a_partition_is_idle_only_after_idle_timeout_without_records() -> None:
    processor = FakeProcessor(states={0: loaded()})
    ticks = policy(processor)
    ticks.record_began(0, NOW_S - 5)
    assert ticks.busy
    ticks.record_ended(0, NOW_S - 5)
    assert not ticks.busy
    assert tick_for(ticks, 0, NOW_S) is None  # quiet for 5 s of 10
    assert tick_for(ticks, 0, NOW_S + 5) == Tick(int((NOW_S + 5) * 1000))
    assert tick_for(policy(processor, idle_timeout="off"), 0, NOW_S + 3600) is None


def test_one_tick_at_a_time_per_partition() -> None:
    processor = FakeProcessor()
    ticks = policy(processor)
    ticks.sent(0, Tick(None))
    assert ticks.waiting(0)
    assert tick_for(ticks, 0, NOW_S) is None
    assert ticks.flushes([0, 1]) == [1]
    ticks.ticked(0)
    assert tick_for(ticks, 0, NOW_S) == Tick(None)


def test_a_revoked_partition_no_longer_waits_for_the_tick_its_new_owner_may_handle() -> None:
    ticks = policy(FakeProcessor())
    ticks.sent(0, Tick(None))
    ticks.revoke(0)  # the tick record now belongs to the partition's new owner
    assert not ticks.waiting(0)
    assert tick_for(ticks, 0, NOW_S) == Tick(None)  # assigned back: it is loaded again


def test_a_partition_far_behind_the_wall_clock_is_held_back() -> None:
    processor = FakeProcessor(states={0: loaded(JAN5)}, due=JAN5 + H)
    ticks = policy(processor)
    far = (JAN5 + 30 * 24 * H) / 1000
    assert tick_for(ticks, 0, far) is None
    assert len(ticks.warnings(int(far * 1000))) == 1
    ticks.revoke(0)
    assert ticks.warnings(int(far * 1000)) == []
