"""`cohort-sync produce`: what is sent, what is refused and how that is said."""

from __future__ import annotations

from stream.commands.produce import LineCheck

GOOD = b'{"cohort_id": "c1", "amplitude_id": 1, "action": "enter", "time": 0}'


def test_lines_that_could_only_be_dead_lettered_are_refused_with_their_first_line() -> None:
    check = LineCheck([GOOD, b"", b"not json", b'{"amplitude_id": 1}', b"[1]", b"nope", GOOD])
    assert list(check) == [GOOD, GOOD]
    assert check.summary() == (
        "refused 4 lines, not sent: 2 not JSON (first: line 3), 1 no cohort_id (first: line 4), "
        "1 not a JSON object (first: line 5)"
    )


def test_a_byte_order_mark_is_dropped() -> None:
    check = LineCheck([b"\xef\xbb\xbf" + GOOD + b"\n", GOOD])
    assert list(check) == [GOOD, GOOD]
    assert check.summary() is None


def test_a_json_array_file_is_refused_with_a_hint() -> None:
    check = LineCheck([b"[", GOOD + b",", GOOD, b"]"])
    assert list(check) == [GOOD]
    assert check.summary() == (
        "refused 3 lines, not sent: 3 not JSON (first: line 1); the file looks like one JSON "
        "array: write one object per line (jq -c '.[]')"
    )
