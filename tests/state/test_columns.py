"""A diff from the members' columns has the rows `diff_cohort` gives for the same members,
whichever of them are packed in the base, packed in the delta, or held as objects."""

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from stream.domain.membership import Member, diff_cohort
from stream.formats.columns import RowColumns
from stream.state import members as members_module
from stream.state.columns import diff_columns
from stream.state.members import Members
from tests.state.test_packed import snapshots

T = 1_767_571_200_000


def member_of(history: list[Any]) -> Member:
    member = Member()
    for snapshot in sorted(history, key=lambda s: s.stamp):
        member.apply(snapshot, None)
    return member


def times() -> st.SearchStrategy[Any]:
    """Snapshots around the sync times below, so that each side of them is met."""
    return snapshots().map(
        lambda s: type(s)(
            (T + s.stamp[0] % 5000, *s.stamp[1:]),
            T + s.stamp[0] % 5000 + (0 if s.visible == s.stamp[0] else 2000),  # late: 2 s later
            s.enter,
            s.user_id,
            s.user_stamp,
            s.properties,
        )
    )


def rows_of(columns: RowColumns) -> list[tuple[int, str | None, dict[Any, Any]]]:
    users = columns.user_ids.to_pylist()
    return [
        (
            amplitude_id,
            users[row],
            {k: exact(v) for k, (v, _) in columns.property_sets[columns.set_index[row]].items()},
        )
        for row, amplitude_id in enumerate(columns.ids.tolist())
    ]


def rows_expected(rows: list[Any]) -> list[tuple[int, str | None, dict[Any, Any]]]:
    return [
        (a, view.user_id, {k: exact(v) for k, (v, _) in view.properties.items()})
        for a, view in rows
    ]


def exact(value: Any) -> Any:
    """Floats by their text (nan is nan, -0.0 is not 0.0)."""
    return repr(value) if isinstance(value, float) else (type(value), value)


@settings(max_examples=200)
@given(
    st.dictionaries(
        st.integers(0, 10**12),
        st.tuples(
            st.lists(times(), min_size=1, max_size=3), st.sampled_from(["obj", "delta", "base"])
        ),
        max_size=25,
    ),
    st.sampled_from([T + 1000, T + 2500, T + 6000]),
    st.sampled_from([None, T, T + 1500]),
)
def test_a_diff_from_columns_has_the_rows_of_diff_cohort(
    chosen: dict[int, tuple[list[Any], str]], sync_time: int, previous: int | None
) -> None:
    members = Members()
    old = members_module._MIN_FOLD
    members_module._MIN_FOLD = 10**9  # fold only when told
    try:
        for amplitude_id, (history, where) in chosen.items():
            members.add(amplitude_id, member_of(history))
            if where != "obj":
                members.freeze(amplitude_id)
            if where == "base":
                members.fold()
    finally:
        members_module._MIN_FOLD = old
    if previous is not None and previous >= sync_time:
        previous = None
    expected = diff_cohort(members, sync_time, previous)
    found = diff_columns(members, sync_time, previous)
    assert rows_of(found.existing) == rows_expected(expected.existing)
    assert rows_of(found.entering) == rows_expected(expected.entering)
    assert rows_of(found.exiting) == rows_expected(expected.exiting)
