"""The state of one input partition: its cohorts' members and which syncs are due.

A partition decides sync time T of a rule once its watermark reaches T. `emitted_through` is
the watermark at the last decision: every sync at or before it is decided, and it is the only
clock that is persisted, so a restart decides exactly as the first run did. A decided sync
stays `pending` until its destination has it: a destination that fails keeps its own syncs
pending (and the history they need) while the partition and the other destinations go on.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import numpy as np
import pyarrow as pa

from stream.domain.events import BatchEvents, MembershipEvent
from stream.domain.membership import Member, Snapshot
from stream.domain.retention import ExitQueue
from stream.domain.windows import NEVER, Schedule
from stream.state.cohort import CohortState
from stream.state.packed_rows import pack_rows

__all__ = ["Rule", "SyncJob", "PendingSync", "PartitionState"]

_FRESH_MIN = 32
"""The fewest events that `apply(pack_fresh=True)` (of a message) and `apply_run` (of a
cohort's run) pack in bulk: below it, the columns cost more than the objects."""


class _Fresh(NamedTuple):
    """Events as columns for `_apply_fresh`: amplitude ids, and their stamps' time,
    offset and index in the message; presence, user ids, properties and app ids."""

    ids: np.ndarray
    time: np.ndarray
    offset: np.ndarray
    in_message: np.ndarray
    enter: np.ndarray
    user_ids: list[str | None]
    properties: list[dict[str, Any] | None]
    app_ids: list[int | None]


class Rule(Protocol):
    """What scheduling needs of a sync rule (see `config.SyncRule`)."""

    @property
    def rule_id(self) -> str: ...
    @property
    def cohort(self) -> str: ...
    @property
    def schedule(self) -> Schedule: ...

    def covers(self, cohort_id: str) -> bool: ...


@dataclass(frozen=True, slots=True)
class SyncJob:
    """One sync to write: `previous` is None at the cohort's first sync for the rule."""

    rule: Rule
    cohort_id: str
    sync_time: int
    previous: int | None


@dataclass(frozen=True, slots=True)
class PendingSync:
    """A decided sync not yet confirmed written, with the input position it was decided at."""

    rule_id: str
    cohort_id: str
    sync_time: int
    previous: int | None
    topic: str
    end_offset: int

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.rule_id, self.cohort_id, self.sync_time)

    @property
    def oldest_needed(self) -> int:
        """The oldest instant its diff reads (its previous sync time, or its own)."""
        return self.sync_time if self.previous is None else self.previous

    def to_json(self) -> list[object]:
        return [
            self.rule_id,
            self.cohort_id,
            self.sync_time,
            self.previous,
            self.topic,
            self.end_offset,
        ]

    @classmethod
    def from_json(cls, item: list[object]) -> PendingSync:
        rule_id, cohort_id, sync_time, previous, topic, end_offset = item
        return cls(
            str(rule_id),
            str(cohort_id),
            int(str(sync_time)),
            None if previous is None else int(str(previous)),
            str(topic),
            int(str(end_offset)),
        )


