"""What a reload leaves for the next start (the SIGHUP path itself runs in
tests/integration/test_reload.py)."""

from __future__ import annotations

from stream.config import settings_from_mapping
from stream.faust.reload import restart_only_changes


def test_only_destinations_and_syncs_change_without_a_restart() -> None:
    running = settings_from_mapping({"kafka": {"topic": "a"}})
    assert restart_only_changes(running, running) == []
    new = settings_from_mapping(
        {"project_id": 3, "kafka": {"topic": "b", "idle_catch_up": "off"}, "faust": {"x": 1}}
    )
    assert restart_only_changes(running, new) == [
        "project_id",
        "faust",
        "kafka.topic",
        "kafka.idle_catch_up",
    ]
