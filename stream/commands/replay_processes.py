"""A replay's shares in processes of their own, so that every core works.

The processes are forked once the parent has learnt the partitions and before it opens
any connection or thread, so each starts with the stack already imported. Each runs
`replay_share` on its partitions and reports to the parent over one queue: `started`,
`progress`, then `done` with its `ShareReport`, or `failed` with the one line to print.
Records forwarded to a partition of another share go to that share's inbox, in batches; a
share that has read all its partitions sends every other share an end mark, and finishes
once it has the end marks of all the others (queues keep each sender's order, so nothing
forwarded comes after its sender's end mark).

A SIGTERM to the parent stops the shares too: the parent notes it, looks between its short
waits, terminates the shares and raises `Terminated`. Without it the shares would read and
write on after the parent had ended.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import queue
import signal
import sys
import traceback
from collections.abc import Callable
from multiprocessing.context import ForkProcess
from multiprocessing.queues import Queue
from typing import Any, Protocol

from stream.commands.replay_share import Forwarded, ShareReport, replay_share
from stream.commands.terminate import Noted, sigterm_noted
from stream.config import Settings
from stream.errors import CohortSyncError, describe
from stream.state.partition import SyncJob

__all__ = ["replay_in_processes"]

#: Seconds between looks at whether a share's process died without a word, or a SIGTERM came.
_LOOK_EVERY_S = 0.5

#: Seconds a share has to end after its SIGTERM before it is killed.
_END_WITHIN_S = 5.0


class Tally(Protocol):
    def started(self, share: int, total: int) -> None: ...

    def update(
        self, share: int, *, done: int, event_time_ms: int | None, files: int, force: bool = False
    ) -> None: ...


def replay_in_processes(
    settings: Settings,
    shares: list[list[int]],
    tally: Tally,
    *,
    overwrite: bool,
    wanted: Callable[[SyncJob], bool],
) -> ShareReport:
    """Run each share of partitions in a forked process; their reports summed. A share
    that fails stops the others, and its line is raised as a `CohortSyncError`; a SIGTERM
    stops them all, and is raised as `Terminated`."""
    context = multiprocessing.get_context("fork")
    reports: Queue[tuple[Any, ...]] = context.Queue()
    inboxes: list[Queue[Any]] = [context.Queue() for _ in shares]
    owner = {partition: index for index, share in enumerate(shares) for partition in share}
    processes = [
        context.Process(
            target=_share_main,
            args=(settings, shares, index, owner, reports, inboxes, overwrite, wanted),
            name=f"cohort-sync replay {index + 1}/{len(shares)}",
            daemon=True,
        )
        for index in range(len(shares))
    ]
    with sigterm_noted() as sigterm:
        try:
            for process in processes:
                process.start()
            return _gather(processes, reports, tally, sigterm)
        finally:
            _stop(processes)


def _gather(
    processes: list[ForkProcess], reports: Queue[tuple[Any, ...]], tally: Tally, sigterm: Noted
) -> ShareReport:
    done: dict[int, ShareReport] = {}
    while len(done) < len(processes):
        sigterm.check()
        try:
            message = reports.get(timeout=_LOOK_EVERY_S)
        except queue.Empty:
            for index, process in enumerate(processes):
                if index not in done and process.exitcode is not None:
                    raise CohortSyncError(
                        f"replay process {index + 1} stopped without a word "
                        f"(exit code {process.exitcode})"
                    ) from None
            continue
        kind, index, *rest = message
        if kind == "started":
            tally.started(index, rest[0])
        elif kind == "progress":
            done_records, event_time_ms, files = rest
            tally.update(index, done=done_records, event_time_ms=event_time_ms, files=files)
        elif kind == "done":
            done[index] = rest[0]
        else:  # failed
            raise CohortSyncError(rest[0])
    return sum(done.values(), ShareReport(0, 0, 0, 0, 0, 0, 0))


def _stop(processes: list[ForkProcess]) -> None:
    """End the shares still running (only ours, by their own handles): SIGTERM, then SIGKILL
    for one that has not ended within `_END_WITHIN_S`."""
    started = [process for process in processes if process.pid is not None]
    for process in started:
        if process.is_alive():
            process.terminate()
    for process in started:
        process.join(_END_WITHIN_S)
        if process.exitcode is None:
            process.kill()
            process.join()


def _share_main(
    settings: Settings,
    shares: list[list[int]],
    index: int,
    owner: dict[int, int],
    reports: Queue[tuple[Any, ...]],
    inboxes: list[Queue[Any]],
    overwrite: bool,
    wanted: Callable[[SyncJob], bool],
) -> None:
    # The parent ends its shares with SIGTERM (`Process.terminate`): at once, whatever the
    # parent's handler, which the fork copied
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    link = _QueueLink(index, owner, reports, inboxes)
    try:
        report = asyncio.run(
            replay_share(settings, shares[index], link, overwrite=overwrite, wanted=wanted)
        )
    except CohortSyncError as exc:
        reports.put(("failed", index, str(exc)))
        sys.exit(2)
    except KeyboardInterrupt:  # Ctrl-C reached the whole process group: the parent says so
        sys.exit(130)
    except BaseException as exc:  # a bug: its traceback, and one line for the parent
        traceback.print_exc()
        reports.put(("failed", index, f"replay process {index + 1} failed: {describe(exc)}"))
        sys.exit(1)
    reports.put(("done", index, report))


class _QueueLink:
    """A share's link to the parent (progress, report) and to the other shares (records
    forwarded to their partitions), over multiprocessing queues."""

    def __init__(
        self,
        index: int,
        owner: dict[int, int],
        reports: Queue[tuple[Any, ...]],
        inboxes: list[Queue[Any]],
    ) -> None:
        self.index = index
        self.owner = owner
        self.reports = reports
        self.inboxes = inboxes
        self.outgoing: dict[int, list[Forwarded]] = {}
        self.ended: set[int] = set()

    def started(self, total: int) -> None:
        self.reports.put(("started", self.index, total))

    def progress(self, *, done: int, event_time_ms: int | None, files: int) -> None:
        self._send()
        self.reports.put(("progress", self.index, done, event_time_ms, files))

    def forward(self, item: Forwarded) -> None:
        self.outgoing.setdefault(self.owner[item[2]], []).append(item)

    def arrived(self) -> list[Forwarded]:
        found: list[Forwarded] = []
        while True:
            try:
                message = self.inboxes[self.index].get_nowait()
            except queue.Empty:
                return found
            self._take(message, found)

    async def rest(self) -> list[Forwarded]:
        self._send()
        for other, inbox in enumerate(self.inboxes):
            if other != self.index:
                inbox.put(("end", self.index))
        found = self.arrived()
        loop = asyncio.get_running_loop()
        while len(self.ended) < len(self.inboxes) - 1:
            self._take(await loop.run_in_executor(None, self.inboxes[self.index].get), found)
        return found

    def _send(self) -> None:
        for other, items in self.outgoing.items():
            self.inboxes[other].put(("records", items))
        self.outgoing = {}

    def _take(self, message: tuple[Any, ...], found: list[Forwarded]) -> None:
        kind, payload = message
        if kind == "end":
            self.ended.add(payload)
        else:
            found.extend(payload)
