"""Cadences, sync times, file-name times and the watermark."""

import pytest

from stream.domain.windows import (
    advance_watermark,
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


def test_watermark_is_newest_time_minus_lateness_and_never_goes_back() -> None:
    assert advance_watermark(None, JAN5, 60_000) == JAN5 - 60_000
    assert advance_watermark(JAN5, JAN5 - HOUR, 0) == JAN5
    assert advance_watermark(JAN5, JAN5 + 5, 0) == JAN5 + 5