class PartitionState:
    def __init__(
        self,
        emitted_through: int | None = None,
        rule_starts: dict[str, int] | None = None,
        pending: Iterable[PendingSync] = (),
        *,
        track_exits: bool = False,
    ) -> None:
        """`track_exits`: queue each cohort's exits, to forget members (`forget_absent`)."""
        self.track_exits = track_exits
        self.emitted_through = emitted_through
        self.rule_starts: dict[str, int] = dict(rule_starts or {})
        self.pending: list[PendingSync] = []
        """Decided syncs not yet written, in the order they were decided (`add_pending`)."""
        self._oldest_pending: int | None = None
        self.add_pending(pending)
        self.watermark = emitted_through
        self.cohorts: dict[str, CohortState] = {}
        self._next_due: int | None = None
        self._next_due_known = False

    def register_rules(self, rules: Iterable[Rule]) -> bool:
        """Record when each rule starts here; True when something new must be persisted.

        A rule this partition has not seen starts at the first sync time after the emitted
        watermark: history before it is rebuilt by a replay, not flooded by a live worker.
        """
        changed = False
        for rule in rules:
            if rule.rule_id not in self.rule_starts:
                start = 0
                if self.emitted_through is not None:
                    start = rule.schedule.next_after(self.emitted_through)
                self.rule_starts[rule.rule_id] = start
                changed = True
        self._next_due_known = False
        return changed

    def horizon(self, rules: Sequence[Rule]) -> int | None:
        """The oldest time a future or pending sync can ask about."""
        if self.emitted_through is None or not rules:
            return None
        future = min(r.schedule.last_at_or_before(self.emitted_through) for r in rules)
        oldest = self._oldest_pending  # kept, not scanned: asked on every record
        return future if oldest is None else min(future, oldest)

    def add_pending(self, syncs: Iterable[PendingSync]) -> None:
        self.pending.extend(syncs)
        self._oldest_pending = min((sync.oldest_needed for sync in self.pending), default=None)

    def written(self, keys: set[tuple[str, str, int]]) -> bool:
        """Retire the pending syncs now written; True when any was."""
        before = len(self.pending)
        self.pending = [sync for sync in self.pending if sync.key not in keys]
        self.add_pending(())
        return len(self.pending) != before

    def is_late(self, event_time: int) -> bool:
        return self.emitted_through is not None and event_time < self.emitted_through

    def apply(
        self,
        events: Sequence[MembershipEvent],
        offset: int,
        horizon: int | None,
        *,
        note_change: bool = True,
        changed: list[tuple[int, Member]] | None = None,
        pack_fresh: bool = False,
    ) -> list[tuple[int, Member]]:
        """Apply one message's events (all of one cohort, `index` in the message the last
        part of their stamps); returns the members that changed, appended to `changed` as
        they change (so a caller still has them when an event raises). `note_change=False`
        for a cohort no rule syncs (nothing would prune its changes).

        `pack_fresh`: a large message's members new to the cohort are made packed, in bulk
        (`_apply_fresh`), and not returned: for a caller that journals nothing."""
        cohort = self._cohort_of(events)
        if changed is None:
            changed = []
        indices: Iterable[int] = range(len(events))
        if pack_fresh and type(events) is BatchEvents and len(events) >= _FRESH_MIN:
            count = len(events)
            indices = self._apply_fresh(
                cohort,
                _Fresh(
                    np.array(events.amplitude_ids, dtype=np.int64),
                    np.full(count, events.time_ms, dtype=np.int64),
                    np.full(count, offset, dtype=np.int64),
                    np.arange(count, dtype=np.int64),
                    np.full(count, events.enter),
                    events.user_ids,
                    events.user_properties,
                    events.app_ids,
                ),
                note_change,
            )
        floor = self.emitted_through
        for index in indices:
            self._apply_one(
                cohort, events[index], offset, index, floor, horizon, note_change, changed
            )
        return changed

    def apply_run(
        self,
        events: Sequence[MembershipEvent],
        offsets: Sequence[int],
        horizon: int | None,
        *,
        note_change: bool,
        changed: list[tuple[int, Member]],
    ) -> list[tuple[int, Exception]]:
        """Apply a run of single-event messages of one cohort the partition holds, the
        event at `offsets[k]` each, as `apply` would one message after another; the
        members new to the cohort are made packed in bulk, and not returned in `changed`
        (for a caller that journals nothing). Returns the events that raised (their
        position in the run, the error): the others are applied."""
        cohort = self._cohort_of(events)
        count = len(events)
        indices: Iterable[int] = range(count)
        if count >= _FRESH_MIN:
            indices = self._apply_fresh(
                cohort,
                _Fresh(
                    np.array([event.amplitude_id for event in events], dtype=np.int64),
                    np.array([event.time_ms for event in events], dtype=np.int64),
                    np.array(offsets, dtype=np.int64),
                    np.zeros(count, dtype=np.int64),
                    np.array([event.enter for event in events], dtype=bool),
                    [event.user_id for event in events],
                    [event.user_properties for event in events],
                    [event.app_id for event in events],
                ),
                note_change,
            )
        floor = self.emitted_through
        failed: list[tuple[int, Exception]] = []
        for at in indices:
            try:
                self._apply_one(
                    cohort, events[at], offsets[at], 0, floor, horizon, note_change, changed
                )
            except Exception as exc:  # the record's fault: the caller dead-letters it
                failed.append((at, exc))
        return failed

    def _cohort_of(self, events: Sequence[MembershipEvent]) -> CohortState:
        """The events' cohort, made at their first event when new; writable."""
        floor = self.emitted_through
        cohort_id = events[0].cohort_id
        cohort = self.cohorts.get(cohort_id)
        if cohort is None:
            first = events[0].time_ms
            cohort = self.add_cohort(cohort_id, first if floor is None else max(first, floor))
        cohort.writable()
        return cohort

    @staticmethod
    def _apply_one(
        cohort: CohortState,
        event: MembershipEvent,
        offset: int,
        index: int,
        floor: int | None,
        horizon: int | None,
        note_change: bool,
        changed: list[tuple[int, Member]],
    ) -> None:
        visible = event.time_ms if floor is None else max(event.time_ms, floor)
        amplitude_id = event.amplitude_id
        members = cohort.members
        member = members.hot(amplitude_id)
        if member is None:
            member = Member()
            members.add(amplitude_id, member)
        snapshot = Snapshot.of_event(
            (event.time_ms, offset, index),
            visible,
            event.enter,
            event.user_id,
            event.user_properties,
            event.app_id,
        )
        if member.apply(snapshot, horizon):
            changed.append((amplitude_id, member))
            if note_change:
                cohort.note_change(amplitude_id, visible)
            if cohort.exits is not None and not event.enter:
                cohort.exits.add(event.time_ms, amplitude_id)

    def _apply_fresh(self, cohort: CohortState, fresh: _Fresh, note_change: bool) -> Iterable[int]:
        """Apply, packed and column by column, the events that make a member the cohort
        does not hold (its first event here, on time, whose fields pack); the positions of
        the others, ascending, to apply one by one. The result is the same members, only
        held packed from the start."""
        count = len(fresh.ids)
        candidates = cohort.members.untouched(fresh.ids)
        first = np.zeros(count, dtype=bool)
        first[np.unique(fresh.ids, return_index=True)[1]] = True
        candidates &= first
        if self.emitted_through is not None:  # a late event's visible time is not its own
            candidates &= fresh.time >= self.emitted_through
        chosen = np.flatnonzero(candidates)
        if not len(chosen):
            return range(count)
        listed = chosen.tolist()
        packed, packs = pack_rows(
            time=fresh.time[chosen],
            offset=fresh.offset[chosen],
            index=fresh.in_message[chosen],
            enter=fresh.enter[chosen],
            user_ids=[fresh.user_ids[at] for at in listed],
            properties=[fresh.properties[at] for at in listed],
            app_ids=[fresh.app_ids[at] for at in listed],
        )
        taken = chosen[packs]
        if len(taken):
            cohort.add_fresh(
                fresh.ids[taken],
                packed.filter(pa.array(packs)),
                fresh.time[taken],
                fresh.enter[taken],
                note_change=note_change,
            )
        rest = np.ones(count, dtype=bool)
        rest[taken] = False
        return np.flatnonzero(rest).tolist()

    def add_cohort(self, cohort_id: str, first_ms: int) -> CohortState:
        cohort = self.cohorts[cohort_id] = CohortState(first_ms)
        if self.track_exits:
            cohort.exits = ExitQueue()
        self._next_due_known = False
        return cohort

    def forget_absent(self, before: int, horizon: int) -> list[tuple[tuple[str, int], int | None]]:
        """Drop every cohort's forgettable members (`CohortState.forget_absent`): each one's
        (cohort id, amplitude id) and the bundle of its last version."""
        return [
            ((cohort_id, amplitude_id), bundle)
            for cohort_id, cohort in self.cohorts.items()
            for amplitude_id, bundle in cohort.forget_absent(before, horizon)
        ]

    def observe(self, event_time: int, lateness_ms: int) -> int:
        """Move the watermark for an event; it never goes back."""
        candidate = event_time - lateness_ms
        if self.watermark is None or candidate > self.watermark:
            self.watermark = candidate
        return self.watermark

    def next_due(self, rules: Sequence[Rule]) -> int | None:
        """The earliest sync time not yet written (None: no cohort, or no rule with a sync
        time left), cached:
        checking it is the per-event cost, `due_jobs` runs only once it is reached.
        Pass the same rules every time."""
        if not self._next_due_known:
            self._next_due = min(
                (
                    self._first_unwritten(rule, cohort.first_ms)
                    for rule in rules
                    for cohort_id, cohort in self.cohorts.items()
                    if rule.covers(cohort_id)
                ),
                default=None,
            )
            if self._next_due is not None and self._next_due >= NEVER:
                self._next_due = None  # only one-time rules whose time has passed
            self._next_due_known = True
        return self._next_due

    def _first_unwritten(self, rule: Rule, first_ms: int) -> int:
        start = max(rule.schedule.next_after(first_ms), self.rule_starts.get(rule.rule_id, 0))
        if self.emitted_through is None:
            return start
        return max(start, rule.schedule.next_after(self.emitted_through))

    def due_jobs(self, rules: Sequence[Rule], watermark: int) -> list[SyncJob]:
        """Every sync with emitted_through < T <= watermark, by time, then rule order."""
        after = self.emitted_through
        jobs: list[tuple[int, int, str, SyncJob]] = []
        for position, rule in enumerate(rules):
            rule_start = self.rule_starts.get(rule.rule_id, 0)
            for cohort_id, cohort in self.cohorts.items():
                if not rule.covers(cohort_id):
                    continue
                start = max(rule.schedule.next_after(cohort.first_ms), rule_start)
                first = start if after is None else max(start, after + 1)
                for sync_time in rule.schedule.times(first, watermark):
                    previous = None if sync_time == start else rule.schedule.previous(sync_time)
                    job = SyncJob(rule, cohort_id, sync_time, previous)
                    jobs.append((sync_time, position, cohort_id, job))
        jobs.sort(key=lambda item: item[:3])
        return [item[3] for item in jobs]

    def mark_emitted(self, watermark: int) -> None:
        self.emitted_through = watermark
        self._next_due_known = False
        if self.watermark is None or self.watermark < watermark:
            self.watermark = watermark
