"""What the web pages show, from the processor and the consumer's offsets (no web server)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from faust.types import TP

from stream.domain.partitioner import partition_for
from stream.engine.processor import Processor
from stream.errors import PermanentSinkError
from stream.faust.web import UNCONFIRMED_WRITE_SECONDS, _HealthProbe, _Views
from stream.sinks.registry import SinkRegistry
from tests.engine.test_processor import Outbox, config
from tests.scenario import C1


class Consumer:
    should_stop = False

    def __init__(self, assigned: set[TP]) -> None:
        self.assigned = assigned

    def assignment(self) -> set[TP]:
        return self.assigned

    def highwater(self, tp: TP) -> int:
        return 10

    async def position(self, tp: TP) -> int:
        return 4


class Sink:
    def __init__(self, problem: str | None) -> None:
        self.problem = problem

    def probe(self) -> None:
        if self.problem:
            raise PermanentSinkError(self.problem)


class Producer:
    def __init__(self, waited: float) -> None:
        self.waited = waited

    def unconfirmed_for(self, now: float) -> float:
        return self.waited


def views(
    assigned: set[TP], problem: str | None = None, waited: float = 0.0
) -> tuple[_Views, Processor]:
    processor = Processor(config(), {}, Outbox(), partition_for)
    app: Any = SimpleNamespace(
        consumer=Consumer(assigned), producer=Producer(waited), conf=SimpleNamespace(id="app")
    )
    sinks = SinkRegistry(config().destinations, lambda _: Sink(problem))  # type: ignore[arg-type,return-value]
    health = _HealthProbe(sinks, clock=lambda: 0.0)
    return _Views(app, processor, health, lambda: 1_767_578_400.0, list), processor


def test_lag_is_the_high_watermark_minus_what_was_handled_on_the_input_topic_only() -> None:
    topic = config().kafka.topic
    view, processor = views({TP(topic, 0), TP("cohort-sync-ticks", 0)})
    asyncio.run(processor.on_record(topic, 0, 0, b"c1", C1[0]))
    snapshot = asyncio.run(view.snapshot())
    [partition] = snapshot.partitions
    assert partition.partition == 0 and partition.lag == 9  # handled offset 0; 10 at the end
    assert partition.watermark_ms is not None and partition.freshness_seconds is not None
    assert b'cohort_sync_consumer_lag{partition="0"} 9.0' in asyncio.run(view.metrics_text())


def test_health_names_an_unassigned_worker_and_a_failing_destination() -> None:
    topic = config().kafka.topic
    assert asyncio.run(views({TP(topic, 0)})[0].health_problems()) == []
    problems = asyncio.run(views(set(), problem="s3://b: NoSuchBucket")[0].health_problems())
    assert problems == [
        "not consuming: no partition assigned",
        "destination d: s3://b: NoSuchBucket",
    ]


def test_health_says_when_the_broker_has_not_confirmed_a_write_for_a_while() -> None:
    assigned = {TP(config().kafka.topic, 0)}
    assert (
        asyncio.run(views(assigned, waited=UNCONFIRMED_WRITE_SECONDS - 1)[0].health_problems())
        == []
    )
    (problem,) = asyncio.run(views(assigned, waited=42.4)[0].health_problems())
    assert problem.startswith("cannot write to Kafka: a record has waited 42s")


def test_a_destination_a_reload_removed_no_longer_makes_the_worker_unhealthy() -> None:
    clock = [0.0]
    failing = config().destinations
    sinks = SinkRegistry(failing, lambda _: Sink("s3://b: NoSuchBucket"))  # type: ignore[arg-type,return-value]
    health = _HealthProbe(sinks, clock=lambda: clock[0], ttl=10.0)
    (name,) = failing
    assert asyncio.run(health.problems()) == [f"destination {name}: s3://b: NoSuchBucket"]
    sinks.reconfigure({})
    clock[0] = 10.0
    assert asyncio.run(health.problems()) == []
