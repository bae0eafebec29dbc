"""Writes built syncs to their destinations from a thread pool, retrying until they land.

The event loop only awaits: building the files (CPU) and uploading them (I/O) both run in
worker threads. A failed write is retried with exponential backoff and jitter, for ever:
skipping a sync would break every later diff, so the partition waits for its destination.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import random
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor

from .errors import SinkError
from .metrics import Metrics, RecentSync
from .sinks import Sink
from .sync import SyncOutput, write_sync

__all__ = ["SyncWriter"]

log = logging.getLogger(__name__)


_gc_lock = threading.Lock()
_gc_pausers = 0


def _without_cyclic_gc(build: Callable[[], SyncOutput]) -> SyncOutput:
    """Run `build` with the cyclic garbage collector paused.

    A big sync allocates millions of short-lived tuples, and every collection they trigger
    walks all of the worker's state (millions of objects): measured on a 1M-member cohort,
    half of the flush time. What a build allocates holds no reference cycles, so reference
    counting frees it all the same.
    """
    global _gc_pausers
    with _gc_lock:
        _gc_pausers += 1
        gc.disable()
    try:
        return build()
    finally:
        with _gc_lock:
            _gc_pausers -= 1
            if _gc_pausers == 0:
                gc.enable()


class SyncWriter:
    def __init__(
        self,
        sinks: Mapping[str, Sink],
        metrics: Metrics,
        *,
        threads: int = 4,
        first_backoff: float = 0.5,
        max_backoff: float = 30.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.sinks = sinks
        self.metrics = metrics
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="cohort-sync-io")
        self._first_backoff = first_backoff
        self._max_backoff = max_backoff
        self._sleep = sleep

    async def write(self, build: Callable[[], SyncOutput]) -> SyncOutput:
        """Build a sync in a thread, then write it until it has landed."""
        loop = asyncio.get_running_loop()
        output = await loop.run_in_executor(self._pool, _without_cyclic_gc, build)
        sink = self.sinks[output.destination]
        backoff = self._first_backoff
        while True:
            started = time.monotonic()
            try:
                kept = await loop.run_in_executor(self._pool, write_sync, sink, output)
                break
            except SinkError as exc:
                self.metrics.upload_retries += 1
                delay = backoff * (0.5 + random.random())
                message = (
                    f"destination {output.destination}: sync {output.manifest.key} of cohort "
                    f"{output.cohort_id} not written, retrying in {delay:.1f}s: {exc}"
                )
                log.error("%s", message)
                self.metrics.recent_errors.appendleft(message)
                await self._sleep(delay)
                backoff = min(backoff * 2, self._max_backoff)
        self.metrics.observe_upload(time.monotonic() - started)
        for key in kept:
            self.metrics.kept_objects += 1
            message = (
                f"destination {output.destination}: {sink.location(key)} already holds other "
                "bytes than this sync's; kept (objects are never replaced)"
            )
            log.warning("%s", message)
            self.metrics.recent_errors.appendleft(message)
        self.metrics.files += len(output.csv_files) + 1
        self.metrics.bytes += sum(len(f.data) for f in (*output.csv_files, output.manifest))
        self.metrics.synced(
            RecentSync(
                output.destination,
                output.cohort_id,
                output.sync_time,
                output.counts,
                sink.location(output.manifest.key),
            )
        )
        log.info(
            "wrote %s (entering %d, exiting %d, existing %d)",
            sink.location(output.manifest.key),
            output.counts["entering"],
            output.counts["exiting"],
            output.counts["existing"],
        )
        return output

    def close(self) -> None:
        self._pool.shutdown(wait=True)
