"""One member's history in one cohort, and the entering/exiting/existing diff of a cohort.

Each applied event becomes a `Snapshot`: the member's presence, user id and properties,
every field stamped with the event that set it. Stamps order events: event time, then Kafka
offset, then position inside a batch message. Folding snapshots keeps, field by field, the
value with the highest stamp (last writer wins), so applying an event twice, or out of
order, gives the same state: processing is at-least-once and this makes it idempotent.

A snapshot also carries `visible`: the first instant a sync may see it. For an on-time event
that is its event time. A late event (older than a sync already written) becomes visible
only after the syncs already written, so the files of the past are never contradicted: it
shows in the next sync, yet still competes by its real event time.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

__all__ = [
    "Stamp",
    "NO_STAMP",
    "PropertyKey",
    "Snapshot",
    "EventProperties",
    "shared",
    "Member",
    "CohortDiff",
    "diff_cohort",
]

Stamp = tuple[int, int, int]
"""(event time ms, Kafka offset, index inside a batch message)."""
PropertyKey = tuple[str, int | None]
"""(property name, app id or None): portfolio data keeps one value per source app."""

NO_STAMP: Stamp = (-1, -1, -1)
"""The stamp of a field no event has set."""


@dataclass(slots=True)
class Snapshot:
    """A member's fields as of some events, each with the stamp of the event that set it."""

    stamp: Stamp
    visible: int
    enter: bool
    user_id: str | None = None
    user_stamp: Stamp = NO_STAMP
    properties: Mapping[PropertyKey, tuple[Any, Stamp]] = field(default_factory=dict)
    """(value, stamp) by key: `EventProperties` for one event's, a dict once folded."""

    @classmethod
    def of_event(
        cls,
        stamp: Stamp,
        visible: int,
        enter: bool,
        user_id: str | None,
        properties: dict[str, Any] | None,
        app_id: int | None,
    ) -> Snapshot:
        flat: list[Any] = []
        for name, value in (properties or {}).items():
            flat += (shared(name, app_id), _interned(value))
        user_stamp = stamp if user_id is not None else NO_STAMP
        return cls(stamp, visible, enter, user_id, user_stamp, EventProperties(tuple(flat), stamp))

    def copy(self) -> Snapshot:
        return Snapshot(
            self.stamp,
            self.visible,
            self.enter,
            self.user_id,
            self.user_stamp,
            dict(self.properties),
        )

    def absorb(self, other: Snapshot) -> None:
        """Fold `other` into this snapshot, field by field, last writer wins."""
        if other.stamp > self.stamp:
            self.stamp, self.enter = other.stamp, other.enter
        self.visible = max(self.visible, other.visible)
        if other.user_stamp > self.user_stamp:
            self.user_id, self.user_stamp = other.user_id, other.user_stamp
        properties = self.properties
        assert isinstance(properties, dict), "absorb into a copy"
        for key, (value, stamp) in other.properties.items():
            current = properties.get(key)
            if current is None or stamp > current[1]:
                properties[key] = (value, stamp)


class EventProperties(Mapping[PropertyKey, tuple[Any, Stamp]]):
    """The properties one event set, all with its stamp: a flat tuple (key, value, key,
    value...) rather than a dict of (value, stamp) pairs, about 200 bytes less a member."""

    __slots__ = ("_flat", "_stamp")

    def __init__(self, flat: tuple[Any, ...], stamp: Stamp) -> None:
        self._flat = flat
        self._stamp = stamp

    @property
    def flat(self) -> tuple[Any, ...]:
        """(key, value, key, value...)"""
        return self._flat

    @property
    def stamp(self) -> Stamp:
        return self._stamp

    def __getitem__(self, key: PropertyKey) -> tuple[Any, Stamp]:
        found = self.get(key)
        if found is None:
            raise KeyError(key)
        return found

    def get(self, key: PropertyKey, default: Any = None) -> Any:
        flat = self._flat
        for index in range(0, len(flat), 2):
            if flat[index] == key:
                return (flat[index + 1], self._stamp)
        return default

    def __iter__(self) -> Iterator[PropertyKey]:
        return iter(self._flat[0::2])

    def __len__(self) -> int:
        return len(self._flat) // 2


