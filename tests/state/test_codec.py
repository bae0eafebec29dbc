"""Table keys and values: every key and member history decodes to what was encoded."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from stream.domain.membership import Member, Snapshot
from stream.state import codec

properties = st.dictionaries(
    st.text(min_size=1, max_size=5),
    st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.text(max_size=8)),
    max_size=3,
)
snapshots = st.builds(
    lambda time, offset, enter, user, props, app: Snapshot.of_event(
        (time, offset, 0), time, enter, user, props, app
    ),
    st.integers(0, 2**42),
    st.integers(0, 2**40),
    st.booleans(),
    st.one_of(st.none(), st.text(max_size=8)),
    st.one_of(st.none(), properties),
    st.one_of(st.none(), st.integers(0, 99)),
)


def stamps(member: Member) -> list[tuple[object, ...]]:
    return [(s.stamp, s.visible, s.enter, s.user_id, dict(s.properties)) for s in member.history]


@settings(max_examples=200)
@given(st.lists(snapshots, min_size=1, max_size=4, unique_by=lambda s: s.stamp))
def test_a_history_decodes_to_what_was_encoded(history: list[Snapshot]) -> None:
    member = Member()
    for snapshot in sorted(history, key=lambda s: s.stamp):
        member.apply(snapshot, None)
    assert stamps(codec.decode_history(codec.encode_history(member))) == stamps(member)


def test_keys_carry_their_kind_and_partition() -> None:
    assert codec.parse_key(codec.bundle_key(3, 17)) == ("b", 3, ["17"])
    assert codec.parse_key(codec.cohort_key(0, "trial")) == ("c", 0, ["trial"])
    assert codec.parse_key(codec.partition_key(5))[:2] == ("p", 5)


def test_json_values_are_compact_and_keep_their_order() -> None:
    assert codec.encode_json({"b": 1, "a": [1, 2]}) == b'{"b":1,"a":[1,2]}'
    assert codec.decode_json(b'{"b":1,"a":[1,2]}') == {"b": 1, "a": [1, 2]}


def test_json_decodes_exactly_what_either_encoder_wrote() -> None:
    """orjson reads integers beyond 64 bits as floats and refuses NaN: those documents are
    read by the standard library."""
    for value in [2**64 + 1, -(2**70), 2**63 - 1, "1234567890123456789012", 0.1, [None, True]]:
        assert codec.decode_json(codec.encode_json([value])) == [value]
        assert type(codec.decode_json(codec.encode_json([value]))[0]) is type(value)
    assert str(codec.decode_json(b"[NaN]")) == "[nan]"
