"""Counts in messages read right: one record, two records."""

from stream.domain.wording import count


def test_a_count_is_singular_only_for_one() -> None:
    assert [count(n, "record") for n in (0, 1, 2, 12_000)] == [
        "0 records",
        "1 record",
        "2 records",
        "12,000 records",
    ]
