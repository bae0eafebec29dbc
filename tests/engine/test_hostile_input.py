"""Fuzzed hostile input: whatever bytes arrive, parsing raises only InvalidEvent, the
processor never crashes, and valid events around the bad ones still give their files."""

import asyncio
import json
import math

from hypothesis import given, settings
from hypothesis import strategies as st

from stream.domain.events import parse_message
from stream.errors import InvalidEvent
from tests.engine.test_processor import Harness, config
from tests.scenario import C1, JAN5, MIN, expected_csvs

#: Text that may hold a lone surrogate (json.dumps escapes it as `\ud800`): `st.text()`
#: never makes one, and one once slipped through to make every sync of its cohort fail.
texts = st.text(max_size=50) | st.text(st.characters(categories=["Cs", "Ll"]), max_size=4)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | texts,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(texts, children, max_size=4),
    max_leaves=20,
)
fields = st.fixed_dictionaries(
    {},
    optional={
        "cohort_id": st.one_of(
            texts,
            st.integers(),
            st.sampled_from(["../x", "a/b", "..", "c\x00", "c\n", "/etc", "x" * 500]),
        ),
        "amplitude_id": st.one_of(st.integers(), st.text(max_size=5), st.floats()),
        "user_id": json_values,
        "action": st.one_of(st.sampled_from(["enter", "exit", "ENTER", "join", ""]), json_values),
        "time": st.one_of(
            st.integers(),
            st.text(max_size=30),
            st.floats(),
            st.sampled_from(["9999-12-31T23:59:59Z", "1900-01-01T00:00:00Z"]),
        ),
        "user_properties": json_values,
        "app_id": json_values,
        "in_cohort": json_values,
        "computed_time": json_values,
        "users": st.lists(json_values, max_size=3),
    },
)
hostile = st.one_of(
    st.binary(max_size=200),
    fields.map(lambda d: json.dumps(d).encode()),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.sampled_from([b"NaN", b'{"time": Infinity}', b"[" * 50_000, b"\xc3\x28", b"", b"null"]),
)


@settings(max_examples=400, deadline=None)
@given(hostile)
def test_parsing_raises_only_invalid_event_and_valid_ids_are_path_safe(raw: bytes) -> None:
    try:
        events = parse_message(raw)
    except InvalidEvent as error:
        assert error.reason
        return
    for event in events:
        assert "/" not in event.cohort_id and "\\" not in event.cohort_id
        assert event.cohort_id not in (".", "..") and event.cohort_id.isprintable()
        assert isinstance(event.amplitude_id, int) and not isinstance(event.amplitude_id, bool)
        assert all(
            not isinstance(v, float) or math.isfinite(v)
            for v in (event.user_properties or {}).values()
        )
        # every text an event keeps can be written to a UTF-8 file
        json.dumps([event.user_id, event.user_properties], ensure_ascii=False).encode()


@settings(max_examples=60, deadline=None)
@given(st.lists(hostile, max_size=8), st.randoms())
def test_bad_records_among_good_ones_change_nothing_but_the_dead_letters(
    bad: list[bytes], shuffler: object
) -> None:
    bad = [raw for raw in bad if _invalid(raw)]
    stream = list(C1)
    for raw in bad:  # keep the good records in order, the bad ones anywhere
        stream.insert(shuffler.randrange(len(stream) + 1), raw)  # type: ignore[attr-defined]
    harness = Harness(config())
    for record in stream:
        asyncio.run(
            harness.processor.on_record("cohort-membership", 0, harness.offset, b"c1", record)
        )
        harness.offset += 1
    assert harness.files() == expected_csvs(cohorts=("c1",))
    assert len(harness.outbox.dead) == len(bad)


def _invalid(raw: bytes) -> bool:
    try:
        parse_message(raw)
    except InvalidEvent:
        return True
    return False


def test_a_lone_surrogate_is_a_dead_letter_and_the_syncs_after_it_are_written() -> None:
    """Before, such a user id was applied and every sync of its cohort failed to build."""
    lone = json.dumps(
        {"cohort_id": "c1", "amplitude_id": 9, "action": "enter", "time": JAN5 + 30 * MIN}
    ).replace('"time"', '"user_id": "\\ud800", "time"')
    harness = Harness(config())
    for record in [*C1[:2], lone.encode(), *C1[2:]]:
        asyncio.run(
            harness.processor.on_record("cohort-membership", 0, harness.offset, b"c1", record)
        )
        harness.offset += 1
    assert harness.files() == expected_csvs(cohorts=("c1",))
    assert len(harness.outbox.dead) == 1
