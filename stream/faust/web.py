"""The worker's web views on Faust's web server: the status page at `/`, `/status.json`,
`/metrics` (Prometheus text) and `/health`. `faust/worker.py` hands in the Faust app; this
module only uses its `page` decorator, its consumer's offsets and how long its producer has
waited for the broker."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import faust
from faust.types import TP

from stream.engine.processor import Processor
from stream.errors import SinkError
from stream.ops.prometheus import CONTENT_TYPE, render_prometheus
from stream.ops.status import PartitionStatus, Snapshot, render_status_page
from stream.sinks.registry import SinkRegistry

__all__ = ["add_web_views", "UNCONFIRMED_WRITE_SECONDS"]

#: How long a record may wait for the broker's confirmation before `/health` says the
#: worker cannot write (a leader election takes a few seconds; the worker retries itself).
UNCONFIRMED_WRITE_SECONDS = 10.0


def add_web_views(
    app: faust.App,
    processor: Processor,
    sinks: SinkRegistry,
    clock: Callable[[], float],
    warnings: Callable[[], list[str]] = list,
) -> None:
    """`/` status page, `/status.json`, `/metrics` (Prometheus) and `/health`. `warnings`:
    what the operator should know that does not make the worker unhealthy."""
    views = _Views(app, processor, _HealthProbe(sinks, clock), clock, warnings)

    @app.page("/")
    async def status_page(web: Any, request: Any) -> Any:
        return web.html(render_status_page(await views.snapshot()))

    @app.page("/status.json")
    async def status_json(web: Any, request: Any) -> Any:
        return web.json((await views.snapshot()).as_json())

    @app.page("/metrics")
    async def metrics_page(web: Any, request: Any) -> Any:
        return web.bytes(await views.metrics_text(), content_type=CONTENT_TYPE)

    @app.page("/health")
    async def health_page(web: Any, request: Any) -> Any:
        problems = await views.health_problems()
        if problems:
            return web.json({"status": "unavailable", "reasons": problems}, status=503)
        warnings = views.warnings()
        return web.json({"status": "ok", "warnings": warnings} if warnings else {"status": "ok"})


class _Views:
    """What the pages show, from the processor and the consumer's offsets."""

    def __init__(
        self,
        app: faust.App,
        processor: Processor,
        health: _HealthProbe,
        clock: Callable[[], float],
        warnings: Callable[[], list[str]],
    ) -> None:
        self.app = app
        self.processor = processor
        self.health = health
        self.clock = clock
        self.warnings = warnings
        self.topic = processor.settings.kafka.topic

    async def snapshot(self) -> Snapshot:
        now = self.clock()
        assigned = sorted(self.app.consumer.assignment())
        partitions = [await self._partition(tp, now) for tp in assigned if tp.topic == self.topic]
        metrics = self.processor.metrics
        return Snapshot(
            app_id=self.app.conf.id,
            topic=self.topic,
            partitions=partitions,
            syncs=list(metrics.recent_syncs),
            errors=list(metrics.recent_errors),
            warnings=self.warnings(),
            events=metrics.events,
            dead_letters=metrics.dead_letters,
        )

    async def _partition(self, tp: TP, now: float) -> PartitionStatus:
        consumer = self.app.consumer
        highwater = consumer.highwater(tp)
        done = self.processor.handled_up_to(tp.partition)
        if done is None:
            done = await consumer.position(tp)
        state = self.processor.state_of(tp.partition)
        watermark = state.watermark if state else None
        return PartitionStatus(
            partition=tp.partition,
            lag=None if highwater is None or done is None else max(highwater - done, 0),
            watermark_ms=watermark,
            freshness_seconds=None if watermark is None else now - watermark / 1000,
        )

    async def metrics_text(self) -> bytes:
        partitions = (await self.snapshot()).partitions
        return render_prometheus(
            self.processor.metrics,
            {p.partition: p.lag for p in partitions if p.lag is not None},
            {
                p.partition: p.freshness_seconds
                for p in partitions
                if p.freshness_seconds is not None
            },
        )

    async def health_problems(self) -> list[str]:
        problems = await self.health.problems()
        consumer = self.app.consumer
        if consumer.should_stop or not consumer.assignment():
            problems = ["not consuming: no partition assigned", *problems]
        producer: Any = self.app.producer
        if hasattr(producer, "unconfirmed_for"):  # `producer.TopicTrackingProducer`
            waited = producer.unconfirmed_for(time.monotonic())
            if waited >= UNCONFIRMED_WRITE_SECONDS:
                problems.append(
                    f"cannot write to Kafka: a record has waited {waited:.0f}s for the "
                    "broker's confirmation (no leader or too few in-sync replicas?)"
                )
        return problems


class _HealthProbe:
    """Probes every active destination in a thread, at most once per `ttl` seconds (one a
    reload removed is not the config's any more, even while syncs drain to it)."""

    def __init__(self, sinks: SinkRegistry, clock: Callable[[], float], ttl: float = 10.0):
        self.sinks = sinks
        self.clock = clock
        self.ttl = ttl
        self._checked_at: float | None = None
        self._problems: list[str] = []

    async def problems(self) -> list[str]:
        now = self.clock()
        if self._checked_at is None or now - self._checked_at >= self.ttl:
            loop = asyncio.get_running_loop()
            self._problems = await loop.run_in_executor(None, self._probe_all)
            self._checked_at = now
        return list(self._problems)

    def _probe_all(self) -> list[str]:
        problems = []
        for name, sink in sorted(self.sinks.active.items()):
            try:
                sink.probe()
            except SinkError as exc:
                problems.append(f"destination {name}: {exc}")
        return problems
