"""One partition's state: which syncs are due, the horizon, and forgetting."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from stream.domain.events import BatchEvents, MembershipEvent
from stream.domain.windows import Schedule
from stream.state.partition import _FRESH_MIN, PartitionState, PendingSync
from tests.scenario import JAN5, MIN, H
from tests.state.test_packed import fields


@dataclass(frozen=True)
class Rule:
    rule_id: str
    cohort: str
    schedule: Schedule

    def covers(self, cohort_id: str) -> bool:
        return self.cohort in ("*", cohort_id)


HOURLY = Rule("hourly", "*", Schedule.every(H))
QUARTER = Rule("quarter", "c1", Schedule.every(15 * MIN))


def enter(cohort: str, amplitude_id: int, time: int) -> MembershipEvent:
    return MembershipEvent(cohort, amplitude_id, None, True, time)


def exit_(cohort: str, amplitude_id: int, time: int) -> MembershipEvent:
    return MembershipEvent(cohort, amplitude_id, None, False, time)


def test_syncs_are_due_from_the_first_sync_time_after_a_cohort_s_first_event() -> None:
    state = PartitionState()
    state.register_rules([HOURLY, QUARTER])
    state.apply([enter("c1", 1, JAN5 + 10 * MIN)], 0, None)
    state.apply([enter("c2", 2, JAN5 + 50 * MIN)], 1, None)
    assert state.next_due([HOURLY, QUARTER]) == JAN5 + 15 * MIN
    jobs = state.due_jobs([HOURLY, QUARTER], JAN5 + H)
    assert [(j.rule.rule_id, j.cohort_id, j.sync_time - JAN5, j.previous) for j in jobs] == [
        ("quarter", "c1", 15 * MIN, None),
        ("quarter", "c1", 30 * MIN, JAN5 + 15 * MIN),
        ("quarter", "c1", 45 * MIN, JAN5 + 30 * MIN),
        ("hourly", "c1", H, None),
        ("hourly", "c2", H, None),
        ("quarter", "c1", H, JAN5 + 45 * MIN),
    ]
    state.mark_emitted(JAN5 + H)
    assert state.due_jobs([HOURLY, QUARTER], JAN5 + H) == []
    assert state.next_due([HOURLY, QUARTER]) == JAN5 + H + 15 * MIN


def test_a_rule_added_later_starts_after_the_emitted_watermark() -> None:
    state = PartitionState(emitted_through=JAN5 + 5 * H + MIN)
    assert state.register_rules([HOURLY]) is True
    assert state.rule_starts == {"hourly": JAN5 + 6 * H}
    assert state.register_rules([HOURLY]) is False


def test_the_horizon_is_the_oldest_sync_a_future_or_pending_one_reads() -> None:
    state = PartitionState(emitted_through=JAN5 + 2 * H + 20 * MIN)
    assert state.horizon([HOURLY, QUARTER]) == JAN5 + 2 * H
    state.add_pending([PendingSync("hourly", "c1", JAN5 + 2 * H, JAN5 + H, "in", 5)])
    assert state.horizon([HOURLY, QUARTER]) == JAN5 + H
    assert state.written({("hourly", "c1", JAN5 + 2 * H)}) is True
    assert state.horizon([HOURLY, QUARTER]) == JAN5 + 2 * H


def test_the_watermark_never_goes_back() -> None:
    state = PartitionState()
    assert state.observe(JAN5 + H, lateness_ms=MIN) == JAN5 + H - MIN
    assert state.observe(JAN5, lateness_ms=MIN) == JAN5 + H - MIN


def test_forgetting_drops_old_exits_and_names_the_bundles_that_held_them() -> None:
    state = PartitionState(track_exits=True)
    state.apply([enter("c1", 1, JAN5), enter("c1", 2, JAN5)], 0, None)
    state.apply([exit_("c1", 1, JAN5 + MIN)], 1, None)
    member = state.cohorts["c1"].members.hot(1)
    assert member is not None
    member.bundle = 7  # as the journal marks a written member
    assert state.forget_absent(before=JAN5 + 2 * MIN, horizon=JAN5 + H) == [(("c1", 1), 7)]
    assert set(state.cohorts["c1"].members) == {2}
    assert state.forget_absent(before=JAN5 + 2 * MIN, horizon=JAN5 + H) == []


def test_a_partition_that_keeps_every_member_forgets_nothing() -> None:
    state = PartitionState()
    state.apply([enter("c1", 1, JAN5), exit_("c1", 1, JAN5 + MIN)], 0, None)
    assert state.forget_absent(before=JAN5 + H, horizon=JAN5 + H) == []
    assert set(state.cohorts["c1"].members) == {1}


def a_message(cohort: str, time: int) -> st.SearchStrategy[BatchEvents]:
    """A batch message: enough users for the bulk path, over a few members (some
    repeated, some already held)."""
    users = st.lists(
        st.tuples(
            st.integers(0, 60),
            st.one_of(st.none(), st.sampled_from(["u", "v", "\ud800"])),
            st.one_of(st.none(), st.fixed_dictionaries({"plan": st.sampled_from(["a", [1]])})),
            st.none(),
        ),
        min_size=_FRESH_MIN,
        max_size=_FRESH_MIN + 8,
    )
    return st.builds(
        lambda enter, drawn: BatchEvents(
            cohort,
            enter,
            time,
            *(list(column) for column in zip(*drawn, strict=True)),
        ),
        st.booleans(),
        users,
    )


messages = st.lists(
    st.tuples(st.sampled_from(["c1", "c2"]), st.sampled_from([0, 10, 50, 70])).flatmap(
        lambda drawn: a_message(drawn[0], JAN5 + drawn[1] * MIN)
    ),
    min_size=1,
    max_size=4,
)


def held(state: PartitionState) -> dict[str, Any]:
    """Everything the partition's cohorts hold, in an order that does not matter."""
    return {
        cohort_id: (
            {amplitude_id: fields(member) for amplitude_id, member in cohort.members.items()},
            sorted(zip(cohort.changed_ids, cohort.changed_at, strict=True)),
            None if cohort.exits is None else sorted(cohort.exits.take_before(2**62)),
        )
        for cohort_id, cohort in state.cohorts.items()
    }


