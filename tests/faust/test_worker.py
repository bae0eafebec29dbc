"""The worker's wiring, without a broker: settings, topics, the acknowledgement seam."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from aiokafka.errors import KafkaError, TopicAuthorizationFailedError
from faust.types import TP

from stream.config import settings_from_mapping
from stream.faust import worker as worker_module
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
    assert worker.pump.acks.dirty_partitions() == [] and worker.fault is None
    worker.writer.close()


def test_the_stop_line_says_why_and_where_the_next_start_reads_on() -> None:
    assert stop_line("SIGTERM", "in", {2: 40, 0: 7}) == (
        "stopped (SIGTERM): committed in partition@offset 0@7, 2@40; "
        "the next start reads on from there"
    )
    assert stop_line("SIGINT", "in", {}) == "stopped (SIGINT): nothing committed on in"


def test_a_fault_stops_the_worker_in_process_without_a_signal() -> None:
    settings = settings_from_mapping({"kafka": {"app_id": "a", "topic": "in"}})
    worker = Worker(settings, broker_url="kafka://127.0.0.1:1")
    worker.stop_for("writing to in-dlq failed: refused")
    worker.stop_for("a second fault")
    assert worker.fault == "writing to in-dlq failed: refused"  # the first one counts
    assert worker.stopper.requested  # the app's runner stops it, as SIGTERM would
    worker.writer.close()


def test_assigned_partitions_of_own_topics_start_the_pump_where_faust_sought_them() -> None:
    settings = settings_from_mapping({"kafka": {"app_id": "a", "topic": "in"}})
    worker = Worker(settings, broker_url="kafka://127.0.0.1:1")

    async def seeked() -> None:  # Faust's consumer calls it on the event loop
        worker._start_partitions({TP("in", 3): 7, TP("a-ticks", 3): 0, TP("elsewhere", 0): 0})

    asyncio.run(seeked())
    assert worker.consuming == [3]
    assert worker.pump.delivery.next_offset(TP("in", 3)) == 7
    assert worker.pump.delivery.next_offset(TP("a-ticks", 3)) == 0
    assert worker.pump.delivery.next_offset(TP("elsewhere", 0)) is None
    event = SimpleNamespace(message=SimpleNamespace(topic="in", partition=3, offset=7))
    assert worker_module._locate(event) == ("in", 3, 7)  # type: ignore[arg-type]
    worker.writer.close()


@pytest.mark.parametrize(
    ("operation", "error", "line"),
    [
        (
            "Write",
            TopicAuthorizationFailedError("in-dlq"),
            "not authorized: this client may not Write topic in-dlq on 127.0.0.1:1 "
            "(the ACLs it needs: cohort-sync policy --kafka)",
        ),
        ("Write", KafkaError("gone"), "writing to in-dlq failed: KafkaError: gone"),
        ("Read", KafkaError("gone"), "reading in-dlq failed: KafkaError: gone"),
    ],
)
def test_a_refused_record_or_read_stops_the_worker_with_one_line_in_process(
    operation: str, error: Exception, line: str
) -> None:
    settings = settings_from_mapping(
        {"kafka": {"app_id": "a", "topic": "in", "broker": "127.0.0.1:1"}}
    )
    worker = Worker(settings, broker_url="kafka://127.0.0.1:1")
    assert worker.app.on_refused is not None
    worker.app.on_refused(operation, "in-dlq", error)
    assert worker.fault == line and worker.stopper.requested
    worker.writer.close()
