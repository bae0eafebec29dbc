"""The loop-lag probe records how late each short sleep wakes."""

from __future__ import annotations

import asyncio

import pytest

from stream.metrics import LOOP_LAG_BUCKETS, Histogram
from stream.ops.looplag import watch_loop_lag


def test_each_wake_s_lateness_is_observed_and_the_largest_kept() -> None:
    now = [0.0]
    overruns = iter([0.0, 0.3, 2.0, 0.01])

    async def sleep(seconds: float) -> None:
        try:
            now[0] += seconds + next(overruns)
        except StopIteration:
            raise asyncio.CancelledError from None

    lag = Histogram(LOOP_LAG_BUCKETS)
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(watch_loop_lag(lag, interval=0.1, clock=lambda: now[0], sleep=sleep))
    assert lag.count == 4
    assert lag.largest == pytest.approx(2.0)
    assert lag.total == pytest.approx(2.31)
    assert lag.counts[LOOP_LAG_BUCKETS.index(0.25)] == 2  # 0 and 0.01
