"""What the processor asks of the world: send dead letters and forwards, write syncs.

The worker's `faust/outbox.py` sends to Faust topics and the destination lanes; a replay
and the tests have their own. Each call returns once its outcome is as durable as the
implementation promises (the worker: the broker has the record, the sync is built and
queued), so the processor may count the record as handled.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from stream.output.sync import SyncOutput

__all__ = ["Outbox"]


class Outbox(Protocol):
    """Where the processor sends records and files; Faust topics and `SyncWriter` in the app."""

    async def dead_letter(
        self,
        *,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        reason: str,
    ) -> None: ...

    async def forward(self, *, key: bytes, value: bytes, partition: int) -> None: ...

    async def write(self, build: Callable[[], SyncOutput], written: Callable[[], None]) -> None:
        """Build the sync now (the state may change after this call returns), write it, then
        call `written` on the event loop. The worker returns once the sync is built and
        queued for its destination, a replay once it is written."""
        ...
