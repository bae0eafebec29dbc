"""SIGHUP re-reads the config file: destinations and syncs added, removed or changed take
effect without a restart. The file is read in a thread; a config that does not load is
refused with one log line naming the key, and the running one stays. Keys a running worker
cannot change (its topics, clocks, `[faust]`, `project_id`) are named in a warning and
wait for the next start.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable

from stream.config import Settings, load_settings
from stream.errors import CohortSyncError

__all__ = ["ConfigReload", "restart_only_changes"]

log = logging.getLogger(__name__)


class ConfigReload:
    """Reads `path` again at each SIGHUP and hands a config that loads to `accept`."""

    def __init__(
        self,
        path: str,
        running: Callable[[], Settings],
        accept: Callable[[Settings], Awaitable[None]],
    ) -> None:
        self.path = path
        self.running = running
        self.accept = accept

    async def listen(self) -> None:
        """Handle SIGHUP from now on (a Faust task: it runs once the app has started)."""
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(self.reload()))

    async def reload(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            new = await loop.run_in_executor(None, _load, self.path)
        except CohortSyncError as exc:
            problems = "; ".join(str(exc).splitlines())  # one log line, every problem
            log.error("SIGHUP: %s not reloaded, the running config stays: %s", self.path, problems)
            return
        for key in restart_only_changes(self.running(), new):
            log.warning("SIGHUP: %s changed: it takes effect at the next start", key)
        await self.accept(new)


def _load(path: str) -> Settings:
    return load_settings(path, syncs_required=True)


#: What a reload does not change in a running worker (the rest of `Settings`).
_RESTART_ONLY = ("project_id", "faust")
_KAFKA_RESTART_ONLY = (
    "topic",
    "app_id",
    "allowed_lateness_ms",
    "idle_timeout_ms",
    "idle_catch_up_ms",
    "retain_exited_ms",
)


def restart_only_changes(running: Settings, new: Settings) -> list[str]:
    """The keys whose new values a reload leaves for the next start."""
    changed = [key for key in _RESTART_ONLY if getattr(running, key) != getattr(new, key)]
    return changed + [
        f"kafka.{key.removesuffix('_ms')}"
        for key in _KAFKA_RESTART_ONLY
        if getattr(running.kafka, key) != getattr(new.kafka, key)
    ]
