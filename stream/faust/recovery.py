"""A table recovery that stops receiving is noticed and read again (part of the Faust edge).

Faust restores the membership table from its changelog before the agent gets records. Once
in 262 two-worker takeovers under load, a recovery received nothing more after "Resuming
flow" and the worker waited for ever with changelog records left (the cause is not found).
Here the worker's watchdog (`SafeApp.watchdog`, which runs during recovery, unlike Faust's
timers) watches the recovery's offsets; when
they have not moved for `RECOVERY_STALL_SECONDS` while records remain, the partitions left
are sought back to where the recovery stopped and resumed, with one log line. Reading a
changelog record twice changes nothing (each is the latest value of its key).
"""

from __future__ import annotations

import logging
from typing import Any

import faust
from faust.types import TP

from stream.ops.progress_watch import ProgressWatch

__all__ = ["RecoveryHealer", "RECOVERY_STALL_SECONDS"]

log = logging.getLogger(__name__)

#: How long a recovery with records left may receive nothing before it is read again.
RECOVERY_STALL_SECONDS = 10.0


class RecoveryHealer:
    def __init__(self, app: faust.App, patience: float = RECOVERY_STALL_SECONDS) -> None:
        self.app = app
        self.watch = ProgressWatch(patience)
        self.healed = 0
        """How many times a stalled recovery was read again (for tests and logs)."""

    async def check(self, now: float) -> None:
        """Call every second or so, with a monotonic clock's reading."""
        tables: Any = self.app.tables  # its `recovery` is not in the declared type
        recovery = tables.recovery
        left = {tp: n for tp, n in recovery.active_remaining().items() if n > 0}
        if not recovery.in_recovery or not left:
            self.watch.stalled(now, None)
            return
        position = tuple(sorted((tp, recovery.active_offsets[tp]) for tp in left))
        if self.watch.stalled(now, position):
            await self._read_again(left, dict(recovery.active_offsets))

    async def _read_again(self, left: dict[TP, int], offsets: dict[TP, int]) -> None:
        self.healed += 1
        log.warning(
            "table recovery received nothing for %.0fs with %d changelog records left: "
            "reading %s again from where it stopped",
            self.watch.patience,
            sum(left.values()),
            ", ".join(f"{tp.topic}/{tp.partition}" for tp in sorted(left)),
        )
        consumer = self.app.consumer
        consumer.resume_partitions(list(left))
        for tp in sorted(left):
            offset = offsets.get(tp)
            await consumer.seek(tp, 0 if offset is None or offset < 0 else offset + 1)
        self.app.flow_control.resume()
        consumer.resume_flow()
