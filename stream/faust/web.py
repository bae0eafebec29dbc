"""The worker's web views on Faust's web server: the status page at `/`, `/status.json`,
`/metrics` (Prometheus text) and `/health`. `faust/worker.py` hands in the Faust app; this module
only uses its `page` decorator and its consumer's offsets."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

from stream.engine.processor import Processor
from stream.errors import SinkError
from stream.metrics import render_prometheus
from stream.ops.status import PartitionStatus, Snapshot, render_status_page
from stream.sinks import Sink

__all__ = ["add_web_views"]


def add_web_views(
    app: Any, processor: Processor, sinks: Mapping[str, Sink], clock: Callable[[], float]
) -> None:
    """`/` status page, `/status.json`, `/metrics` (Prometheus) and `/health`."""
    topic = processor.settings.kafka.topic
    health = _HealthProbe(sinks, clock)

    async def snapshot() -> Snapshot:
        partitions = []
        now = clock()
        for tp in sorted(app.consumer.assignment()):
            if tp.topic != topic:
                continue
            highwater = app.consumer.highwater(tp)
            done = processor.input_next_offset.get(tp.partition)
            if done is None:
                done = await app.consumer.position(tp)
            state = processor.partitions.get(tp.partition)
            watermark = state.watermark if state else None
            partitions.append(
                PartitionStatus(
                    partition=tp.partition,
                    lag=None if highwater is None or done is None else max(highwater - done, 0),
                    watermark_ms=watermark,
                    freshness_seconds=None if watermark is None else now - watermark / 1000,
                )
            )
        metrics = processor.metrics
        return Snapshot(
            app_id=app.conf.id,
            topic=topic,
            partitions=partitions,
            syncs=list(metrics.recent_syncs),
            errors=list(metrics.recent_errors),
            events=metrics.events,
            dead_letters=metrics.dead_letters,
        )

    @app.page("/")
    async def status_page(web: Any, request: Any) -> Any:
        return web.html(render_status_page(await snapshot()))

    @app.page("/status.json")
    async def status_json(web: Any, request: Any) -> Any:
        return web.json((await snapshot()).as_json())

    @app.page("/metrics")
    async def metrics_page(web: Any, request: Any) -> Any:
        current = await snapshot()
        text = render_prometheus(
            processor.metrics,
            {p.partition: p.lag for p in current.partitions if p.lag is not None},
            {
                p.partition: p.freshness_seconds
                for p in current.partitions
                if p.freshness_seconds is not None
            },
        )
        return web.text(text, content_type="text/plain; version=0.0.4")

    @app.page("/health")
    async def health_page(web: Any, request: Any) -> Any:
        problems = await health.problems()
        if app.consumer.should_stop or not app.consumer.assignment():
            problems = ["not consuming: no partition assigned", *problems]
        if problems:
            return web.json({"status": "unavailable", "reasons": problems}, status=503)
        return web.json({"status": "ok"})


class _HealthProbe:
    """Probes every destination in a thread, at most once per `ttl` seconds."""

    def __init__(self, sinks: Mapping[str, Sink], clock: Callable[[], float], ttl: float = 10.0):
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
        for name, sink in sorted(self.sinks.items()):
            try:
                sink.probe()
            except SinkError as exc:
                problems.append(f"destination {name}: {exc}")
        return problems
