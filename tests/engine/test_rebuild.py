"""A partition this worker has no state for is rebuilt from the table off the event loop
(`Processor.offload`), from a copy of its keys; one taken away meanwhile is left alone."""

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
