"""The cyclic garbage collector, tuned for a process that holds membership state."""

from __future__ import annotations

import gc

__all__ = ["tune_gc"]


def tune_gc() -> None:
    """Run the cyclic garbage collector far less often. Membership state is millions of
    long-lived objects, and with Python's default thresholds (a collection every 700
    allocations) the collector took about half of the batch path's time (BENCHMARKS.md).
    Reference counting still frees at once everything that is not in a cycle."""
    gc.freeze()  # what start-up built lives as long as the process: collections skip it
    gc.set_threshold(100_000, 50, 100)
