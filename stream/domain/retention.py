"""Forgetting members absent for longer than `kafka.retain_exited`: pure, no framework.

A member whose latest event is an exit older than the partition's decided watermark minus
the retention, and none of whose history a future or pending sync can still see, is dropped
from the state. An event older than that same bound is too late to apply (the processor
dead-letters it), so every event that is applied is newer than the exit of any member
forgotten: it decides the member's presence by itself, as it would have with the member
kept. The one thing a forgotten member does not keep is its old user id and properties: a
member who comes back starts from what its new events carry (docs/semantics.md, "Forgetting").

The decided watermark (`PartitionState.emitted_through`) is the bound's clock, not the
moving watermark, because it is the one that is persisted: a restart forgets, and refuses as
too late, exactly what the first run did.
"""

from __future__ import annotations

from array import array
from typing import Literal

from stream.domain.membership import Member

__all__ = ["ExitQueue", "Verdict", "verdict", "too_late_before"]


def too_late_before(emitted_through: int | None, retain_ms: int | None) -> int | None:
    """Events older than this are too late to apply, and exits older than it are forgotten
    (None: nothing is, yet or ever)."""
    if emitted_through is None or retain_ms is None:
        return None
    return emitted_through - retain_ms


Verdict = Literal["forget", "hold", "keep"]
"""What to do with a member whose exit is old enough: drop it; ask again at the next pass (a
future or pending sync still sees part of its history); or keep it (it came back, or left
again later: that exit is queued too)."""


def verdict(member: Member, before: int, horizon: int) -> Verdict:
    """Forget a member absent since an exit older than `before` once every snapshot of it
    is visible before `horizon` (the oldest time a future or pending sync reads)."""
    history = member.history
    latest = history[-1]  # the highest stamp: what every sync from the horizon on sees
    if latest.enter or latest.stamp[0] >= before:
        return "keep"
    if any(snapshot.visible >= horizon for snapshot in history):
        return "hold"
    return "forget"


class ExitQueue:
    """One cohort's exits in the order they were applied: (event time, amplitude id).

    Event time grows roughly with arrival, so the exits old enough to forget are taken from
    the front until one is not (`take_before`); one out of order waits behind the front a
    little longer, never for ever. An exit that is old enough but still seen by a pending
    sync waits in `held` and is asked again at every pass.
    """

    __slots__ = ("_pairs", "_head", "_ordered", "held")

    def __init__(self) -> None:
        self._pairs: array[int] = array("q")
        self._head = 0
        """Index of the front pair's time in `_pairs` (taken pairs are cut off lazily)."""
        self._ordered = True
        """Whether the pairs are in (time, id) order already, so that `sort` has nothing to
        do (a restore hands over each cohort's exits sorted, in bulk)."""
        self.held: list[int] = []

    def __len__(self) -> int:
        return (len(self._pairs) - self._head) // 2 + len(self.held)

    def add(self, time_ms: int, amplitude_id: int) -> None:
        self._pairs.append(time_ms)
        self._pairs.append(amplitude_id)
        self._ordered = False

    def add_pairs(self, pairs: bytes, *, ordered: bool = False) -> None:
        """Add exits in bulk, after those there are: (time, amplitude id) pairs as native
        int64s, one after the other (as `array("q")` holds them). `ordered`: they are in
        (time, id) order."""
        added = array("q", pairs)
        if not added:
            return
        queued = self._pairs
        if self._head == len(queued):  # none queued: the order is the added pairs'
            self._ordered = ordered
        else:
            last = (queued[-2], queued[-1])
            self._ordered = self._ordered and ordered and last <= (added[0], added[1])
        queued.extend(added)

    def sort(self) -> None:
        """Order the queue by time (after a restore, which adds in no particular order)."""
        if self._ordered:
            return
        pairs = self._pairs[self._head :]
        ordered = sorted(zip(pairs[0::2], pairs[1::2], strict=True))
        self._pairs = array("q", [value for pair in ordered for value in pair])
        self._head = 0
        self._ordered = True

    def take_before(self, before: int) -> list[int]:
        """The amplitude ids of the held exits and of those at the front older than
        `before`, removed from the queue."""
        taken, self.held = self.held, []
        pairs, head = self._pairs, self._head
        while head < len(pairs) and pairs[head] < before:
            taken.append(pairs[head + 1])
            head += 2
        if head * 2 >= len(pairs):  # cut the taken half off: amortised O(1) a pair
            self._pairs, self._head = pairs[head:], 0
        else:
            self._head = head
        return taken
