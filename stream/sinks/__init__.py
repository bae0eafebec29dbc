"""Where sync files go. A `Sink` writes whole objects by key, each read from a `Body`.

Contract (every sink keeps it):
- `put(key, body)` blocks until the object is durably stored; call it from a worker thread,
  never on the event loop. Up to `PUTS_AT_ONCE` puts may run at once, from as many threads.
- Atomic per object: a reader sees no object or a whole one, never a part.
- Write-once: an existing object is never replaced (S3 `If-None-Match: *`, a hard link on
  a file system), unless the sink was opened with `overwrite=True` (a replay's
  `--overwrite`). cohort-sync's keys and bytes are a pure function of the input, so a
  retry, a restart or a replay finds the same bytes there (`Put.UNCHANGED`): delivery is
  at-least-once, files are exactly-once. The same rule fences a stale worker that lost
  its partitions: it cannot replace what the new owner wrote (`Put.KEPT`).
- Errors are `TransientSinkError` (worth retrying) or `PermanentSinkError` (needs a fix).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from stream.config import Destination
from stream.sinks.body import Body

__all__ = ["Body", "Inspection", "PUTS_AT_ONCE", "Put", "Sink", "import_sinks", "open_sink"]

#: How many puts a sink may be asked to run at once: the writer's threads
#: (`output/writer.py`), shared by the syncs a lane writes at once (`output/lanes.py`).
PUTS_AT_ONCE = 12


class Put(enum.Enum):
    """What `Sink.put` did."""

    WRITTEN = "written"
    UNCHANGED = "unchanged"
    """The key already held exactly these bytes."""
    KEPT = "kept"
    """The key held other bytes, and they were kept: objects are never replaced."""


@dataclass(frozen=True)
class Inspection:
    """What `Sink.inspect` found: facts to show, and problems that would stop writes."""

    facts: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


class Sink(Protocol):
    def put(self, key: str, body: Body) -> Put:
        """Store `body` under `key` (a relative path below the destination) unless the key
        exists already, holding no more of it in memory than a bounded part (see each
        sink)."""
        ...

    def location(self, key: str) -> str:
        """A human-readable URL of `key`, for logs and summaries."""
        ...

    def probe(self) -> None:
        """Raise a `SinkError` if the destination cannot take writes now (for /health)."""
        ...

    def inspect(self) -> Inspection:
        """Reach the destination without writing anything (for `cohort-sync check`): who
        it writes as, whether its bucket and path or its folder can be reached."""
        ...


def import_sinks(destinations: Iterable[Destination]) -> None:
    """Import what `open_sink` needs for `destinations` now (boto3 for S3, about 0.15 s):
    before a fork, once for every process."""
    if any(destination.scheme == "s3" for destination in destinations):
        import stream.sinks.s3  # noqa: F401


def open_sink(destination: Destination, *, overwrite: bool = False) -> Sink:
    """The sink for a configured destination (boto3 is imported only for S3)."""
    if destination.scheme == "s3":
        from stream.sinks.s3 import S3Sink

        return S3Sink(
            bucket=destination.bucket,
            region=destination.region,
            endpoint_url=destination.endpoint_url,
            path=destination.path,
            put_arguments=destination.placement.put_arguments(),
            role=destination.role,
            multipart_threshold=destination.multipart_threshold,
            overwrite=overwrite,
        )
    from stream.sinks.local import LocalSink

    return LocalSink(destination.path, overwrite=overwrite)
