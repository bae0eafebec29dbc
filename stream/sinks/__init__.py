"""Where sync files go. A `Sink` writes whole objects by key.

Contract (every sink keeps it):
- `put(key, data)` blocks until the object is durably stored; call it from a worker thread,
  never on the event loop.
- Atomic per object: a reader sees the previous bytes or the new bytes, never a part.
- Idempotent: putting the same bytes under the same key again is harmless. cohort-sync's
  keys and bytes are a pure function of the input, so a retry or a replay is exactly-once
  in effect, while delivery itself is at-least-once.
- Errors are `TransientSinkError` (worth retrying) or `PermanentSinkError` (needs a fix).
"""

from __future__ import annotations

from typing import Protocol

from ..config import Destination

__all__ = ["Sink", "open_sink"]


class Sink(Protocol):
    def put(self, key: str, data: bytes) -> None:
        """Store `data` under `key` (a relative path below the destination)."""
        ...

    def location(self, key: str) -> str:
        """A human-readable URL of `key`, for logs and summaries."""
        ...

    def probe(self) -> None:
        """Raise a `SinkError` if the destination cannot take writes now (for /health)."""
        ...


def open_sink(destination: Destination) -> Sink:
    """The sink for a configured destination (boto3 is imported only for S3)."""
    if destination.scheme == "s3":
        from .s3 import S3Sink

        return S3Sink(
            bucket=destination.bucket,
            region=destination.region,
            endpoint_url=destination.endpoint_url,
        )
    from .local import LocalSink

    return LocalSink(destination.path)
