"""The dead-letter record for one input record: its headers, and a value that fits.

Pure: the outbox sends what `dead_letter_record` returns. A record the broker accepted can
be larger than what the worker may produce (a broker whose `message.max.bytes` is above the
producer's `max_request_size`, or a record the reason and headers push over the limit). Such
a record is dead-lettered as the longest prefix of its value that fits, with the original's
size and SHA-256 in headers, so the operator can tell it apart from a short record and match
it against the original by its hash.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

__all__ = [
    "DeadLetter",
    "dead_letter_record",
    "REASON_HEADER",
    "SOURCE_HEADER",
    "ORIGINAL_SIZE_HEADER",
    "ORIGINAL_SHA256_HEADER",
    "REQUEUED_FROM_HEADER",
    "RECORD_OVERHEAD",
]

REASON_HEADER = "cohort-sync-reason"
SOURCE_HEADER = "cohort-sync-source"
ORIGINAL_SIZE_HEADER = "cohort-sync-original-size"
ORIGINAL_SHA256_HEADER = "cohort-sync-original-sha256"
#: On a record `cohort-sync dead-letters --requeue` sent back to the input topic: the
#: dead letter it came from, as `topic/partition/offset`.
REQUEUED_FROM_HEADER = "cohort-sync-requeued-from"

#: Bytes kept for a record's framing in its batch, beyond key, value and header bytes: a
#: record batch's header is 61 bytes, each record's and header's varints a few more.
RECORD_OVERHEAD = 256

#: A reason longer than this is cut (an exception's text can quote a whole value).
MAX_REASON_CHARS = 1000

#: A key longer than this is cut when the record does not fit whole.
MAX_KEY_BYTES = 1024


@dataclass(frozen=True, slots=True)
class DeadLetter:
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]
    truncated: bool

    @property
    def size(self) -> int:
        """Its size as `dead_letter_record` counts it against the limit."""
        return _size(self.key, self.value, self.headers)


def dead_letter_record(
    *, key: bytes | None, value: bytes | None, reason: str, source: str, limit: int
) -> DeadLetter:
    """The record to send for an input record at `source` (`topic/partition/offset`),
    whose serialized size stays within `limit` bytes."""
    body = value or b""
    if len(reason) > MAX_REASON_CHARS:
        reason = reason[: MAX_REASON_CHARS - 3] + "..."
    headers: tuple[tuple[str, bytes], ...] = (
        (REASON_HEADER, reason.encode("utf-8")),
        (SOURCE_HEADER, source.encode()),
    )
    if _size(key, body, headers) <= limit:
        return DeadLetter(key, body, headers, truncated=False)
    headers = (
        *headers,
        (ORIGINAL_SIZE_HEADER, str(len(body)).encode()),
        (ORIGINAL_SHA256_HEADER, hashlib.sha256(body).hexdigest().encode()),
    )
    if key is not None and len(key) > MAX_KEY_BYTES:
        key = key[:MAX_KEY_BYTES]
    room = max(0, limit - _size(key, b"", headers))
    return DeadLetter(key, body[:room], headers, truncated=True)


def _size(key: bytes | None, value: bytes, headers: tuple[tuple[str, bytes], ...]) -> int:
    fields = sum(len(name) + len(data) for name, data in headers)
    return RECORD_OVERHEAD + len(key or b"") + len(value) + fields
