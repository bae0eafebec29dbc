"""`kafka.idle_catch_up`: which idle partitions are too far behind to follow the wall clock.

Following the wall clock from months back would write every sync time in between at once
(a backfill, events copied from an example). Such a partition stays on event time; each gets
one warning when it is first held back, and its warning stays on `/health` and the status
page until newer events (or a partition that may follow again) clear it. Pure: the caller
passes the watermark and "now".
"""

from __future__ import annotations

import logging

from stream.config import KafkaSettings
from stream.domain.windows import catch_up_gap, format_duration, format_span, format_time

__all__ = ["CatchUpGuard"]

log = logging.getLogger(__name__)


class CatchUpGuard:
    def __init__(self, kafka: KafkaSettings) -> None:
        self.kafka = kafka
        self.behind: dict[int, int] = {}
        """Partitions held back, and the newest time each had reached (ms)."""

    def holds_back(self, partition: int, watermark: int | None, now_ms: int) -> bool:
        """Whether the idle `partition` at `watermark` must not follow the clock to `now_ms`;
        logs a warning the first time it is held back."""
        lateness = self.kafka.allowed_lateness_ms
        if catch_up_gap(watermark, now_ms - lateness, self.kafka.idle_catch_up_ms) is None:
            self.behind.pop(partition, None)
            return False
        assert watermark is not None
        if partition not in self.behind:
            self.behind[partition] = watermark + lateness
            log.warning("%s", self.warning(partition, now_ms))
        return True

    def revoke(self, partition: int) -> None:
        """The partition was revoked."""
        self.behind.pop(partition, None)

    def warnings(self, now_ms: int) -> list[str]:
        return [self.warning(partition, now_ms) for partition in sorted(self.behind)]

    def warning(self, partition: int, now_ms: int) -> str:
        newest = self.behind[partition]
        limit = self.kafka.idle_catch_up_ms
        assert limit is not None
        return (
            f"partition {partition} is idle at {format_time(newest, 'minutes')}, "
            f"{format_span(now_ms - newest)} behind the wall clock: more than "
            f"kafka.idle_catch_up ({format_duration(limit)}), so it does not follow the wall "
            "clock and writes no sync past that time until newer events arrive (raise "
            'kafka.idle_catch_up, or set it to "off", to write them up to now)'
        )
