"""`InOrderConsumer` against Faust's own consumer, without a broker: what a jump in fetched
offsets does to the next commit."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from faust.transport.drivers.aiokafka import Consumer as FaustConsumer
from faust.types import TP

from stream.faust.consumer import InOrderConsumer
from stream.faust.fixes import SafeApp


@pytest.mark.parametrize(
    ("kind", "commits_to"),
    [(InOrderConsumer, 6), (FaustConsumer, 100)],
    ids=["InOrderConsumer", "faust-own"],
)
def test_records_after_a_jump_are_committed_past_only_once_handled(
    kind: type[FaustConsumer], commits_to: int
) -> None:
    """After a seek, the rest of a batch fetched before it can jump from offset 2 to 100
    (Faust's drain loop then records 3-99 as a gap). The agent's in-order delivery rewinds
    and handles 3, 4 and 5: Faust's own consumer then fills in the whole gap, and within a
    few commits commits 100, past 6-99, which no one handled; a crash would lose them. This
    is Faust's offset arithmetic, the same on every broker."""
    app = SafeApp("consumer-test", broker="kafka://127.0.0.1:1")
    consumer: Any = kind(
        app.transport,
        callback=app.topics.on_message,
        on_partitions_revoked=app._on_partitions_revoked,
        on_partitions_assigned=app._on_partitions_assigned,
        beacon=app.beacon,
        loop=app.loop,
    )
    tp = TP("in", 0)
    asyncio.run(consumer._add_gap(tp, 3, 99))  # as Faust's drain loop does on the jump
    consumer._acked[tp].extend(range(6))  # handled in order: 0-2, then 3-5 after a rewind
    assert committed_after_commits(consumer, tp) == commits_to


def committed_after_commits(consumer: Any, tp: TP, commits: int = 10) -> int | None:
    """The offset committed once each of `commits` commits took what `_new_offset` gave."""
    for _ in range(commits):
        offset = consumer._new_offset(tp)
        if offset is None:
            break
        consumer._committed_offset[tp] = offset
    committed: int | None = consumer._committed_offset[tp]
    return committed
