"""How a Faust process runs and stops: the runner every command uses, the stop deadline,
and the benchmark's framework floor (plain Faust with the worker's settings). Part of the
Faust edge, with `app.py`, `faust_fixes.py`, `faust_outbox.py` and `faust_recovery.py`.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Mapping
from typing import Any

import faust

from .config import Settings

__all__ = ["STOP_DEADLINE_SECONDS", "exit_after", "create_floor_app", "run_app"]

log = logging.getLogger(__name__)

#: A stop that has not ended this long after it began ends the process (exit code 1):
#: whatever was not committed is delivered again at the next start, as after a kill.
STOP_DEADLINE_SECONDS = 30.0


def exit_after(seconds: float) -> None:
    """End the process `seconds` from now unless it has ended by then (a daemon thread:
    it cannot hold the process up, and a stuck event loop cannot hold it back)."""

    def expire() -> None:
        log.error("the stop did not end within %.0fs: exiting now", seconds)
        logging.shutdown()
        os._exit(1)

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()


def create_floor_app(
    settings: Settings, *, broker_url: str, faust_defaults: Mapping[str, Any] | None = None
) -> faust.App:
    """The benchmark's framework floor: the same Faust settings and topic, an agent that only
    decodes each record as JSON and drops it (no state, no table, no syncs)."""
    app = faust.App(
        settings.kafka.app_id,
        broker=broker_url,
        store="memory://",
        topic_partitions=settings.kafka.partitions,
        web_enabled=False,
        **{**(faust_defaults or {}), **settings.faust},
    )
    topic = app.topic(
        settings.kafka.topic,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )

    @app.agent(topic, name="cohort-sync-floor")
    async def decode_only(stream: Any) -> None:
        async for value in stream:
            json.loads(value)

    return app


def run_app(app: faust.App, *, loglevel: str = "warn") -> None:
    """Run a bare Faust app until SIGTERM or SIGINT."""
    worker = faust.Worker(app, loglevel=loglevel, quiet=True)
    # Faust's start-up spinner sets the root logger to DEBUG for the life of the process, so
    # every debug call in Faust and aiokafka builds a log record: about a tenth of the CPU.
    worker.spinner = None
    try:
        worker.execute_from_commandline()
    except SystemExit as exit_:
        if exit_.code not in (None, 0):
            raise
