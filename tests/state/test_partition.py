"""One partition's state: which syncs are due, the horizon, and forgetting."""

from __future__ import annotations

from dataclasses import dataclass

from stream.domain.events import MembershipEvent
from stream.domain.windows import Schedule
from stream.state.partition import PartitionState, PendingSync
from tests.scenario import JAN5, MIN, H


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
    state.cohorts["c1"].members.hot(1).bundle = 7  # as the journal marks a written member
    assert state.forget_absent(before=JAN5 + 2 * MIN, horizon=JAN5 + H) == [(("c1", 1), 7)]
    assert set(state.cohorts["c1"].members) == {2}
    assert state.forget_absent(before=JAN5 + 2 * MIN, horizon=JAN5 + H) == []


def test_a_partition_that_keeps_every_member_forgets_nothing() -> None:
    state = PartitionState()
    state.apply([enter("c1", 1, JAN5), exit_("c1", 1, JAN5 + MIN)], 0, None)
    assert state.forget_absent(before=JAN5 + H, horizon=JAN5 + H) == []
    assert set(state.cohorts["c1"].members) == {1}
