"""Parsing one message into membership events, and every way a message can be invalid."""

import json
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from stream.domain.events import (
    MembershipEvent,
    _batch_user,
    _parse_exact,
    _parse_quick,
    _single_checked,
    parse_message,
    parse_time,
)
from stream.errors import InvalidEvent

T0 = 1_736_035_800_000  # 2025-01-05T00:10:00Z


def encode(document: object) -> bytes:
    return json.dumps(document).encode()


def single(**overrides: object) -> dict[str, object]:
    event: dict[str, object] = {
        "cohort_id": "c1",
        "amplitude_id": 1001,
        "user_id": "alice@example.com",
        "action": "enter",
        "time": "2025-01-05T00:10:00Z",
        "user_properties": {"plan": "pro", "country": "DE"},
    }
    event.update(overrides)
    return event


def test_single_event_is_parsed_with_every_field() -> None:
    [event] = parse_message(encode(single(app_id=7)))
    assert event == MembershipEvent(
        cohort_id="c1",
        amplitude_id=1001,
        user_id="alice@example.com",
        enter=True,
        time_ms=T0,
        user_properties={"plan": "pro", "country": "DE"},
        app_id=7,
    )


def test_integer_cohort_id_becomes_its_decimal_string() -> None:
    [event] = parse_message(encode(single(cohort_id=42)))
    assert event.cohort_id == "42"


def test_exit_and_null_user_id_and_missing_properties() -> None:
    document = single(action="exit", user_id=None)
    del document["user_properties"]
    [event] = parse_message(encode(document))
    assert (event.enter, event.user_id, event.user_properties) == (False, None, None)


@pytest.mark.parametrize(
    "value, expected",
    [
        ("2025-01-05T00:10:00Z", T0),
        ("2025-01-05T01:10:00+01:00", T0),
        ("2025-01-05T00:10:00.123Z", T0 + 123),
        (T0, T0),
    ],
)
def test_time_as_iso_with_offset_or_epoch_milliseconds(value: object, expected: int) -> None:
    assert parse_time(value) == expected


def test_batch_form_expands_to_one_event_per_user() -> None:
    batch = {
        "cohort_id": "c1",
        "in_cohort": False,
        "computed_time": "1736035800",
        "users": [
            {"amplitude_id": 1, "user_id": "u", "user_properties": {"plan": "x"}},
            {"amplitude_id": 2, "user_id": None, "app_id": 9},
        ],
    }
    first, second = parse_message(encode(batch))
    assert first == MembershipEvent("c1", 1, "u", False, T0, {"plan": "x"}, None)
    assert second == MembershipEvent("c1", 2, None, False, T0, None, 9)


def test_batch_computed_time_may_be_a_number() -> None:
    batch = {"cohort_id": 5, "in_cohort": True, "computed_time": 1736035800, "users": []}
    assert parse_message(encode(batch)) == []


