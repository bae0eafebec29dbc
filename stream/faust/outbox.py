"""The processor's outbox on Faust topics: dead letters, forwards and syncs.

Part of the Faust edge (with `worker.py` and `fixes.py`). What each send guarantees
before the processor returns, and so before the record is acknowledged:

- `dead_letter`: the broker has the dead letter. A record too large to send whole is sent
  as a prefix that fits (`deadletter.dead_letter_record`); a send that fails otherwise is
  retried with backoff for `patience` seconds, then the worker stops (`WorkerFault`) and the
  record is delivered again at the next start.
- `forward`: the record is in the producer. A commit flushes the producer first; a forward
  the broker then refuses is reported to `on_fault`, which stops the worker. A record too
  large to forward raises `RecordTooLarge` (the processor dead-letters it).
- `write`: the sync is built and queued on its destination's lane (`output/lanes.py`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka.errors import (
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
)

from stream.domain.deadletter import dead_letter_record
from stream.errors import RecordTooLarge, WorkerFault, WriteAbandoned, describe
from stream.faust.security import is_denial
from stream.output.lanes import DestinationLanes
from stream.output.sync import SyncOutput

__all__ = ["FaustOutbox", "DEAD_LETTER_PATIENCE_S"]

log = logging.getLogger(__name__)

#: How long a dead letter that cannot be sent is retried before the worker stops.
DEAD_LETTER_PATIENCE_S = 30.0

#: The smallest size limit a dead letter is cut down to when the broker keeps refusing it.
MIN_DEAD_LETTER_BYTES = 4096

_TOO_LARGE = (
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
)


class FaustOutbox:
    def __init__(
        self,
        dlq: Any,
        repartition: Any,
        lanes: DestinationLanes,
        *,
        max_request_size: int,
        on_fault: Callable[[str], None],
        on_refused: Callable[[str, str, BaseException], None] | None = None,
        patience: float = DEAD_LETTER_PATIENCE_S,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._dlq = dlq
        self._repartition = repartition
        self._lanes = lanes
        self._limit = max_request_size
        self._on_fault = on_fault
        self._on_refused = on_refused
        self._patience = patience
        self._sleep = sleep

    async def dead_letter(
        self,
        *,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        reason: str,
    ) -> None:
        source = f"{topic}/{partition}/{offset}"
        limit, delay, waited = self._limit, 0.1, 0.0
        while True:
            record = dead_letter_record(
                key=key, value=value, reason=reason, source=source, limit=limit
            )
            try:
                sent = await self._dlq.send(
                    key=record.key, value=record.value, headers=list(record.headers)
                )
                await sent
            except Exception as exc:
                if _too_large(exc) and limit > MIN_DEAD_LETTER_BYTES:
                    limit = max(MIN_DEAD_LETTER_BYTES, min(limit, record.size) // 2)
                    continue
                if is_denial(exc) and self._on_refused is not None:
                    self._on_refused("Write", self._dlq.get_topic_name(), exc)  # no retry helps
                    raise WriteAbandoned("stopping: not authorized") from None
                if waited >= self._patience:
                    raise WorkerFault(
                        f"the dead letter of {source} could not be sent for "
                        f"{waited:.0f}s: {_describe(exc)}"
                    ) from exc
                log.warning("dead letter of %s not sent (%s): retrying", source, _describe(exc))
                await self._sleep(delay)
                waited += delay
                delay = min(delay * 2, 5.0)
                continue
            if record.truncated:
                log.warning(
                    "dead letter of %s: %d bytes sent of %d (too large to send whole)",
                    source,
                    len(record.value),
                    len(value or b""),
                )
            return

    async def forward(self, *, key: bytes, value: bytes, partition: int) -> None:
        try:
            sent = await self._repartition.send(key=key, value=value, partition=partition)
        except Exception as exc:
            if _too_large(exc):
                reason = f"too large to forward to its cohort's partition: {_describe(exc)}"
                raise RecordTooLarge(reason) from None
            raise
        sent.add_done_callback(self._forwarded)

    def _forwarded(self, sent: asyncio.Future[Any]) -> None:
        if not sent.cancelled() and sent.exception() is not None:
            self._on_fault(f"a forwarded record was refused: {_describe(sent.exception())}")

    async def write(self, build: Callable[[], SyncOutput], written: Callable[[], None]) -> None:
        await self._lanes.submit(build, written)


def _too_large(exc: BaseException) -> bool:
    """Whether the send failed for the record's size (raised by the client before sending,
    wrapped by Faust, or answered by the broker)."""
    return isinstance(exc, _TOO_LARGE) or isinstance(exc.__cause__, _TOO_LARGE)


def _describe(exc: BaseException | None) -> str:
    """What the broker or Faust said: the cause of an exception Faust wrapped."""
    cause = exc.__cause__ if exc is not None and exc.__cause__ is not None else exc
    return describe(cause) if cause is not None else "no error"
