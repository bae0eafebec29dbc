"""A cohort's change log: what `changed_since` and `drop_changes_before` keep, with the
visible times held as whole seconds rounded up."""

from __future__ import annotations

from collections import Counter

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from stream.state.cohort import CohortState, _second_up, _seconds_up

#: Visible times a uint32 of seconds holds as they are (1970 to 2106).
in_range = st.integers(0, (2**32 - 1) * 1000)
changes = st.lists(st.tuples(st.integers(0, 30), in_range), max_size=40)


def noted(pairs: list[tuple[int, int]]) -> CohortState:
    cohort = CohortState(0)
    for amplitude_id, visible in pairs:
        cohort.note_change(amplitude_id, visible)
    return cohort


@given(changes, in_range)
def test_changed_since_keeps_every_change_from_the_time_on_and_none_older_than_a_second(
    pairs: list[tuple[int, int]], time: int
) -> None:
    got = noted(pairs).changed_since(time)
    assert got == sorted(set(got))
    assert {a for a, visible in pairs if visible >= time} <= set(got)
    assert set(got) <= {a for a, visible in pairs if visible > time - 1000}


@given(changes, in_range)
def test_dropping_changes_keeps_those_from_the_horizon_on_and_none_older_than_a_second(
    pairs: list[tuple[int, int]], horizon: int
) -> None:
    cohort = noted(pairs)
    cohort.drop_changes_before(horizon)
    kept = Counter(zip(cohort.changed_ids, cohort.changed_at, strict=True))
    assert Counter((a, _second_up(v)) for a, v in pairs if v >= horizon) <= kept
    assert kept <= Counter((a, _second_up(v)) for a, v in pairs if v > horizon - 1000)


@given(st.lists(st.integers(-(2**40), 2**45), max_size=30), st.integers(-(2**40), 2**45))
def test_times_out_of_range_are_still_never_missed(visible: list[int], time: int) -> None:
    """Before 1970 or after 2106, a time is held at the range's end: a change may be kept
    that need not be, never dropped that should stay."""
    cohort = noted([(index, at) for index, at in enumerate(visible)])
    assert {index for index, at in enumerate(visible) if at >= time} <= set(
        cohort.changed_since(time)
    )


@given(st.lists(st.integers(-(2**40), 2**45), max_size=30))
def test_one_change_and_many_at_once_round_alike(visible: list[int]) -> None:
    assert _seconds_up(np.array(visible, dtype=np.int64)).tolist() == [
        _second_up(at) for at in visible
    ]
