"""One cohort's state in a partition: its members, the changes a later sync must look at,
the exits that may make members forgettable, and the rows its last syncs were built from."""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from stream.domain.membership import Member
from stream.domain.retention import ExitQueue, verdict
from stream.state.members import Members

if TYPE_CHECKING:
    from stream.output.sync import SyncedRows

__all__ = ["CohortState"]


@dataclass(slots=True)
class CohortState:
    """`first_ms`: the cohort's first event time (or the emitted watermark, if later)."""

    first_ms: int
    members: Members = field(default_factory=Members)
    changed_ids: array[int] = field(default_factory=lambda: array("q"))
    """The amplitude id of each change since the horizon (8 bytes a change)."""
    changed_at: array[int] = field(default_factory=lambda: array("I"))
    """Beside each, when it became visible, in whole seconds (`_second_up`: 4 bytes a
    change, where milliseconds took 8). `changed_since` and `drop_changes_before` turn
    their time into seconds the same way, so they may keep a change from the second before
    it, never lose one from it on; a build that looks at a member that did not change
    finds nothing to write."""
    synced: dict[str, SyncedRows] = field(default_factory=dict)
    """Per rule: the existing file of its last sync built here (not persisted)."""
    exits: ExitQueue | None = None
    """The exits that may make members forgettable (None: members are kept for ever)."""
    building: int = field(default=0, compare=False)
    """Builds of its syncs in flight: they read it in a pool thread, so nothing may write
    it meanwhile (`writable` is called by every write and says so when one would)."""

    def writable(self) -> None:
        """Raise when a sync of this cohort is being built: a write now would change the
        members under the build, and its files with them."""
        if self.building:
            raise RuntimeError("a cohort was written while a sync of it was being built")

    def restore_packed(
        self,
        amplitude_ids: np.ndarray,
        packed: pa.Array,
        visible: np.ndarray,
        time: np.ndarray,
        enter: np.ndarray,
    ) -> None:
        """Put back members read from the store already packed (one snapshot each, with
        its visible time, event time and presence), as `restore` does, in bulk."""
        self.writable()
        self.members.add_packed(amplitude_ids, packed)
        self._note_packed(amplitude_ids, visible, time, enter, restored=True)

    def add_fresh(
        self,
        amplitude_ids: np.ndarray,
        packed: pa.Array,
        time: np.ndarray,
        enter: np.ndarray,
        *,
        note_change: bool,
    ) -> None:
        """Members new to the cohort, each made by one on-time event, already packed."""
        self.writable()
        self.members.add_fresh(amplitude_ids, packed)
        self._note_packed(amplitude_ids, time if note_change else None, time, enter)

    def _note_packed(
        self,
        amplitude_ids: np.ndarray,
        visible: np.ndarray | None,
        time: np.ndarray,
        enter: np.ndarray,
        *,
        restored: bool = False,
    ) -> None:
        """Each member's change (None: not noted), and its exit when it is out. `restored`:
        the members were read back from the store, in no order of their own (their exits
        are queued sorted, so the queue's `sort` after the restore has none left to do)."""
        if visible is not None:
            self.changed_ids.frombytes(amplitude_ids.astype(np.int64, copy=False).tobytes())
            self.changed_at.frombytes(_seconds_up(visible).tobytes())
        if self.exits is not None:
            exited = ~enter
            times, ids = time[exited], amplitude_ids[exited]
            if restored:
                order = np.lexsort((ids, times))  # by time, then by id, as `sort` orders
                times, ids = times[order], ids[order]
            pairs = np.empty(2 * len(times), dtype=np.int64)
            pairs[0::2], pairs[1::2] = times, ids
            self.exits.add_pairs(pairs.tobytes(), ordered=restored)

    def restore(self, amplitude_id: int, member: Member) -> None:
        """Put back a member read from the store; each of its snapshots counts as a change
        (the next prune drops those before the horizon)."""
        self.writable()
        self.members.add(amplitude_id, member)
        for snapshot in member.history:
            self.note_change(amplitude_id, snapshot.visible)
        latest = member.history[-1]
        if self.exits is not None and not latest.enter:
            self.exits.add(latest.stamp[0], amplitude_id)
        self.members.freeze(amplitude_id)

    def forget_absent(self, before: int, horizon: int) -> list[tuple[int, int | None]]:
        """Drop the members absent since an exit older than `before` that no sync from
        `horizon` on can see (`retention.verdict`): each one's amplitude id and the journal
        bundle holding its last version (None: not written)."""
        if self.exits is None:
            return []
        self.writable()
        forgotten: list[tuple[int, int | None]] = []
        members = self.members
        for amplitude_id in self.exits.take_before(before):
            member = members.get(amplitude_id)
            if member is None:  # forgotten already, by another of its exits
                continue
            decided = verdict(member, before, horizon)
            if decided == "hold":
                self.exits.held.append(amplitude_id)
            elif decided == "forget":
                forgotten.append((amplitude_id, members.bundle_of(amplitude_id)))
                members.remove(amplitude_id)
        return forgotten

    def note_change(self, amplitude_id: int, visible: int) -> None:
        """A change of the member, visible from `visible` (ms), for later syncs to look at."""
        self.changed_ids.append(amplitude_id)
        self.changed_at.append(_second_up(visible))

    def forget_changes(self) -> None:
        """Drop every change noted (for a cohort no rule syncs: nothing asks, nor prunes)."""
        self.changed_ids = array("q")
        self.changed_at = array("I")

    def changed_since(self, time: int) -> list[int]:
        """The members with a change visible at or after `time`, ascending: the only ones
        whose view can differ between a sync at `time` and any later one (and perhaps some
        whose change came in the second before it: see `changed_at`)."""
        ids, at = self._changes()
        return np.unique(ids[at >= _second_up(time)]).tolist()

    def drop_changes_before(self, horizon: int) -> None:
        """Forget the changes visible before `horizon` (those within its second stay)."""
        self.writable()
        ids, at = self._changes()
        start = _second_up(horizon)
        if len(at) and at.min() < start:
            kept = at >= start
            self.changed_ids = array("q", ids[kept].tobytes())
            self.changed_at = array("I", at[kept].tobytes())

    def _changes(self) -> tuple[np.ndarray, np.ndarray]:
        """The changes' amplitude ids and visible seconds (views)."""
        ids = np.frombuffer(self.changed_ids, dtype=np.int64)
        return ids, np.frombuffer(self.changed_at, dtype=np.uint32)


_SECONDS_MAX = 2**32 - 1


def _second_up(ms: int) -> int:
    """`_seconds_up` of one time."""
    return min(max(-(-ms // 1000), 0), _SECONDS_MAX)


def _seconds_up(ms: np.ndarray) -> np.ndarray:
    """Milliseconds as whole seconds, rounded up and held within uint32: one time never
    turns into more seconds than a later one (all `changed_at` relies on)."""
    return np.clip(-(-ms.astype(np.int64) // 1000), 0, _SECONDS_MAX).astype(np.uint32)
