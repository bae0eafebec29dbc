"""The worker's destinations by name, across reloads: active and draining.

A reload (SIGHUP) may remove a destination while syncs for it are still queued. Those
syncs are still written to it (it is draining), but it is no longer the config's: `/health`
probes only the active destinations, so a removed one that fails does not hold the worker
unhealthy for good. A changed destination is opened anew under its name; syncs queued for
it go to the new one, as a restart would send them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from stream.config import Destination
from stream.sinks import Sink, open_sink

__all__ = ["SinkRegistry"]


class SinkRegistry(Mapping[str, Sink]):
    """Every sink a queued sync may be written to, by destination name (the writer's
    view); `active` is the running config's (what `/health` probes)."""

    def __init__(
        self,
        destinations: Mapping[str, Destination],
        opener: Callable[[Destination], Sink] = open_sink,
    ) -> None:
        self._open = opener
        self._config = dict(destinations)
        self._active = {name: opener(dest) for name, dest in destinations.items()}
        self._draining: dict[str, Sink] = {}

    @property
    def active(self) -> Mapping[str, Sink]:
        return dict(self._active)

    @property
    def draining(self) -> Mapping[str, Sink]:
        """Destinations a reload removed, kept for the syncs still queued to them."""
        return dict(self._draining)

    def reconfigure(self, destinations: Mapping[str, Destination]) -> None:
        """Take a reloaded config's destinations: new and changed ones are opened, removed
        ones drain."""
        for name in self._config.keys() - destinations.keys():
            self._draining[name] = self._active.pop(name)
        for name, destination in destinations.items():
            if self._config.get(name) != destination or name not in self._active:
                self._active[name] = self._open(destination)
            self._draining.pop(name, None)
        self._config = dict(destinations)

    def __getitem__(self, name: str) -> Sink:
        found = self._active.get(name)
        return found if found is not None else self._draining[name]

    def __iter__(self) -> Iterator[str]:
        yield from self._active
        yield from (name for name in self._draining if name not in self._active)

    def __len__(self) -> int:
        return len(self._active.keys() | self._draining.keys())
