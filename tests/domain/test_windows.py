"""Cadences, sync times, file-name times and the idle catch-up limit (the watermark:
`tests/state/test_partition.py`)."""

import pytest

from stream.domain.windows import (
    NEVER,
    Schedule,
    catch_up_gap,
    format_span,
    format_sync_time,
    last_sync_at_or_before,
    next_sync_after,
    parse_cadence,
    parse_duration,
    sync_times,
)

HOUR = 3_600_000
DAY = 24 * HOUR
JAN5 = 1_767_571_200_000  # 2026-01-05T00:00:00Z


@pytest.mark.parametrize(
    "text, ms",
    [("hourly", HOUR), ("daily", DAY), ("15m", 900_000), ("2h", 2 * HOUR), ("1d", DAY)],
)
def test_cadences(text: str, ms: int) -> None:
    assert parse_cadence(text) == ms


@pytest.mark.parametrize("text", ["weekly", "0m", "90s", "15", "-1h", "1.5h", ""])
def test_bad_cadences_are_refused_with_examples_that_are_cadences(text: str) -> None:
    with pytest.raises(ValueError) as error:
        parse_cadence(text)
    assert "'30s'" not in str(error.value)  # not offered: a cadence is whole minutes
    for example in ("'15m'", "'2h'", "'1d'"):
        parse_cadence(example.strip("'"))
        assert example in str(error.value)


def test_durations() -> None:
    assert [parse_duration(t) for t in ("0s", "30s", "250ms", "5m")] == [0, 30_000, 250, 300_000]


def test_sync_times_are_aligned_to_the_epoch_in_utc() -> None:
    assert next_sync_after(JAN5 + 10 * 60_000, HOUR) == JAN5 + HOUR
    assert next_sync_after(JAN5 + 5 * HOUR, DAY) == JAN5 + DAY
    assert next_sync_after(JAN5 + HOUR, HOUR) == JAN5 + 2 * HOUR  # strictly after
    assert last_sync_at_or_before(JAN5 + HOUR - 1, HOUR) == JAN5
    assert list(sync_times(JAN5 + 1, JAN5 + 3 * 900_000, 900_000)) == [
        JAN5 + 900_000,
        JAN5 + 1_800_000,
        JAN5 + 2_700_000,
    ]
    assert list(sync_times(JAN5, JAN5 - 1, HOUR)) == []


def test_sync_time_in_file_names() -> None:
    assert format_sync_time(JAN5 + HOUR, "amplitude") == "2026-01-05T01:00"
    assert format_sync_time(JAN5 + 15 * 60_000, "no-colon") == "2026-01-05T00-15"


def test_an_idle_partition_may_follow_the_clock_only_within_the_catch_up_limit() -> None:
    day = 86_400_000
    assert catch_up_gap(10 * day, 11 * day, day) is None  # exactly the limit: follows
    assert catch_up_gap(10 * day, 11 * day + 1, day) == day + 1
    assert catch_up_gap(10 * day, 400 * day, None) is None  # "off"
    assert catch_up_gap(None, 400 * day, day) is None  # no event yet: nothing to flood


@pytest.mark.parametrize(
    "ms, text",
    [
        (0, "0s"),
        (40_000, "40s"),
        (180_000, "3m"),
        (5 * 3_600_000 + 12 * 60_000 + 59_000, "5h 12m"),
        (7_200_000, "2h"),
        (333 * 86_400_000 + 4 * 3_600_000 + 1, "333d 4h"),
        (86_400_000, "1d"),
    ],
)
def test_spans_are_shown_to_the_minute_in_two_units(ms: int, text: str) -> None:
    assert format_span(ms) == text


def test_a_one_time_schedule_has_its_single_time_and_nothing_after_it() -> None:
    once = Schedule.once(10 * HOUR)
    assert once.next_after(9 * HOUR) == 10 * HOUR and once.next_after(10 * HOUR) == NEVER
    assert list(once.times(0, 20 * HOUR)) == [10 * HOUR]
    assert list(once.times(0, 10 * HOUR - 1)) == [] and list(once.times(11 * HOUR, NEVER)) == []
    assert once.previous(10 * HOUR) is None and once.last_at_or_before(7) == 7
    hourly = Schedule.every(HOUR)
    assert hourly.next_after(10 * HOUR) == 11 * HOUR and hourly.previous(11 * HOUR) == 10 * HOUR
    assert (hourly.key, once.key) == ("3600000", f"once@{10 * HOUR}")
