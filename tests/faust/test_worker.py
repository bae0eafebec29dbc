"""The worker's wiring, without a broker: settings, topics, the acknowledgement seam."""

from __future__ import annotations

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
