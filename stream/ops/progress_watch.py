"""Tells when something that should be moving has stood still for too long. Pure: the caller
passes the clock's reading, so tests need no time to pass."""

from __future__ import annotations

from collections.abc import Hashable

__all__ = ["ProgressWatch"]


class ProgressWatch:
    """Watches one position (any comparable value: offsets, counters) for lack of change."""

    def __init__(self, patience: float) -> None:
        self.patience = patience
        self._position: Hashable | None = None
        self._since: float | None = None

    def stalled(self, now: float, position: Hashable | None) -> bool:
        """Whether `position` has not changed for `patience` seconds up to `now`. None: there
        is nothing to watch now (the watch starts afresh). After it says True, it waits
        another `patience` before it says so again."""
        if position is None:
            self._position = self._since = None
            return False
        if self._since is None or position != self._position:
            self._position, self._since = position, now
            return False
        if now - self._since < self.patience:
            return False
        self._since = now
        return True