class Member:
    """The snapshots of one member in one cohort, oldest stamp first.

    Snapshots visible before the compaction horizon are folded into the first one, so a
    member costs one snapshot plus its events since the oldest sync still needed.
    """

    __slots__ = ("history", "bundle")

    def __init__(self, history: Sequence[Snapshot] = ()) -> None:
        self.history: tuple[Snapshot, ...] = tuple(history)
        """A tuple, not a list: 40 bytes less a member (most have one snapshot)."""
        self.bundle: int | None = None
        """Which journal bundle holds its latest written version (`journal.Journal`)."""

    def apply(self, snapshot: Snapshot, horizon: int | None) -> bool:
        """Add one event's snapshot; False when that exact event was applied already."""
        if any(item.stamp == snapshot.stamp for item in self.history):
            return False
        if not self.history or self.history[-1].stamp < snapshot.stamp:
            self.history = (*self.history, snapshot)
        else:
            self.history = tuple(sorted((*self.history, snapshot), key=lambda item: item.stamp))
        if horizon is not None:
            self.compact(horizon)
        return True

    def compact(self, horizon: int) -> None:
        """Fold every snapshot visible before `horizon` into one: no sync at or after the
        horizon can tell them apart."""
        old = [item for item in self.history if item.visible < horizon]
        if len(old) < 2:
            return
        folded = old[0].copy()
        for item in old[1:]:
            folded.absorb(item)
        self.history = tuple(
            sorted(
                [folded, *(item for item in self.history if item.visible >= horizon)],
                key=lambda item: item.stamp,
            )
        )

    def view_at(self, sync_time: int) -> Snapshot | None:
        """The member as a sync at `sync_time` sees it, or None if nothing is visible yet."""
        history = self.history
        if len(history) == 1:  # the common case, kept cheap: a flush asks every member
            only = history[0]
            return only if only.visible < sync_time else None
        visible = [item for item in history if item.visible < sync_time]
        if not visible:
            return None
        if len(visible) == 1:
            return visible[0]
        view = visible[0].copy()
        for item in visible[1:]:
            view.absorb(item)
        return view

    def present_at(self, sync_time: int) -> bool:
        view = self.view_at(sync_time)
        return view is not None and view.enter


_PROPERTY_KEYS: dict[PropertyKey, PropertyKey] = {}


def shared(name: str, app_id: int | None) -> PropertyKey:
    """The key of a property: one object per (property, app) for all members."""
    key = (name, app_id)
    if len(_PROPERTY_KEYS) >= 10_000:  # many distinct names (hostile input): share no more
        return _PROPERTY_KEYS.get(key, key)
    return _PROPERTY_KEYS.setdefault(key, key)


def _interned(value: Any) -> Any:
    """Short text values (plans, countries...) repeat across members: keep one copy."""
    if type(value) is str and len(value) <= 64:
        return sys.intern(value)
    return value


@dataclass(frozen=True, slots=True)
class CohortDiff:
    """The rows of one sync: (amplitude id, member view) sorted by amplitude id."""

    entering: list[tuple[int, Snapshot]]
    exiting: list[tuple[int, Snapshot]]
    existing: list[tuple[int, Snapshot]]

    def all_rows(self) -> Iterator[tuple[int, Snapshot]]:
        yield from self.existing
        yield from self.exiting


def diff_cohort(
    members: Mapping[int, Member],
    sync_time: int,
    previous: int | None,
    only: Iterable[int] | None = None,
) -> CohortDiff:
    """entering = present(T) - present(T_prev), exiting = present(T_prev) - present(T),
    existing = present(T); `previous=None` is a cohort's first sync (nobody was present).
    `only` (ascending) limits the diff to those members."""
    entering: list[tuple[int, Snapshot]] = []
    exiting: list[tuple[int, Snapshot]] = []
    existing: list[tuple[int, Snapshot]] = []
    if only is None:
        pairs: Iterable[tuple[int, Member]] = sorted(members.items(), key=itemgetter(0))
    else:
        pairs = ((amplitude_id, members[amplitude_id]) for amplitude_id in only)
    for amplitude_id, member in pairs:
        if len(member.history) == 1:  # fast path: one snapshot answers both questions
            now = member.history[0]
            if now.visible >= sync_time:
                continue
            present_before = previous is not None and now.visible < previous and now.enter
        else:
            seen = member.view_at(sync_time)
            if seen is None:
                continue
            now = seen
            present_before = previous is not None and member.present_at(previous)
        if now.enter:
            existing.append((amplitude_id, now))
            if not present_before:
                entering.append((amplitude_id, now))
        elif present_before:
            exiting.append((amplitude_id, now))
    return CohortDiff(entering, exiting, existing)
