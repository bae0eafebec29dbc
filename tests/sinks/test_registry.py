"""The destinations' registry across reloads: new and changed ones opened, removed ones
drain (still found by name for queued syncs, no longer active)."""

from __future__ import annotations

from typing import Any

import pytest

from stream.config import Destination, settings_from_mapping
from stream.sinks.registry import SinkRegistry


def destinations(**urls: str) -> dict[str, Destination]:
    settings = settings_from_mapping(
        {
            "destinations": [{"name": name, "url": url} for name, url in urls.items()],
            "syncs": [{"cohort": "*", "destination": next(iter(urls)), "cadence": "hourly"}],
        }
    )
    return dict(settings.destinations)


class Opened:
    """Stands in for `open_sink`: records what was opened, gives a fresh object each time."""

    def __init__(self) -> None:
        self.opened: list[str] = []

    def __call__(self, destination: Destination) -> Any:
        self.opened.append(destination.url)
        return object()


def test_a_reload_opens_new_and_changed_destinations_and_keeps_the_same_ones() -> None:
    opener = Opened()
    registry = SinkRegistry(destinations(a="file:///a", b="file:///b"), opener)
    same = registry["a"]
    registry.reconfigure(destinations(a="file:///a", b="file:///b2", c="file:///c"))
    assert registry["a"] is same
    assert opener.opened == ["file:///a", "file:///b", "file:///b2", "file:///c"]
    assert set(registry.active) == {"a", "b", "c"} and registry.draining == {}


def test_a_removed_destination_drains_and_is_no_longer_active() -> None:
    registry = SinkRegistry(destinations(a="file:///a", b="file:///b"), Opened())
    removed = registry["b"]
    registry.reconfigure(destinations(a="file:///a"))
    assert set(registry.active) == {"a"}
    assert registry["b"] is removed  # a sync queued for it is still written there
    assert set(registry) == {"a", "b"} and len(registry) == 2
    registry.reconfigure(destinations(a="file:///a", b="file:///b"))  # back again
    assert set(registry.active) == {"a", "b"} and registry.draining == {}
    with pytest.raises(KeyError):
        registry["never"]
