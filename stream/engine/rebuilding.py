"""A partition's state read back from the store, off the event loop.

A rebuild reads a copy of the partition's keys (`partition_items`), so the store may change
meanwhile; the processor installs the result only if the store still holds what it was read
from (`Rebuild.items_are`), and reads again otherwise.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Protocol, TypeVar

from stream.engine.slot import Rebuild
from stream.state.stored import load_partition, partition_items

__all__ = ["Offload", "Rebuilder"]

T = TypeVar("T")


class Offload(Protocol):
    """Runs `work` off the event loop and gives its result."""

    def __call__(self, work: Callable[[], T], /) -> Awaitable[T]: ...


async def _in_thread(work: Callable[[], T]) -> T:
    return await asyncio.get_running_loop().run_in_executor(None, work)


def _observed(future: asyncio.Future[Any]) -> None:
    """Retrieve a finished future's outcome, so that one nobody awaits logs no error."""
    if not future.cancelled():
        future.exception()


class Rebuilder:
    """Reads partitions back from `store`: with their journal (`journal=False`: members in
    memory only), queuing exits when members are forgotten (`track_exits`)."""

    def __init__(
        self,
        store: MutableMapping[str, Any],
        *,
        journal: bool,
        track_exits: bool,
        offload: Offload | None = None,
    ) -> None:
        """`offload(fn)` runs `fn` off the event loop (default: the loop's thread pool)."""
        self.store = store
        self.journal = journal
        self.track_exits = track_exits
        self.offload = offload or _in_thread

    def start(self, partition: int) -> asyncio.Future[Rebuild]:
        """Rebuild `partition` off the event loop, from a copy of its keys taken now."""
        items = partition_items(self.store, partition)
        rebuild = asyncio.ensure_future(
            self.offload(functools.partial(self.read, partition, items))
        )
        rebuild.add_done_callback(_observed)  # a revoked partition's rebuild is never awaited
        return rebuild

    def read(self, partition: int, items: dict[str, Any]) -> Rebuild:
        """The partition rebuilt from `items`; reads nothing else and writes nothing."""
        loaded = load_partition(
            self.store,
            partition,
            items=items,
            journal=self.journal,
            track_exits=self.track_exits,
        )
        return Rebuild(items, loaded)
