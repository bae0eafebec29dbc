"""Cadences, sync times and watermark arithmetic: pure functions of integers (epoch ms).

Sync times of a cadence are its multiples since the Unix epoch (UTC); a one-time rule
(`cadence = "once"`) has the single sync time `at` (`Schedule`). A partition's
watermark is the newest event time seen minus the allowed lateness; sync time T is due
once the watermark reaches T (`watermark >= T`). No function here reads a clock: the
caller passes "now" in.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

__all__ = [
    "Schedule",
    "NEVER",
    "parse_duration",
    "parse_cadence",
    "next_sync_after",
    "last_sync_at_or_before",
    "sync_times",
    "format_sync_time",
    "format_time",
    "format_duration",
    "catch_up_gap",
    "format_span",
]

_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_DURATION = re.compile(r"^\s*(\d+)\s*(ms|s|m|h|d)\s*$")
_NAMED_CADENCES = {"hourly": 3_600_000, "daily": 86_400_000}


def parse_duration(text: str) -> int:
    """`"15m"`, `"2h"`, `"1d"`, `"30s"`, `"0s"` -> milliseconds; ValueError when malformed."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a duration like '30s', '15m', '2h' or '1d'")
    return int(match.group(1)) * _UNIT_MS[match.group(2)]


def parse_cadence(text: str) -> int:
    """`"hourly"`, `"daily"` or a positive whole-minute duration -> milliseconds."""
    if text in _NAMED_CADENCES:
        return _NAMED_CADENCES[text]
    try:
        cadence = parse_duration(text)
    except ValueError:
        cadence = -1
    if cadence <= 0 or cadence % 60_000:
        raise ValueError(
            f'{text!r} is not a cadence: write "hourly", "daily" or a whole number of '
            "minutes like '15m', '2h' or '1d'"
        )
    return cadence


def next_sync_after(time_ms: int, cadence_ms: int) -> int:
    """The first sync time strictly after `time_ms`."""
    return (time_ms // cadence_ms + 1) * cadence_ms


def last_sync_at_or_before(time_ms: int, cadence_ms: int) -> int:
    """The latest sync time that is not after `time_ms`."""
    return time_ms // cadence_ms * cadence_ms


def sync_times(first: int, through: int, cadence_ms: int) -> Iterator[int]:
    """Sync times T with first <= T <= through, ascending (`first` is rounded up)."""
    start = -(-first // cadence_ms) * cadence_ms
    return iter(range(start, through + 1, cadence_ms))


#: A sync time no watermark reaches: what a one-time rule has after its time.
NEVER = 2**62


@dataclass(frozen=True, slots=True)
class Schedule:
    """A rule's sync times: every multiple of `cadence_ms` since the epoch, or, when it is
    None, the single time `at_ms` (`cadence = "once"`)."""

    cadence_ms: int | None = None
    at_ms: int | None = None

    @classmethod
    def every(cls, cadence_ms: int) -> Schedule:
        return cls(cadence_ms=cadence_ms)

    @classmethod
    def once(cls, at_ms: int) -> Schedule:
        return cls(at_ms=at_ms)

    @property
    def key(self) -> str:
        """What identifies the schedule in a rule's id: the cadence in ms, or `once@<at>`."""
        return str(self.cadence_ms) if self.cadence_ms is not None else f"once@{self.at_ms}"

    def next_after(self, time_ms: int) -> int:
        """The first sync time strictly after `time_ms` (`NEVER` when there is none)."""
        if self.cadence_ms is not None:
            return next_sync_after(time_ms, self.cadence_ms)
        assert self.at_ms is not None
        return self.at_ms if time_ms < self.at_ms else NEVER

    def last_at_or_before(self, time_ms: int) -> int:
        """The oldest instant a sync after `time_ms` diffs against: the latest sync time
        not after it (a one-time sync diffs against nothing: `time_ms` itself)."""
        if self.cadence_ms is not None:
            return last_sync_at_or_before(time_ms, self.cadence_ms)
        return time_ms

    def times(self, first: int, through: int) -> Iterator[int]:
        """Sync times T with first <= T <= through, ascending."""
        if self.cadence_ms is not None:
            return sync_times(first, through, self.cadence_ms)
        assert self.at_ms is not None
        return iter([self.at_ms] if first <= self.at_ms <= through else [])

    def previous(self, sync_time: int) -> int | None:
        """The sync time before `sync_time` (None: a one-time sync has none)."""
        return None if self.cadence_ms is None else sync_time - self.cadence_ms


def format_sync_time(time_ms: int, naming: str) -> str:
    """Sync time as it appears in file names: `amplitude` -> `2026-01-05T01:00`,
    `no-colon` -> `2026-01-05T01-00` (UTC)."""
    moment = datetime.fromtimestamp(time_ms / 1000, tz=UTC)
    separator = ":" if naming == "amplitude" else "-"
    return moment.strftime(f"%Y-%m-%dT%H{separator}%M")


_PRECISIONS = {"minutes": 16, "seconds": 19, "milliseconds": 23}


def format_time(time_ms: int, precision: str = "seconds", *, table: bool = False) -> str:
    """An instant in UTC for people and manifests: `2026-01-05T01:00:00Z`. `precision`:
    "minutes" (`2026-01-05T01:00Z`), "seconds" or "milliseconds" (`...01:00:00.000Z`);
    `table=True` for a table's column: `2026-01-05 01:00:00`, no zone letter."""
    moment = datetime.fromtimestamp(time_ms / 1000, tz=UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[: _PRECISIONS[precision]]
    return text.replace("T", " ") if table else text + "Z"


def format_duration(duration_ms: int) -> str:
    """Milliseconds in the largest unit `parse_duration` reads that divides them: `30d`."""
    for unit in ("d", "h", "m", "s"):
        if duration_ms and duration_ms % _UNIT_MS[unit] == 0:
            return f"{duration_ms // _UNIT_MS[unit]}{unit}"
    return f"{duration_ms}ms"


def catch_up_gap(watermark: int | None, now_ms: int, limit_ms: int | None) -> int | None:
    """How far an idle partition at `watermark` is behind the wall clock when that is more
    than `limit_ms` (`kafka.idle_catch_up`): it must then not follow the wall clock, which
    would write every sync time in between at once. None: it may follow."""
    if watermark is None or limit_ms is None:
        return None
    gap = now_ms - watermark
    return gap if gap > limit_ms else None


def format_span(duration_ms: int) -> str:
    """A length of time for people, to the minute: `333d 4h`, `5h 12m`, `3m`, `40s`."""
    minutes, seconds = divmod(max(duration_ms, 0) // 1000, 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d {hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h {minutes}m" if minutes else f"{hours}h"
    return f"{minutes}m" if minutes else f"{seconds}s"
