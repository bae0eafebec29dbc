"""`cohort-sync dead-letters`: which dead letters are selected, which a requeue sends, and
how they are shown."""

from __future__ import annotations

import json

from stream.domain.deadletter import dead_letter_record
from stream.kafka.scan import LoggedRecord
from stream.ops.deadletters import Selection, plan_requeue, render_json, render_text, select

DLQ = "events-dlq"


def letter(
    offset: int, at_ms: int, reason: str, value: bytes = b'{"cohort_id":"c1"}', limit: int = 10**6
) -> LoggedRecord:
    """A dead letter as the worker writes it (its source: the input record at `offset`)."""
    made = dead_letter_record(
        key=b"c1", value=value, reason=reason, source=f"events/0/{offset}", limit=limit
    )
    return LoggedRecord(DLQ, 0, offset, at_ms, made.key, made.value, made.headers)


def copy(offset: int, at_ms: int, of: LoggedRecord) -> LoggedRecord:
    """The record a requeue sent to the input topic for `of`."""
    headers = (("cohort-sync-requeued-from", of.position.encode()),)
    return LoggedRecord("events", 0, offset, at_ms, of.key, of.value, headers)


LETTERS = [
    letter(3, 3_000, "too late: before the watermark"),
    letter(1, 1_000, "message must be a JSON object, got list"),
    letter(2, 2_000, "too far ahead: event time ..."),
]


def test_the_selection_is_oldest_first_and_filters_by_time_reason_and_count() -> None:
    assert [r.offset for r in select(LETTERS, Selection())] == [1, 2, 3]
    assert [r.offset for r in select(LETTERS, Selection(since_ms=2_000))] == [2, 3]
    assert [r.offset for r in select(LETTERS, Selection(until_ms=2_000))] == [1]
    assert [r.offset for r in select(LETTERS, Selection(reason="TOO"))] == [2, 3]
    assert [r.offset for r in select(LETTERS, Selection(reason="too", limit=1))] == [2]


def test_a_requeue_sends_what_no_input_record_names_and_never_a_copy_s_dead_letter() -> None:
    first, second, third = select(LETTERS, Selection())
    sent_copy = copy(10, 5_000, first)  # first was requeued before
    failed_again = letter(10, 6_000, "message must be a JSON object, got list")
    plan = plan_requeue([first, second, third, failed_again], [sent_copy])
    assert plan.send == [second, third]
    assert plan.already == [first, failed_again]


def test_the_dead_letter_of_a_copy_forwarded_to_another_partition_is_not_sent_again() -> None:
    (original,) = [r for r in LETTERS if r.offset == 3]
    sent_copy = copy(10, 5_000, original)
    forwarded = dead_letter_record(
        key=original.key,
        value=original.value,
        reason="too late",
        source="app-by-cohort/2/0",
        limit=10**6,
    )
    failed_there = LoggedRecord(DLQ, 1, 0, 5_100, forwarded.key, forwarded.value, forwarded.headers)
    earlier_twin = LoggedRecord(DLQ, 1, 1, 4_000, forwarded.key, forwarded.value, forwarded.headers)
    plan = plan_requeue([failed_there, earlier_twin], [sent_copy])
    assert plan.already == [failed_there]
    assert plan.send == [earlier_twin]  # dead-lettered before any copy was sent


def test_a_dead_letter_cut_to_a_prefix_is_not_requeued() -> None:
    cut = letter(4, 4_000, "too large", value=b"x" * 5_000, limit=2_000)
    assert len(cut.value or b"") < 5_000
    plan = plan_requeue([cut], [])
    assert plan.truncated == [cut] and not plan.send


def test_a_line_shows_time_source_reason_and_the_start_of_the_value() -> None:
    long_value = b'{"cohort_id":"c1",\n' + b"x" * 200
    shown = render_text([letter(7, 1_733_400_000_123, "too late", value=long_value)])
    assert shown == (
        '2024-12-05T12:00:00.123Z  events/0/7  too late  | {"cohort_id":"c1",\\n' + "x" * 61 + "..."
    )
    (row,) = json.loads(render_json([letter(7, 1_000, "too late")]))
    assert row == {
        "time": "1970-01-01T00:00:01.000Z",
        "timestamp_ms": 1_000,
        "dead_letter": "events-dlq/0/7",
        "source": "events/0/7",
        "reason": "too late",
        "key": "c1",
        "value": '{"cohort_id":"c1"}',
        "value_bytes": 18,
        "truncated": False,
    }