@given(
    messages,
    st.one_of(st.none(), st.just(JAN5 + H)),
    st.one_of(st.none(), st.just(JAN5 + H)),
    st.booleans(),
)
def test_members_packed_in_bulk_are_the_members_applied_one_by_one(
    batches: list[BatchEvents], emitted: int | None, horizon: int | None, exits: bool
) -> None:
    states = [PartitionState(emitted, track_exits=exits) for _ in range(2)]
    for offset, events in enumerate(batches):
        for state, bulk in zip(states, (False, True), strict=True):
            state.apply(
                events, offset, horizon, note_change=events[0].cohort_id == "c1", pack_fresh=bulk
            )
    one_by_one, in_bulk = (held(state) for state in states)
    assert in_bulk == one_by_one


def test_a_message_of_new_members_makes_them_packed_and_returns_none_of_them() -> None:
    state = PartitionState()
    count = _FRESH_MIN + 1
    users: list[Any] = [None] * count
    batch = BatchEvents("c1", True, JAN5, [*range(count - 1), 0], users, users, users)
    changed = state.apply(batch, 0, None, pack_fresh=True)
    assert [amplitude_id for amplitude_id, _ in changed] == [0]  # its second event
    assert state.cohorts["c1"].members.packed() == count - 2


def a_run(cohort: str) -> st.SearchStrategy[list[MembershipEvent]]:
    """Single-event messages of one cohort: enough for the bulk path, over a few members
    at a few times (some late once a sync is decided)."""
    return st.lists(
        st.builds(
            MembershipEvent,
            st.just(cohort),
            st.integers(0, 60),
            st.one_of(st.none(), st.sampled_from(["u", "\ud800"])),
            st.booleans(),
            st.sampled_from([JAN5, JAN5 + 50 * MIN, JAN5 + 70 * MIN]),
            st.one_of(st.none(), st.fixed_dictionaries({"plan": st.sampled_from(["a", [1]])})),
        ),
        min_size=_FRESH_MIN,
        max_size=_FRESH_MIN + 8,
    )


@given(
    st.lists(st.sampled_from(["c1", "c2"]).flatmap(a_run), min_size=1, max_size=3),
    st.one_of(st.none(), st.just(JAN5 + H)),
    st.one_of(st.none(), st.just(JAN5 + H)),
    st.booleans(),
)
def test_a_run_of_single_events_applied_together_is_each_applied_in_turn(
    runs: list[list[MembershipEvent]], emitted: int | None, horizon: int | None, exits: bool
) -> None:
    together, in_turn = (PartitionState(emitted, track_exits=exits) for _ in range(2))
    offset = 0
    for run in runs:
        offsets = list(range(offset, offset + 2 * len(run), 2))  # other records between
        offset += 2 * len(run)
        synced = run[0].cohort_id == "c1"
        failed = together.apply_run(run, offsets, horizon, note_change=synced, changed=[])
        assert failed == []
        for event, at in zip(run, offsets, strict=True):
            in_turn.apply([event], at, horizon, note_change=synced)
    assert held(together) == held(in_turn)
