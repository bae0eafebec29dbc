"""The record pump without a broker: in order, acknowledged only once handled and durable,
abandoned when revoked, stopping or failed, and a fault stops the worker once."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from stream.engine.pump import PartitionKey, RecordPump
from stream.errors import WriteAbandoned
from tests.engine.fakes import Journals


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int


@dataclass
class FakeConsumer:
    """Records what the pump asked of it, in order."""

    calls: list[tuple[str, object]] = field(default_factory=list)

    def acknowledge(self, record: Record) -> None:
        self.calls.append(("acknowledge", record.offset))

    def abandon(self, record: Record) -> None:
        self.calls.append(("abandon", record.offset))

    async def rewind(self, key: PartitionKey, offset: int, seen: int) -> None:
        self.calls.append(("rewind", (key, offset, seen)))

    async def mark_absent(self, key: PartitionKey, start: int, end: int) -> None:
        self.calls.append(("absent", (key, start, end)))

    def of(self, kind: str) -> list[object]:
        return [what for called, what in self.calls if called == kind]


class Harness:
    def __init__(self, handle: Callable[[Record], Awaitable[None]] | None = None) -> None:
        self.consumer = FakeConsumer()
        self.journals = Journals()
        self.handled: list[int] = []
        self.stops: list[str] = []
        self.now = 0.0

        async def record_it(record: Record) -> None:
            self.handled.append(record.offset)

        self.pump: RecordPump[Record] = RecordPump(
            self.consumer,
            handle or record_it,
            self.journals,
            locate=lambda r: (r.topic, r.partition, r.offset),
            stop=self.stops.append,
            monotonic=lambda: self.now,
        )

    def receive(self, *offsets: int, partition: int = 0) -> None:
        async def main() -> None:
            for offset in offsets:
                await self.pump.receive(Record("in", partition, offset))

        asyncio.run(main())


def test_records_in_order_are_handled_and_acknowledged_in_order() -> None:
    run = Harness()
    run.pump.start({("in", 0): 0})
    run.receive(0, 1, 2)
    assert run.handled == [0, 1, 2]
    assert run.consumer.of("acknowledge") == [0, 1, 2]
    assert run.stops == []


def test_a_record_before_its_predecessor_is_held_and_the_partition_rewound() -> None:
    run = Harness()
    run.pump.start({("in", 0): 0})
    run.receive(0, 2)
    assert run.handled == [0]
    assert run.consumer.of("rewind") == [(("in", 0), 1, 2)]
    run.receive(1, 2)  # the rewind reads 1 again, then 2 again
    assert run.handled == [0, 1, 2]
    assert run.consumer.of("acknowledge") == [0, 1, 2, 2]  # the second 2: a duplicate


def test_a_hole_every_rewind_brings_back_is_marked_absent() -> None:
    run = Harness()
    run.pump.start({("in", 0): 10})
    run.receive(12, 12, 12)  # the first, then two rewinds that bring it back first
    assert run.handled == []
    run.receive(12)  # the third time: confirmed
    assert run.handled == [12]
    assert run.consumer.of("absent") == [(("in", 0), 10, 12)]


def test_a_record_is_acknowledged_only_once_its_changes_are_durable() -> None:
    run = Harness()
    run.pump.start({("in", 0): 0})
    run.journals.dirty.add(0)
    run.receive(0)
    assert run.handled == [0] and run.consumer.of("acknowledge") == []
    assert run.pump.acks.dirty_partitions() == [0]
    run.now = 1.0  # past the flush delay: the next record flushes the journal
    run.receive(1)
    assert run.journals.flushed == [0]
    assert run.consumer.of("acknowledge") == [0, 1]


def test_records_held_below_the_start_are_acknowledged_as_duplicates() -> None:
    run = Harness()
    run.receive(4, 6)  # before the partition's start is known: only held
    assert run.handled == []
    run.pump.start({("in", 0): 5})
    assert run.consumer.of("acknowledge") == [4]
    run.receive(5)
    assert run.handled == [5, 6]


def test_a_revoked_partition_abandons_what_it_held_and_what_waited_for_a_flush() -> None:
    run = Harness()
    run.pump.start({("in", 0): 0})
    run.journals.dirty.add(0)
    run.receive(0, 2)  # 0 handled, waits for the flush; 2 held
    run.pump.revoke([("in", 0)])
    assert sorted(run.consumer.of("abandon")) == [0, 2]  # type: ignore[type-var]
    assert run.consumer.of("acknowledge") == []


def test_a_record_whose_partition_is_revoked_while_it_is_handled_is_not_acknowledged() -> None:
    run: Harness

    async def handled_then_revoked(record: Record) -> None:
        if record.offset == 1:
            run.pump.revoke([("in", 0)])  # a rebalance runs while the record is in hand
            run.pump.start({("in", 0): 1})  # and gives the partition back at once

    run = Harness(handled_then_revoked)
    run.pump.start({("in", 0): 0})
    run.receive(0, 1)
    assert run.consumer.of("acknowledge") == [0]
    assert run.consumer.of("abandon") == [1]  # read again, not committed past


def test_a_failure_that_is_not_the_records_stops_the_worker_once_and_acknowledges_no_more() -> None:
    async def fails_at_1(record: Record) -> None:
        if record.offset == 1:
            raise OSError("disk gone")

    run = Harness(fails_at_1)
    run.pump.start({("in", 0): 0})
    run.receive(0, 2, 1, 3)  # 1 arrives late: 1 and 2 are handled together
    assert run.stops == ["handling in/0@1 failed: OSError: disk gone"]
    assert run.pump.fault == "handling in/0@1 failed: OSError: disk gone"
    assert run.consumer.of("acknowledge") == [0]
    assert sorted(run.consumer.of("abandon")) == [1, 1, 2, 3]  # type: ignore[type-var]


def test_a_write_abandoned_by_the_stop_leaves_the_rest_for_the_next_start() -> None:
    async def abandoned_at_1(record: Record) -> None:
        if record.offset == 1:
            raise WriteAbandoned("stopping")

    run = Harness(abandoned_at_1)
    run.pump.start({("in", 0): 0})
    run.receive(0, 2, 1)
    assert run.consumer.of("acknowledge") == [0]
    assert run.consumer.of("abandon") == [1, 2]
    assert run.stops == []  # whoever abandoned the write stops the worker


def test_only_the_first_fault_stops_the_worker() -> None:
    run = Harness()
    run.pump.stop_for("first")
    run.pump.stop_for("second")
    assert run.stops == ["first"] and run.pump.fault == "first"


def test_the_stop_abandons_everything_held_or_waiting() -> None:
    run = Harness()
    run.pump.start({("in", 0): 0, ("in", 1): 0})
    run.journals.dirty.add(0)
    run.receive(0)  # waits for its flush
    run.receive(3, partition=1)  # held
    run.pump.abandon_all()
    assert sorted(run.consumer.of("abandon")) == [0, 3]  # type: ignore[type-var]
    assert run.pump.acks.dirty_partitions() == []
