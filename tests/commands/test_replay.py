"""Replay's options: the moments it takes and the destinations it writes to."""

from __future__ import annotations

import pytest

from stream.commands.replay import ReplayOptions, _seconds, parse_moment, replay_settings
from stream.config import settings_from_mapping
from stream.errors import OptionError
from tests.scenario import JAN5, H

SETTINGS = settings_from_mapping(
    {
        "destinations": [
            {"name": "s3", "url": "s3://bucket/exports"},
            {"name": "local", "url": "file:///out"},
        ],
        "syncs": [
            {"cohort": "*", "destination": "s3", "cadence": "hourly"},
            {"cohort": "*", "destination": "local", "cadence": "daily"},
        ],
    }
)


def test_a_moment_is_iso_8601_with_an_offset_and_its_error_names_the_option() -> None:
    assert parse_moment("2026-01-05T01:00:00Z", "--since") == JAN5 + H
    assert parse_moment("2026-01-05T02:00:00+01:00", "--until") == JAN5 + H
    with pytest.raises(OptionError) as error:
        parse_moment("yesterday", "--since")
    assert error.value.option == "--since"


def test_a_prefix_goes_in_front_of_an_s3_path_and_under_a_folder() -> None:
    settings = replay_settings(SETTINGS, ReplayOptions(prefix="rebuilt"))
    assert settings.destinations["s3"].path == "rebuilt/exports"
    assert settings.destinations["local"].path == "/out/rebuilt"


def test_one_destination_keeps_only_its_syncs_and_unknown_ones_are_refused() -> None:
    settings = replay_settings(SETTINGS, ReplayOptions(destination="local"))
    assert list(settings.destinations) == ["local"]
    assert [rule.destination for rule in settings.syncs] == ["local"]
    with pytest.raises(OptionError, match="unknown destination 'nope'"):
        replay_settings(SETTINGS, ReplayOptions(destination="nope"))


@pytest.mark.parametrize("prefix", ["../up", "a/../b", "with space"])
def test_a_prefix_that_could_leave_the_destination_is_refused(prefix: str) -> None:
    with pytest.raises(OptionError) as error:
        replay_settings(SETTINGS, ReplayOptions(prefix=prefix))
    assert error.value.option == "--prefix"


def test_the_summary_gives_a_short_replay_s_seconds_to_the_hundredth() -> None:
    assert [_seconds(s) for s in (0.434, 9.994, 12.44)] == ["0.43s", "9.99s", "12.4s"]
