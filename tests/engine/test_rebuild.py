"""A partition this worker has no state for is rebuilt from the table off the event loop
(the processor's `offload`, `engine/rebuilding.py`), from a copy of its keys; one taken
away meanwhile is left alone."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from stream.domain.partitioner import partition_for
from stream.engine.processor import Processor
from tests.engine.test_processor import EXPECTED, SCENARIO, Harness, Outbox, config

T = TypeVar("T")


def restarted(store: dict[str, Any], offload: Any) -> tuple[Processor, Outbox]:
    outbox = Outbox()
    return Processor(config(), store, outbox, partition_for, offload=offload), outbox


def feed(processor: Processor, records: list[bytes], first_offset: int) -> None:
    async def run() -> None:
        for offset, record in enumerate(records, start=first_offset):
            await processor.on_record(config().kafka.topic, 0, offset, b"c1", record)

    asyncio.run(run())


def test_a_restarted_partition_is_rebuilt_in_another_thread_and_syncs_as_before() -> None:
    first = Harness(config())
    first.feed(*SCENARIO[:5])
    first.processor.flush(0)
    threads: list[int] = []

    async def offload(work: Callable[[], T]) -> T:
        def run() -> T:
            threads.append(threading.get_ident())
            return work()

        return await asyncio.get_running_loop().run_in_executor(None, run)

    processor, outbox = restarted(first.store, offload)
    feed(processor, SCENARIO[5:], 5)
    assert len(threads) == 1 and threads[0] != threading.get_ident()
    files = {
        f.key: f.data.decode()
        for o in (*first.outbox.outputs, *outbox.outputs)
        for f in o.csv_files
    }
    assert files == EXPECTED


def test_a_partition_taken_away_while_it_is_rebuilt_is_left_to_its_new_owner() -> None:
    first = Harness(config())
    first.feed(*SCENARIO[:5])
    first.processor.flush(0)
    taken_away = [False, True]  # popped: the first rebuild is taken away, the second is not
    processor: Processor | None = None

    async def offload(work: Callable[[], T]) -> T:
        result = work()
        if taken_away.pop():
            assert processor is not None
            processor.revoke([0])  # a rebalance ran while the rebuild was in its thread
        return result

    processor, outbox = restarted(first.store, offload)
    feed(processor, SCENARIO[5:6], 5)
    assert processor.partitions == {} and processor.input_next_offset == {}
    assert outbox.outputs == [] and outbox.dead == []
    feed(processor, SCENARIO[5:], 5)  # assigned again: rebuilt, and on as before
    assert 0 in processor.partitions and processor.input_next_offset == {0: len(SCENARIO)}


class CountingOffload:
    """Runs each piece of work in a thread and counts them."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, work: Callable[[], T]) -> T:
        self.calls += 1
        return await asyncio.get_running_loop().run_in_executor(None, work)


def stored_scenario() -> dict[str, Any]:
    first = Harness(config())
    first.feed(*SCENARIO[:5])
    first.processor.flush(0)
    return first.store


def files_of(*outboxes: Outbox) -> dict[str, str]:
    return {f.key: f.data.decode() for box in outboxes for o in box.outputs for f in o.csv_files}


def test_assigned_partitions_start_their_rebuilds_at_once_and_records_await_them() -> None:
    first = Harness(config())
    first.feed(*SCENARIO[:5])
    first.processor.flush(0)
    offload = CountingOffload()
    processor, outbox = restarted(first.store, offload)

    async def run() -> None:
        processor.assigned([0, 1])
        await asyncio.sleep(0)  # the rebuilds' tasks take their first step
        assert offload.calls == 2  # both started before any record
        assert processor.partitions == {}  # installed at a partition's first record or tick
        for offset, record in enumerate(SCENARIO[5:], start=5):
            await processor.on_record(config().kafka.topic, 0, offset, b"c1", record)
        assert offload.calls == 2  # the first record awaited the rebuild under way
        processor.assigned([0])  # held already: nothing to rebuild
        assert offload.calls == 2

    asyncio.run(run())
    assert files_of(first.outbox, outbox) == EXPECTED


def test_a_rebuild_begun_before_the_table_was_recovered_is_made_again() -> None:
    first = Harness(config())
    first.feed(*SCENARIO[:5])
    first.processor.flush(0)
    store: dict[str, Any] = {}  # the table before its recovery
    offload = CountingOffload()
    processor, outbox = restarted(store, offload)

    async def run() -> None:
        processor.assigned([0])
        store.update(first.store)  # recovered meanwhile: the rebuild read an empty table
        for offset, record in enumerate(SCENARIO[5:], start=5):
            await processor.on_record(config().kafka.topic, 0, offset, b"c1", record)

    asyncio.run(run())
    assert offload.calls == 2
    assert files_of(first.outbox, outbox) == EXPECTED  # from the recovered table, not the empty


def test_a_value_written_again_unchanged_after_the_rebuild_began_keeps_it() -> None:
    store = stored_scenario()
    offload = CountingOffload()
    processor, outbox = restarted(store, offload)

    async def run() -> None:
        processor.assigned([0])
        for key in store:
            store[key] = bytes(bytearray(store[key]))  # equal bytes, new objects (recovered)
        for offset, record in enumerate(SCENARIO[5:], start=5):
            await processor.on_record(config().kafka.topic, 0, offset, b"c1", record)

    asyncio.run(run())
    assert offload.calls == 1


def test_a_partition_revoked_while_its_assigned_rebuild_runs_is_left_alone() -> None:
    store = stored_scenario()
    release = threading.Event()

    async def offload(work: Callable[[], T]) -> T:
        def run() -> T:
            release.wait(10)
            return work()

        return await asyncio.get_running_loop().run_in_executor(None, run)

    processor, outbox = restarted(store, offload)

    async def run() -> None:
        processor.assigned([0])
        processor.revoke([0])  # while the rebuild waits in its thread
        release.set()
        for _ in range(500):  # poll for up to 5 s: the rebuild finishes, unawaited
            if not asyncio.all_tasks() - {asyncio.current_task()}:
                break
            await asyncio.sleep(0.01)
        assert processor.partitions == {} and processor.input_next_offset == {}

    asyncio.run(run())
    assert outbox.outputs == [] and outbox.dead == []
