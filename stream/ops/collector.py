"""The cyclic garbage collector, tuned for a process that holds membership state."""

from __future__ import annotations

import gc

__all__ = ["THRESHOLDS", "collect_rarely", "tune_gc"]

#: The collector's thresholds (`gc.set_threshold`): a collection of the youngest generation
#: every 100,000 allocations instead of Python's 700, and of the older ones as rarely.
THRESHOLDS = (100_000, 50, 100)


def collect_rarely() -> None:
    """Set `THRESHOLDS` now: first thing in a process, before its command's imports. They
    make hundreds of thousands of objects that live as long as the process, and with the
    default thresholds every collection walked those made so far again: 0.15-0.3 s of a
    worker's 1.4-1.9 s of imports (BENCHMARKS.md)."""
    gc.set_threshold(*THRESHOLDS)


def tune_gc() -> None:
    """Run the cyclic garbage collector far less often. Membership state is millions of
    long-lived objects, and with Python's default thresholds (a collection every 700
    allocations) the collector took about half of the batch path's time (BENCHMARKS.md).
    Reference counting still frees at once everything that is not in a cycle."""
    gc.freeze()  # what start-up built lives as long as the process: collections skip it
    collect_rarely()
