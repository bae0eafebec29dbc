"""Writes built syncs to their destinations from thread pools, retrying until they land.

The event loop only awaits: building the files (CPU) and uploading them (I/O) both run in
threads. Builds run one at a time in a thread of their own, so a build never waits behind
uploads. A sync's three CSVs are put at once, each in a thread of its own, and its manifest
once all three are stored: an upload waits on the network, not on the one before. Up to
`PUTS_AT_ONCE` puts run at once (the lanes write several syncs at a time).
A failed write is retried with exponential backoff and jitter, for ever:
skipping a sync would break every later diff, so the partition waits for its destination.
Only `abandon` (the worker is stopping) ends the wait: `write` then raises `WriteAbandoned`
and the record that made the sync due is not acknowledged, so a restart writes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import inspect
import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from stream.errors import PermanentSinkError, SinkError, WriteAbandoned
from stream.metrics import Metrics, RecentSync
from stream.output.sync import SyncOutput
from stream.sinks import PUTS_AT_ONCE, Put, Sink

__all__ = ["SyncWriter"]

log = logging.getLogger(__name__)

T = TypeVar("T")


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
        threads: int = PUTS_AT_ONCE,
        first_backoff: float = 0.5,
        max_backoff: float = 30.0,
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> None:
        """`threads`: how many puts run at once. `sleep` waits between attempts (default:
        until the delay passes or `abandon`)."""
        self.sinks = sinks
        self.metrics = metrics
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="cohort-sync-io")
        self._builder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cohort-sync-build")
        self._first_backoff = first_backoff
        self._max_backoff = max_backoff
        self._sleep = sleep or self._sleep_unless_abandoned
        self._abandoned: asyncio.Event | None = None

    def abandon(self) -> None:
        """Stop waiting: every `write` in progress or to come raises `WriteAbandoned`.
        Call from the event loop."""
        self._stopping().set()

    async def write(self, build: Callable[[], SyncOutput]) -> SyncOutput:
        """Build a sync in a thread, then write it until it has landed."""
        return await self.land(await self.build(build))

    async def build(self, build: Callable[[], SyncOutput]) -> SyncOutput:
        """Run `build` in the build thread (the event loop goes on meanwhile)."""
        loop = asyncio.get_running_loop()
        return await self.unless_abandoned(
            loop.run_in_executor(self._builder, _without_cyclic_gc, build)
        )

    async def land(self, output: SyncOutput) -> SyncOutput:
        """Write a built sync until it has landed, retrying with backoff."""
        sink = self.sinks[output.destination]
        backoff = self._first_backoff
        while True:
            started = time.monotonic()
            try:
                puts = await self.unless_abandoned(self._put_rounds(sink, output))
                break
            except SinkError as exc:
                self.metrics.upload_retries += 1
                kind = "permanent" if isinstance(exc, PermanentSinkError) else "transient"
                self.metrics.upload_errors[(output.destination, kind)] += 1
                delay = backoff * (0.5 + random.random())
                message = (
                    f"destination {output.destination}: sync {output.manifest.key} of cohort "
                    f"{output.cohort_id} not written, retrying in {delay:.1f}s: {exc}"
                )
                log.error("%s", message)
                self.metrics.recent_errors.appendleft(message)
                await self._sleep(delay)
                if self._stopping().is_set():
                    raise WriteAbandoned(f"sync {output.manifest.key}: stopping") from None
                backoff = min(backoff * 2, self._max_backoff)
        self.metrics.observe_upload(time.monotonic() - started)
        self.metrics.count_puts(put.value for put in puts.values())
        for key in (key for key, put in puts.items() if put is Put.KEPT):
            message = (
                f"destination {output.destination}: {sink.location(key)} already holds other "
                "bytes than this sync's; kept (objects are never replaced)"
            )
            log.warning("%s", message)
            self.metrics.recent_errors.appendleft(message)
        written = [
            file for file in (*output.csv_files, output.manifest) if puts[file.key] is Put.WRITTEN
        ]
        self.metrics.files += len(written)
        self.metrics.bytes += sum(file.body.size for file in written)
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
            "%s %s (entering %d, exiting %d, existing %d)",
            _what_happened(puts.values()),
            sink.location(output.manifest.key),
            output.counts["entering"],
            output.counts["exiting"],
            output.counts["existing"],
        )
        return output

    async def _put_rounds(self, sink: Sink, output: SyncOutput) -> dict[str, Put]:
        """Put each round of the sync's files at once (`SyncOutput.rounds`), the next round
        only once every put of the one before succeeded. A round waits for all its puts
        before it raises the first failure, so a retry never races a put still running."""
        loop = asyncio.get_running_loop()
        puts: dict[str, Put] = {}
        for files in output.rounds:
            outcomes = await asyncio.gather(
                *(loop.run_in_executor(self._pool, sink.put, f.key, f.body) for f in files),
                return_exceptions=True,
            )
            for file, outcome in zip(files, outcomes, strict=True):
                if isinstance(outcome, BaseException):
                    raise outcome
                puts[file.key] = outcome
        return puts

    def close(self) -> None:
        """Wait for the threads, unless abandoned (a late upload is harmless: same bytes)."""
        abandoned = self._abandoned is not None and self._abandoned.is_set()
        for pool in (self._builder, self._pool):
            pool.shutdown(wait=not abandoned, cancel_futures=abandoned)

    def _stopping(self) -> asyncio.Event:
        if self._abandoned is None:
            self._abandoned = asyncio.Event()
        return self._abandoned

    async def _sleep_unless_abandoned(self, delay: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping().wait(), timeout=delay)

    async def unless_abandoned(self, work: Awaitable[T]) -> T:
        """`work`'s result, or `WriteAbandoned` as soon as `abandon` is called. Abandoned
        work that is a coroutine is cancelled (a stop waits for every task left, up to a
        second); a thread's finishes there, unobserved."""
        stopping = self._stopping()
        if stopping.is_set():
            if inspect.iscoroutine(work):
                work.close()  # it will never run: no "never awaited" warning at stop
            raise WriteAbandoned("stopping")
        task = asyncio.ensure_future(work)
        waiter = asyncio.ensure_future(stopping.wait())
        try:
            await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        if not task.done():
            if inspect.iscoroutine(work):
                task.cancel()
            task.add_done_callback(_ignore_outcome)
            raise WriteAbandoned("stopping")
        return task.result()


def _what_happened(puts: Iterable[Put]) -> str:
    """The log line's words for a sync's puts: "wrote" only when every file was new."""
    outcomes = Counter(puts)
    total = sum(outcomes.values())
    if outcomes[Put.WRITTEN] == total:
        return "wrote"
    if outcomes[Put.UNCHANGED] == total:
        return "already written with identical bytes:"
    others = ", ".join(
        f"{outcomes[put]} {word}"
        for put, word in ((Put.UNCHANGED, "identical already"), (Put.KEPT, "kept"))
        if outcomes[put]
    )
    return f"wrote {outcomes[Put.WRITTEN]} of {total} files ({others}) of"


def _ignore_outcome(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()
