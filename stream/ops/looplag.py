"""A loop-lag probe: a task that sleeps `interval` seconds and records how late it wakes.

Everything the worker does between two records runs on one asyncio loop; while it is
blocked, Faust's timers, the consumer's heartbeats and `/health` wait too. The lateness of a
short sleep is how long the loop was blocked (`Metrics.loop_lag`, exposed on `/metrics` as
`cohort_sync_event_loop_lag_seconds` and its largest, `..._max_seconds`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from stream.metrics import Histogram

__all__ = ["PROBE_INTERVAL", "watch_loop_lag"]

PROBE_INTERVAL = 0.1


async def watch_loop_lag(
    lag: Histogram,
    *,
    interval: float = PROBE_INTERVAL,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Observe each wake's lateness into `lag`, until cancelled."""
    while True:
        started = clock()
        await sleep(interval)
        lag.observe(max(clock() - started - interval, 0.0))
