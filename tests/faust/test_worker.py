"""The worker's wiring, without a broker: settings, topics, the acknowledgement seam."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from faust.types import TP

from stream.config import settings_from_mapping
from stream.faust.worker import WORKER_FAUST_DEFAULTS, Worker, stop_line


def test_faust_settings_are_passed_through_as_they_are() -> None:
    settings = settings_from_mapping(
        {
            "kafka": {"partitions": 3},
            "faust": {"broker_session_timeout": 7.5, "stream_buffer_maxsize": 123},
        }
    )
    worker = Worker(settings, broker_url="kafka://127.0.0.1:1")
    assert worker.app.conf.broker_session_timeout == 7.5
    assert worker.app.conf.stream_buffer_maxsize == 123
    assert worker.app.conf.topic_partitions == 3
    worker.writer.close()


def test_the_worker_reads_its_input_repartition_and_tick_topics_and_keeps_its_defaults() -> None:
    settings = settings_from_mapping({"kafka": {"app_id": "a", "topic": "in"}})
    worker = Worker(settings, broker_url="kafka://127.0.0.1:1")
    assert worker.own_topics == {"in", "a-by-cohort", "a-ticks"}
    assert set(worker.sources.topics) == worker.own_topics
    assert worker.dlq.topics == ("in-dlq",)
    assert (
        worker.app.conf.broker_max_poll_records == WORKER_FAUST_DEFAULTS["broker_max_poll_records"]
    )
    assert worker.acks.dirty_partitions() == [] and worker.fault is None
    worker.writer.close()


def test_the_stop_line_says_why_and_where_the_next_start_reads_on() -> None:
    assert stop_line("SIGTERM", "in", {2: 40, 0: 7}) == (
        "stopped (SIGTERM): committed in partition@offset 0@7, 2@40; "
        "the next start reads on from there"
    )
    assert stop_line("SIGINT", "in", {}) == "stopped (SIGINT): nothing committed on in"


def test_a_record_whose_partition_is_revoked_while_it_is_handled_is_not_acknowledged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = settings_from_mapping({"kafka": {"app_id": "a", "topic": "in"}})
    worker = Worker(settings, broker_url="kafka://127.0.0.1:1")
    tp = TP("in", 0)
    settled: list[int] = []
    abandoned: list[int] = []
    consumer = SimpleNamespace(
        settle=lambda message: settled.append(message.offset),
        abandon=lambda message: abandoned.append(message.offset),
    )

    def event(offset: int) -> Any:
        return SimpleNamespace(message=SimpleNamespace(topic="in", partition=0, offset=offset))

    async def handled_then_revoked(record: Any) -> None:
        if record.message.offset == 1:
            worker._revoking({tp})  # a rebalance runs while the record is in hand
            worker.delivery.start(tp, 1)  # and gives the partition back at once

    async def main() -> None:
        worker.delivery.start(tp, 0)
        await worker._deliver(event(0))
        await worker._deliver(event(1))

    monkeypatch.setattr(worker, "_handle", handled_then_revoked)
    monkeypatch.setattr(Worker, "_consumer", property(lambda self: consumer))
    asyncio.run(main())
    assert settled == [0] and abandoned == [1]  # offset 1 is read again, not committed past
    worker.writer.close()