@pytest.mark.parametrize(
    "raw, reason",
    [
        (None, "empty message"),
        (b"\xff\xfe", "not UTF-8"),
        (b"{not json", "not valid JSON"),
        (b'{"time": NaN}', "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b"[" * 100_000 + b"]" * 100_000, "JSON"),
        (encode(single(action="join")), "action"),
        (encode({k: v for k, v in single().items() if k != "time"}), "time: required"),
        (encode({k: v for k, v in single().items() if k != "amplitude_id"}), "amplitude_id"),
        (encode({k: v for k, v in single().items() if k != "cohort_id"}), "cohort_id"),
        (encode(single(amplitude_id="1001")), "amplitude_id: must be an integer"),
        (encode(single(amplitude_id=True)), "amplitude_id: must be an integer"),
        (encode(single(amplitude_id=-1)), "amplitude_id: out of range"),
        (encode(single(user_id=5)), "user_id"),
        (encode(single(cohort_id=["c"])), "cohort_id"),
        (encode(single(cohort_id="a/b")), "cohort_id"),
        (encode(single(cohort_id="..")), "cohort_id"),
        (encode(single(cohort_id="bad\nid")), "cohort_id"),
        (encode(single(cohort_id="")), "cohort_id"),
        (encode(single(time="2025-01-05T00:10:00")), "needs an offset"),
        (encode(single(time="yesterday")), "not an ISO-8601"),
        (encode(single(time=1.5)), "time"),
        (
            encode(single(time="3025-01-05T00:10:00Z")),
            "'3025-01-05T00:10:00Z' is outside the years",
        ),
        (
            encode(single(time="2000-01-01T01:00:00+02:00")),
            "'2000-01-01T01:00:00+02:00' is outside",
        ),
        (encode(single(time=12)), "time: 12 is outside the years"),
        (encode(single(user_properties=[1])), "user_properties"),
        (encode(single(app_id="7")), "app_id"),
        (
            encode({"cohort_id": "c", "in_cohort": "yes", "computed_time": 1, "users": []}),
            "in_cohort",
        ),
        (
            encode({"cohort_id": "c", "in_cohort": True, "computed_time": "x", "users": []}),
            "computed_time",
        ),
        (
            encode({"cohort_id": "c", "in_cohort": True, "computed_time": 1736035800, "users": {}}),
            "users",
        ),
        (
            encode(
                {
                    "cohort_id": "c",
                    "in_cohort": True,
                    "computed_time": 1736035800,
                    "users": [{"amplitude_id": "x"}],
                }
            ),
            "users[0].amplitude_id",
        ),
    ],
)
def test_invalid_messages_raise_with_a_reason(raw: bytes | None, reason: str) -> None:
    with pytest.raises(InvalidEvent) as caught:
        parse_message(raw)
    assert reason in caught.value.reason


def outcome(parse: Callable[[], Sequence[MembershipEvent]]) -> Sequence[MembershipEvent] | str:
    """The events `parse` gives, or the reason it rejects them with."""
    try:
        return parse()
    except InvalidEvent as exc:
        return exc.reason


batch_users = st.lists(
    st.one_of(
        st.fixed_dictionaries(
            {
                "amplitude_id": st.one_of(
                    st.integers(0, 9), st.integers(-2, 2**64), st.booleans(), st.text(max_size=2)
                )
            },
            optional={
                "user_id": st.one_of(st.none(), st.text(max_size=3), st.integers()),
                "user_properties": st.one_of(
                    st.none(),
                    st.just({}),
                    st.dictionaries(st.text(max_size=2), st.integers()),
                    st.lists(st.integers()),
                ),
                "app_id": st.one_of(st.none(), st.integers(), st.text(max_size=1)),
            },
        ),
        st.integers(),
        st.lists(st.integers()),
    ),
    max_size=4,
)


@given(batch_users, st.one_of(st.none(), st.integers(0, 9)))
def test_batch_users_parse_as_checked_one_field_at_a_time(users: list[Any], app_id: Any) -> None:
    """The inline check of a batch's users takes or leaves a user; either way the events,
    or the error, are those of the field-by-field check."""
    document = {"cohort_id": "c", "in_cohort": True, "computed_time": 1736035800, "users": users}
    if app_id is not None:
        document["app_id"] = app_id
    expected = outcome(
        lambda: [
            _batch_user(user, index, "c", True, T0, app_id) for index, user in enumerate(users)
        ]
    )
    assert outcome(lambda: parse_message(encode(document))) == expected


single_fields = st.fixed_dictionaries(
    {
        "cohort_id": st.just("c"),
        "action": st.sampled_from(["enter", "exit"]),
        "time": st.one_of(
            st.integers(T0 - 2, T0 + 2),
            st.integers(-(2**64), 2**64),
            st.booleans(),
            st.just("2025-01-05T00:10:00Z"),
            st.floats(allow_nan=False, allow_infinity=False),
        ),
        "amplitude_id": st.one_of(st.integers(0, 9), st.integers(-2, 2**64), st.booleans()),
    },
    optional={
        "user_id": st.one_of(st.none(), st.text(max_size=3), st.integers()),
        "user_properties": st.one_of(
            st.none(), st.just({}), st.dictionaries(st.text(max_size=2), st.integers())
        ),
        "app_id": st.one_of(st.none(), st.integers(), st.booleans(), st.text(max_size=1)),
    },
)


@settings(max_examples=400)
@given(single_fields)
@example({"cohort_id": "c", "action": "exit", "time": T0, "amplitude_id": 1, "app_id": True})
@example({"cohort_id": "c", "action": "exit", "time": True, "amplitude_id": 1})
def test_single_events_parse_as_checked_one_field_at_a_time(document: dict[str, Any]) -> None:
    """The inline check of a single event takes or leaves it; either way the event, or the
    error, is that of the field-by-field check."""
    expected = outcome(lambda: [_single_checked(document, "c", document["action"] == "enter")])
    assert outcome(lambda: parse_message(encode(document))) == expected


def test_a_lone_surrogate_in_a_user_id_or_a_property_is_rejected_and_a_pair_is_text() -> None:
    """JSON may escape half a surrogate pair (`\\ud800`); no UTF-8 file can hold it, so the
    record is a dead letter, not a sync that can never be written."""
    single = (
        b'{"cohort_id": "c", "amplitude_id": 1, "action": "enter", "time": 1736035800000, '
        b'"user_id": "\\ud800"}'
    )
    with pytest.raises(InvalidEvent, match=r"^user_id: holds a lone surrogate"):
        parse_message(single)
    batch = (
        b'{"cohort_id": "c", "in_cohort": true, "computed_time": 1736035800, "users": '
        b'[{"amplitude_id": 1}, {"amplitude_id": 2, "user_properties": {"p": ["\\uDC00"]}}]}'
    )
    with pytest.raises(InvalidEvent, match=r"^users\[1\]\.user_properties: holds a lone"):
        parse_message(batch)
    [event] = parse_message(single.replace(b"\\ud800", b"\\ud83d\\ude00"))
    assert event.user_id == "\U0001f600"


#: JSON values that orjson and json read differently, or that only one of them refuses:
#: integers beyond 64 bits, floats, lone surrogates (json.dumps escapes them), nesting.
tricky_scalars = st.one_of(
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False),
    st.text(st.characters(codec=None, categories=["Cs", "Ll", "Nd"]), max_size=3),
    st.booleans(),
    st.none(),
)
tricky_values = st.recursive(
    tricky_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=2), st.dictionaries(st.text(max_size=2), inner, max_size=2)
    ),
    max_leaves=4,
)
tricky_fields = st.one_of(tricky_values, st.integers(0, 9), st.just(T0), st.just("c"))
#: Mostly fields the quick decode takes (twice each), sometimes tricky ones.
tricky_messages = st.one_of(
    st.fixed_dictionaries(
        {
            "cohort_id": st.one_of(st.just("c"), st.just("c"), tricky_fields),
            "action": st.sampled_from(["enter", "exit"]),
            "time": st.one_of(st.just(T0), st.just(T0), tricky_fields),
            "amplitude_id": st.one_of(st.integers(0, 9), st.integers(0, 9), tricky_fields),
        },
        optional={
            "user_id": st.one_of(st.none(), st.text(max_size=2), tricky_fields),
            "user_properties": st.one_of(
                *[st.dictionaries(st.text(max_size=2), tricky_scalars, max_size=3)] * 2,
                tricky_values,
            ),
            "app_id": st.one_of(st.integers(0, 9), tricky_fields),
        },
    ),
    st.fixed_dictionaries(
        {
            "cohort_id": st.just("c"),
            "in_cohort": st.booleans(),
            "computed_time": st.one_of(st.just(1736035800), st.just(1736035800.5), tricky_fields),
            "users": st.lists(
                st.fixed_dictionaries(
                    {
                        "amplitude_id": st.one_of(
                            st.integers(0, 9), st.integers(0, 9), tricky_fields
                        ),
                        "user_properties": st.dictionaries(
                            st.text(max_size=2), tricky_scalars, max_size=2
                        ),
                    },
                    optional={"user_id": st.one_of(st.none(), tricky_fields)},
                ),
                min_size=1,
                max_size=3,
            ),
        }
    ),
    tricky_values,
)


