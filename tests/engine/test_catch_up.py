"""`kafka.idle_catch_up`: an idle partition too far behind is held back, warned about once."""

from __future__ import annotations

import logging

import pytest

from stream.config import settings_from_mapping
from stream.engine.catch_up import CatchUpGuard
from tests.scenario import JAN5, MIN, H

DAY = 24 * H


def test_a_partition_far_behind_is_held_back_and_warned_about_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    guard = CatchUpGuard(settings_from_mapping({}).kafka)
    now = JAN5 + 300 * DAY
    caplog.set_level(logging.WARNING)
    assert guard.holds_back(2, JAN5 + 4 * H, now) and guard.holds_back(2, JAN5 + 4 * H, now + MIN)
    assert len(caplog.records) == 1
    assert guard.warnings(now) == [
        "partition 2 is idle at 2026-01-05T04:00Z, 299d 20h behind the wall clock: more than "
        "kafka.idle_catch_up (1d), so it does not follow the wall clock and writes no sync past "
        'that time until newer events arrive (raise kafka.idle_catch_up, or set it to "off", '
        "to write them up to now)"
    ]
    assert not guard.holds_back(2, now - H, now)  # newer events came: it follows again
    assert guard.warnings(now) == []


def test_a_live_feed_that_goes_quiet_follows_and_off_means_always() -> None:
    guard = CatchUpGuard(settings_from_mapping({}).kafka)
    assert not guard.holds_back(0, JAN5, JAN5 + DAY)  # a day behind: the limit itself
    unlimited = CatchUpGuard(settings_from_mapping({"kafka": {"idle_catch_up": "off"}}).kafka)
    assert not unlimited.holds_back(0, JAN5, JAN5 + 300 * DAY)
    guard.holds_back(1, JAN5, JAN5 + 3 * DAY)
    guard.revoke(1)
    assert guard.warnings(JAN5 + 3 * DAY) == []
