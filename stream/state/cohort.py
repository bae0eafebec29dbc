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
    changes: array[int] = field(default_factory=lambda: array("q"))
    """(amplitude id, visible) of each change since the horizon, flat: 16 bytes a change."""
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
        self._note_packed(amplitude_ids, visible, time, enter)

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
    ) -> None:
        """Each member's change (None: not noted), and its exit when it is out."""
        if visible is not None:
            pairs = np.empty(2 * len(amplitude_ids), dtype=np.int64)
            pairs[0::2] = amplitude_ids
            pairs[1::2] = visible
            self.changes.frombytes(pairs.tobytes())
        if self.exits is not None:
            exited = ~enter
            for exit_time, amplitude_id in zip(
                time[exited].tolist(), amplitude_ids[exited].tolist(), strict=True
            ):
                self.exits.add(exit_time, amplitude_id)

    def restore(self, amplitude_id: int, member: Member) -> None:
        """Put back a member read from the store; each of its snapshots counts as a change
        (the next prune drops those before the horizon)."""
        self.writable()
        self.members.add(amplitude_id, member)
        for snapshot in member.history:
            self.changes.append(amplitude_id)
            self.changes.append(snapshot.visible)
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

    def changed_since(self, time: int) -> list[int]:
        """The members with a change visible at or after `time`, ascending: the only ones
        whose view can differ between a sync at `time` and any later one."""
        pairs = _pairs(self.changes)
        return np.unique(pairs[pairs[:, 1] >= time, 0]).tolist()

    def drop_changes_before(self, horizon: int) -> None:
        self.writable()
        pairs = _pairs(self.changes)
        if len(pairs) and pairs[:, 1].min() < horizon:
            kept = pairs[pairs[:, 1] >= horizon]
            self.changes = array("q", kept.tobytes())


def _pairs(changes: array[int]) -> np.ndarray:
    """The (amplitude id, visible) pairs of a cohort's changes, as rows (a view)."""
    return np.frombuffer(changes, dtype=np.int64).reshape(-1, 2)
