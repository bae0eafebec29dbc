"""Member state: last writer wins by event time then offset, visibility of late events,
compaction, and the diff identity."""

from hypothesis import given, settings
from hypothesis import strategies as st

from stream.domain.membership import Member, Snapshot, diff_cohort

H = 3_600_000


def snap(
    time: int, offset: int, enter: bool, visible: int | None = None, **props: object
) -> Snapshot:
    return Snapshot.of_event(
        (time, offset, 0),
        time if visible is None else visible,
        enter,
        f"u{offset}",
        props or None,
        None,
    )


def test_latest_event_time_wins_not_arrival_order() -> None:
    member = Member()
    member.apply(snap(2 * H, 1, False), None)
    member.apply(snap(1 * H, 2, True), None)  # arrives later, happened earlier
    assert not member.present_at(3 * H)
    assert member.present_at(2 * H)  # only the enter is before 2h


def test_equal_times_are_broken_by_the_higher_offset() -> None:
    member = Member()
    member.apply(snap(H, 9, True), None)
    member.apply(snap(H, 3, False), None)
    assert member.present_at(2 * H)


def test_applying_the_same_event_twice_changes_nothing() -> None:
    member = Member()
    assert member.apply(snap(H, 1, True), None)
    assert not member.apply(snap(H, 1, True), None)
    assert len(member.history) == 1


def test_re_enter_after_exit() -> None:
    member = Member()
    for offset, (time, enter) in enumerate([(H, True), (2 * H, False), (3 * H, True)]):
        member.apply(snap(time, offset, enter), None)
    assert [member.present_at(t * H + 1) for t in (1, 2, 3)] == [True, False, True]


def test_properties_take_the_latest_value_each() -> None:
    member = Member()
    member.apply(snap(H, 1, True, plan="free", country="DE"), None)
    member.apply(snap(2 * H, 2, True, plan="pro"), None)
    member.apply(snap(3 * H, 3, True, plan="enterprise"), None)
    view = member.view_at(3 * H)
    assert view is not None
    assert {k[0]: v[0] for k, v in view.properties.items()} == {"plan": "pro", "country": "DE"}


def test_late_event_is_invisible_to_written_syncs_but_wins_by_event_time_later() -> None:
    member = Member()
    member.apply(snap(H, 1, True), None)
    member.apply(snap(int(1.5 * H), 2, False, visible=5 * H), None)  # late: written through 5h
    assert member.present_at(5 * H)  # the sync at 5h, as written, still has the member
    assert not member.present_at(6 * H)  # it shows in the next sync


def test_late_event_does_not_override_a_newer_event() -> None:
    member = Member()
    member.apply(snap(4 * H, 1, True), None)
    member.apply(snap(3 * H, 2, False, visible=5 * H), None)
    assert member.present_at(6 * H)


def test_compaction_keeps_every_answer_at_or_after_the_horizon() -> None:
    member, reference = Member(), Member()
    events = [(H, True, "a"), (2 * H, False, "b"), (3 * H, True, "c"), (5 * H, False, "d")]
    for offset, (time, enter, plan) in enumerate(events):
        member.apply(snap(time, offset, enter, plan=plan), 4 * H)
        reference.apply(snap(time, offset, enter, plan=plan), None)
    assert len(member.history) == 2
    for at in (4 * H, 5 * H, 6 * H):
        assert member.view_at(at) == reference.view_at(at)


def test_enter_and_exit_between_two_syncs_is_in_neither_diff() -> None:
    member = Member()
    member.apply(snap(int(1.2 * H), 1, True), None)
    member.apply(snap(int(1.5 * H), 2, False), None)
    diff = diff_cohort({7: member}, 2 * H, H)
    assert (diff.entering, diff.exiting, diff.existing) == ([], [], [])


def test_first_sync_has_no_previous_so_everyone_present_enters() -> None:
    member = Member()
    member.apply(snap(int(0.5 * H), 1, True), None)
    diff = diff_cohort({7: member}, H, None)
    assert [row[0] for row in diff.entering] == [7] == [row[0] for row in diff.existing]


def test_exiting_rows_carry_the_latest_known_values() -> None:
    member = Member()
    member.apply(snap(int(0.5 * H), 1, True, plan="free"), None)
    member.apply(snap(int(1.5 * H), 2, False, plan="pro"), None)
    diff = diff_cohort({7: member}, 2 * H, H)
    [(amplitude_id, view)] = diff.exiting
    assert amplitude_id == 7 and view.properties[("plan", None)][0] == "pro"


def test_rows_are_sorted_by_amplitude_id() -> None:
    members = []
    for amplitude_id in (30, 2, 100, 11):
        member = Member()
        member.apply(snap(1, amplitude_id, True), None)
        members.append((amplitude_id, member))
    assert [row[0] for row in diff_cohort(dict(members), H, None).existing] == [2, 11, 30, 100]


history = st.lists(st.tuples(st.integers(0, 9), st.integers(0, 6 * H), st.booleans()), max_size=40)


@settings(max_examples=200, deadline=None)
@given(history)
def test_existing_equals_previous_existing_plus_entering_minus_exiting(
    events: list[tuple[int, int, bool]],
) -> None:
    members: dict[int, Member] = {}
    for offset, (amplitude_id, time, enter) in enumerate(events):
        members.setdefault(amplitude_id, Member()).apply(snap(time, offset, enter), None)
    previous_existing: set[int] = set()
    previous = None
    for sync_time in range(H, 7 * H, H):
        diff = diff_cohort(members, sync_time, previous)
        existing = {row[0] for row in diff.existing}
        entering = {row[0] for row in diff.entering}
        exiting = {row[0] for row in diff.exiting}
        assert existing == (previous_existing | entering) - exiting
        assert not entering & exiting
        previous_existing, previous = existing, sync_time


@settings(max_examples=200, deadline=None)
@given(history, st.integers(0, 6))
def test_compacted_members_answer_like_uncompacted_ones(
    events: list[tuple[int, int, bool]], horizon_hours: int
) -> None:
    compacted, full = Member(), Member()
    for offset, (_, time, enter) in enumerate(events):
        compacted.apply(snap(time, offset, enter, plan=str(offset)), horizon_hours * H)
        full.apply(snap(time, offset, enter, plan=str(offset)), None)
    for at in range(horizon_hours * H, 8 * H, H // 2):
        assert compacted.view_at(at) == full.view_at(at)