@settings(max_examples=500)
@given(tricky_messages)
@example(
    {
        "cohort_id": "c",
        "action": "enter",
        "time": T0,
        "amplitude_id": 1,
        "user_properties": {"n": 2**64 + 1},
    }
)
@example({"cohort_id": "c", "action": "enter", "time": T0, "amplitude_id": 1, "user_id": "\ud800"})
@example(
    {
        "cohort_id": "c",
        "action": "exit",
        "time": T0,
        "amplitude_id": 1,
        "user_properties": {"p": [2**64 + 1]},
    }
)
def test_the_quick_decode_gives_what_the_exact_one_gives(document: Any) -> None:
    """orjson decides a message only where json would give the same events; otherwise
    (a big integer, a float of 2**63 or more, or a lone surrogate among what the events
    keep, or an error) the message is parsed again with json, for the exact values and the
    exact error."""
    raw = json.dumps(document).encode()
    # by repr: 2.0 == 2, but a float is not the integer a file must show
    assert repr(outcome(lambda: parse_message(raw))) == repr(outcome(lambda: _parse_exact(raw)))


def test_the_quick_decode_takes_the_common_messages_and_leaves_a_big_integer() -> None:
    common = encode(single(time=T0))
    assert _parse_quick(common) == parse_message(common)
    batch = encode(
        {
            "cohort_id": "c",
            "in_cohort": True,
            "computed_time": 1736035800.5,
            "users": [{"amplitude_id": 1, "user_properties": {"p": "x"}}],
        }
    )
    assert _parse_quick(batch) == parse_message(batch)
    priced = encode(single(time=T0, user_properties={"revenue": 9.99, "n": -(2**63)}))
    assert _parse_quick(priced) == parse_message(priced)
    for big in (2**64 + 1, -(2**63) - 1):
        raw = encode(single(time=T0, user_properties={"n": big}))
        assert _parse_quick(raw) is None
        [event] = parse_message(raw)
        assert event.user_properties == {"n": big}
        assert type(event.user_properties["n"]) is int


@settings(max_examples=300)
@given(tricky_messages)
@example({"cohort_id": "c", "action": "enter", "time": T0, "amplitude_id": 1, "user_id": "\udc00"})
@example(
    {
        "cohort_id": "c",
        "in_cohort": True,
        "computed_time": 1736035800,
        "users": [{"amplitude_id": 1, "user_properties": {"\ud800": "x"}}],
    }
)
def test_every_text_an_accepted_event_keeps_can_be_written_in_utf_8(document: Any) -> None:
    """No text that a sync could not write (a lone surrogate) gets past the parse."""
    try:
        events = parse_message(json.dumps(document).encode())
    except InvalidEvent:
        return
    for event in events:
        json.dumps([event.user_id, event.user_properties], ensure_ascii=False).encode()
