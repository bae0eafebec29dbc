"""Progress of a long run: one redrawn line on a terminal, a plain line every few seconds
otherwise (logs, CI), and a closing summary. The clock is injected."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

from stream.domain.windows import format_time

__all__ = ["Progress"]


class Progress:
    def __init__(
        self,
        total: int,
        out: TextIO,
        *,
        tty: bool | None = None,
        every: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total = total
        self.out = out
        self.tty = out.isatty() if tty is None else tty
        self.every = every if every is not None else (0.2 if self.tty else 5.0)
        self.clock = clock
        self.started = clock()
        self._shown_at: float | None = None

    def update(
        self, *, done: int, event_time_ms: int | None, files: int, force: bool = False
    ) -> None:
        now = self.clock()
        if not force and self._shown_at is not None and now - self._shown_at < self.every:
            return
        self._shown_at = now
        line = self.line(done=done, event_time_ms=event_time_ms, files=files, now=now)
        if self.tty:
            self.out.write("\r\x1b[2K" + line)
        else:
            self.out.write(line + "\n")
        self.out.flush()

    def line(self, *, done: int, event_time_ms: int | None, files: int, now: float) -> str:
        elapsed = max(now - self.started, 1e-9)
        rate = done / elapsed
        share = f" ({100 * done / self.total:.0f}%)" if self.total else ""
        position = format_time(event_time_ms, "minutes") if event_time_ms is not None else "-"
        remaining = (self.total - done) / rate if rate > 0 and self.total >= done else None
        eta = _duration(remaining) if remaining is not None else "-"
        return (
            f"records {done:,}/{self.total:,}{share}  event time {position}  "
            f"files {files:,}  {rate:,.0f} records/s  ETA {eta}"
        )

    def finish(self, summary: str) -> None:
        if self.tty:
            self.out.write("\n")
        self.out.write(summary + "\n")
        self.out.flush()

    @property
    def elapsed(self) -> float:
        return self.clock() - self.started


def _duration(seconds: float) -> str:
    whole = int(round(seconds))
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"
