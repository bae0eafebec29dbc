"""How a Faust process runs and stops: the runner every command uses, the stop deadline,
and the broker URL in Faust's form."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import threading
from collections.abc import Awaitable, Callable

import faust

from stream.config import Settings
from stream.errors import WorkerFault

__all__ = [
    "STOP_DEADLINE_SECONDS",
    "Stopper",
    "exit_after",
    "faust_url",
    "run_app",
    "until_other_tasks_end",
]

log = logging.getLogger(__name__)

#: A stop that has not ended this long after it began ends the process (exit code 1):
#: whatever was not committed is delivered again at the next start, as after a kill.
STOP_DEADLINE_SECONDS = 30.0


def exit_after(seconds: float, fault: Callable[[], str | None] = lambda: None) -> None:
    """End the process `seconds` from now unless it has ended by then (a daemon thread:
    it cannot hold the process up, and a stuck event loop cannot hold it back). When the
    worker was stopping itself, `fault()` gives why: it is still the last line printed, as
    when the stop ends in time (a stop hung inside Faust must not hide the reason)."""

    def expire() -> None:
        log.error("the stop did not end within %.0fs: exiting now", seconds)
        logging.shutdown()
        why = fault()
        if why is not None:
            print(WorkerFault.line(why), file=sys.stderr, flush=True)
        os._exit(1)

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()


def faust_url(settings: Settings) -> str:
    """`kafka.broker` as Faust wants it: each host with its scheme, `;` between them."""
    return settings.kafka.kafka_url()


class Stopper:
    """Stops a running app from inside, as SIGTERM does but without a signal: `run_app`
    connects it to the app's runner. Called before the app runs, the app stops as soon as it
    has started; called when no runner is connected (a unit test), it only records that."""

    def __init__(self) -> None:
        self.requested = False
        self._stop: Callable[[], None] | None = None

    def __call__(self) -> None:
        self.requested = True
        if self._stop is not None:
            self._stop()

    def connect(self, stop: Callable[[], None]) -> None:
        self._stop = stop


async def until_other_tasks_end(
    seconds: float, nap: Callable[[float], Awaitable[None]] = asyncio.sleep
) -> None:
    """Return once every other task of the running loop has ended, or after `seconds`."""
    loop = asyncio.get_running_loop()
    this = asyncio.current_task()
    deadline = loop.time() + seconds
    while loop.time() < deadline and any(
        task is not this and not task.done() for task in asyncio.all_tasks()
    ):
        await nap(0.01)


class _SignalledWorker(faust.Worker):
    """Faust's worker, remembering the signal that stopped it."""

    stopped_by: str | None = None

    def _schedule_shutdown(self, signal: signal.Signals) -> None:
        if self.stopped_by is None:
            self.stopped_by = signal.name
        super()._schedule_shutdown(signal)

    async def _sentinel_task(self) -> None:
        # mode's last wait before it closes the loop lets the tasks it has just cancelled
        # end. It sleeps a whole second for that, at every stop: wait for them instead.
        await until_other_tasks_end(1.0)

    def stop_soon(self) -> None:
        """Stop as a SIGTERM would (callable from any thread): `stopped_by` stays None."""
        self.loop.call_soon_threadsafe(super()._schedule_shutdown, signal.SIGTERM)


def run_app(
    app: faust.App, *, loglevel: str = "warn", stopper: Stopper | None = None
) -> str | None:
    """Run a bare Faust app until SIGTERM or SIGINT, or `stopper` is called. Returns the
    signal's name (None: the app stopped by itself or by `stopper`)."""
    # override_logging=False: our one log format (`configure_logging`) stays, not Faust's second
    worker = _SignalledWorker(app, loglevel=loglevel, quiet=True, override_logging=False)
    if stopper is not None:
        stopper.connect(worker.stop_soon)
        if stopper.requested:
            worker.stop_soon()
    # Faust's start-up spinner sets the root logger to DEBUG for the life of the process, so
    # every debug call in Faust and aiokafka builds a log record: about a tenth of the CPU.
    worker.spinner = None
    try:
        worker.execute_from_commandline()
    except SystemExit as exit_:
        if exit_.code not in (None, 0):
            raise
    return worker.stopped_by
