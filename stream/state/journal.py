"""The membership journal: changed members written to the table in bundles, not a key each.

Every membership change used to be one table write, so one changelog record through Faust's
producer: that cost more than the framework's whole per-message path (BENCHMARKS.md). The
journal of a partition collects the members changed since its last flush and writes them
together, each member's whole history once, under one key `b␟{partition}␟{seq}` (an Arrow
record batch, `bundles.py`). Loading reads a partition's bundles as columns and keeps each
member's version of the highest `seq`.

The table keeps at most two versions per member: a bundle all of whose members were written
again later is deleted (a tombstone on the compacted changelog), and a bundle left holding
fewer than half of the members it was written with has those copied forward into a new
bundle, then is deleted. A copy moves less than half a bundle, so each version is written
less than twice on average.

A forgotten member (`retention.py`) leaves the table once no older bundle may still hold a
version of it: until then its last version (an exit) stays, so a restart reads it absent and
forgets it again, instead of finding an older version, present, in another bundle. Each
bundle knows the older bundles that may hold versions of its members (`_shadows`, a
superset); a bundle left holding only forgotten and rewritten members is pinned until all of
those are gone, then deleted.

Durability is the caller's to honour: records whose changes are still in the journal
(`dirty`) are not safe to acknowledge until `flush` has written them. Once a member is
written, the journal freezes it (`MemberIndex.freeze`): nothing holds its objects to change
them any more, so the partition may pack it (`packed.py`).
"""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping
from typing import Any, Protocol

from stream.domain.membership import Member
from stream.state import codec
from stream.state.bundles import BundleRows, bundle_members, encode_members, read_bundles

__all__ = ["Journal", "MemberIndex", "FLUSH_MEMBERS", "MAX_BUNDLE_BYTES", "OWNER_BLOCK"]

#: Flush once this many members are waiting (the caller's policy; one batch message of
#: Amplitude's form is 1,000 members).
FLUSH_MEMBERS = 1000
#: A bundle's encoded size limit: well under Kafka's default 1 MB message limit.
MAX_BUNDLE_BYTES = 512 * 1024
#: A journal loaded from the table numbers its bundles from the next multiple of this: a
#: previous owner still writing (a worker that lost its partitions without knowing it yet)
#: goes on in its own block, so it never replaces a bundle of the new owner, whose bundles
#: also sort after its own.
OWNER_BLOCK = 1 << 20
#: The fewest forgotten members tracked before the first sweep of those whose bundle is gone.
STALE_SWEEP_MIN = 4096

MemberKey = tuple[str, int]
"""(cohort id, amplitude id)"""


class MemberIndex(Protocol):
    """The partition's members, as the journal reads them (see `packed.Members`)."""

    def hot(self, cohort_id: str, amplitude_id: int) -> Member | None:
        """The member as objects, to change."""

    def bundle_of(self, cohort_id: str, amplitude_id: int) -> int | None: ...

    def freeze(self, cohort_id: str, amplitude_id: int, packed: bytes | None = None) -> None:
        """The member is written: its objects may be packed (`packed`: its bytes as its
        bundle holds them, None: pack it if it packs)."""


class Journal:
    """One partition's bundles in `store`; `members` finds a member's current state and
    freezes it once written."""

    def __init__(
        self,
        partition: int,
        store: MutableMapping[str, Any],
        members: MemberIndex,
        *,
        enabled: bool = True,
        forgetting: bool = False,
        stale_sweep_min: int = STALE_SWEEP_MIN,
    ) -> None:
        """`enabled=False`: a journal that writes nothing (state kept in memory only); it
        still freezes the members changed since its last flush. `forgetting`: the partition
        forgets members (`forget`), so the journal tracks which bundles shadow which;
        `stale_sweep_min`: see `STALE_SWEEP_MIN`."""
        self.enabled = enabled
        self.forgetting = forgetting
        self.partition = partition
        self.store = store
        self._members = members
        self._dirty: dict[MemberKey, Member] = {}
        self._live: dict[int, int] = {}
        """Per bundle: how many members have their latest version in it."""
        self._size: dict[int, int] = {}
        """Per bundle: how many members it was written with."""
        self._forgotten: dict[int, int] = {}
        """Per bundle (when not 0): how many forgotten members have their last version in it."""
        self._shadows: dict[int, set[int]] = {}
        """Per bundle: older bundles that may hold versions of its members (when forgetting)."""
        self._pinned: set[int] = set()
        """Bundles with no live member kept for their forgotten ones (see the module doc)."""
        self._released: set[int] = set()
        """Bundles that lost members to forgetting since the last flush (to compact)."""
        self._stale: dict[str, dict[int, int]] = {}
        """Per cohort, forgotten members whose last version may still be in a bundle: that
        bundle. A member that comes back starts afresh (no bundle of its own), so this is
        what tells its new bundle that an older version of it exists. Nested rather than
        keyed by (cohort, amplitude id): a day of churn is 100,000s of entries, and a key
        tuple each doubled their cost."""
        self._stale_count = 0
        self._stale_sweep_min = stale_sweep_min
        self._stale_sweep_at = stale_sweep_min
        """`_stale`'s size at which its entries of deleted bundles are swept out: they do no
        harm (`_shadow` keeps only bundles that exist), so they go in bulk, not one by one
        with a per-bundle index that cost more memory than the entries."""
        self._next_seq = 0
        self._deferred: list[str] = []
        """Keys of bundles `load` found superseded: deleted at the next flush, so that a
        load only reads the store (it may run in a thread, off the event loop)."""

    @property
    def dirty(self) -> int:
        """How many changed members wait for the next flush."""
        return len(self._dirty)

    @property
    def durable(self) -> bool:
        """Whether every change is written (always, for a journal that writes nothing)."""
        return not self._dirty or not self.enabled

    @property
    def pinned(self) -> int:
        """How many bundles are kept only for their forgotten members."""
        return len(self._pinned)

    def touch(self, cohort_id: str, amplitude_id: int, member: Member) -> None:
        self._dirty[(cohort_id, amplitude_id)] = member

    def forget(self, forgotten: Iterable[tuple[MemberKey, int | None]]) -> None:
        """The partition forgot these members, each with the bundle of its last version
        (None: never written). Flush first: a member still waiting would be written after
        it was forgotten. The bundles are compacted or deleted at the next flush; while one
        stays, a member that comes back is written with it as a shadow."""
        if self.enabled and not self.forgetting:
            raise RuntimeError("a journal made without forgetting=True cannot forget")
        if self._dirty and self.enabled:
            raise RuntimeError("the journal must be flushed before members are forgotten")
        for key, seq in forgotten:
            if seq is None or seq not in self._live:
                continue
            self._mark_stale(key, seq)
            self._live[seq] -= 1
            self._forgotten[seq] = self._forgotten.get(seq, 0) + 1
            self._released.add(seq)

    def flush(self) -> None:
        """Write every waiting member, then delete or compact the bundles it superseded."""
        for key in self._deferred:
            if key in self.store:
                del self.store[key]
        self._deferred = []
        if not self._dirty and not self._released:
            return
        entries, self._dirty = list(self._dirty.items()), {}
        if not self.enabled:
            for (cohort_id, amplitude_id), _ in entries:
                self._members.freeze(cohort_id, amplitude_id)
            return
        released, self._released = self._released, set()
        for seq in [seq for seq in released if self._live.get(seq) == 0]:
            self._retire(seq)
            released.discard(seq)
        if entries:
            self._write(entries, released)
        self._compact(released)
        self._unpin()
        if self._stale_count >= self._stale_sweep_at:
            self._sweep_stale()

    def load(self, bundles: Iterable[tuple[int, bytes]]) -> BundleRows:
        """Read the partition's bundles: each member's last version (`read_bundles`).
        Writes nothing: the bundles it finds superseded are deleted at the next `flush`."""
        rows = read_bundles(list(bundles))
        for seq in sorted(rows.size):
            self._size[seq] = rows.size[seq]
            self._live[seq] = rows.live[seq]
            self._next_seq = (seq // OWNER_BLOCK + 1) * OWNER_BLOCK
            self._shadow(seq, rows.shadows.get(seq, set()))
        for seq in [seq for seq, live in self._live.items() if live == 0]:
            self._delete(seq, deferred=True)
        return rows

    def _write(self, entries: list[tuple[MemberKey, Member]], released: set[int]) -> None:
        seq = self._next_seq
        value, packed = encode_members(
            ((cohort, amplitude_id, member) for (cohort, amplitude_id), member in entries), seq
        )
        if len(value) > MAX_BUNDLE_BYTES and len(entries) > 1:
            half = len(entries) // 2
            self._write(entries[:half], released)
            self._write(entries[half:], released)
            return
        self._next_seq += 1
        self.store[codec.bundle_key(self.partition, seq)] = value
        self._size[seq] = self._live[seq] = len(entries)
        if self.forgetting:
            older = {m.bundle for _, m in entries if m.bundle is not None}
            older |= {old for key, _ in entries if (old := self._stale_seq(key)) is not None}
            self._shadow(seq, older)
        for ((cohort_id, amplitude_id), member), as_bytes in zip(entries, packed, strict=True):
            if member.bundle is not None:
                self._release(member.bundle, released)
            member.bundle = seq
            self._members.freeze(cohort_id, amplitude_id, as_bytes)

    def _shadow(self, seq: int, older: set[int]) -> None:
        """Record that `older` bundles (and whatever they shadow) may hold versions of the
        members of bundle `seq`."""
        if not self.forgetting or not older:
            return
        shadows = set(older)
        for bundle in older:
            shadows |= self._shadows.get(bundle, set())
        self._shadows[seq] = {bundle for bundle in shadows if bundle in self._size}

    def _release(self, seq: int, released: set[int]) -> None:
        live = self._live[seq] - 1
        if live == 0:
            self._live[seq] = 0
            self._retire(seq)
            released.discard(seq)
        else:
            self._live[seq] = live
            released.add(seq)

    def _compact(self, released: set[int]) -> None:
        """Copy the live members of each bundle left under half full into a new bundle."""
        for seq in sorted(released):
            if seq not in self._live or self._live[seq] * 2 >= self._size[seq]:
                continue
            value = self.store.get(codec.bundle_key(self.partition, seq))
            if value is None:
                continue
            carried: list[tuple[MemberKey, Member]] = []
            for cohort_id, amplitude_id in bundle_members(value):
                if self._members.bundle_of(cohort_id, amplitude_id) == seq:
                    member = self._members.hot(cohort_id, amplitude_id)
                    assert member is not None
                    carried.append(((cohort_id, amplitude_id), member))
            if carried:
                self._write(carried, set())  # moves every live member: deleted, or pinned

    def _retire(self, seq: int) -> None:
        """Bundle `seq` has no live member: delete it, or pin it while its forgotten members
        may have older versions elsewhere."""
        if self._forgotten.get(seq):
            self._pinned.add(seq)
        else:
            self._delete(seq)

    def _unpin(self) -> None:
        """Delete the pinned bundles no remaining bundle shadows, oldest first (deleting one
        may free a later one)."""
        for seq in sorted(self._pinned):
            shadows = self._shadows.get(seq, set())
            if not any(bundle in self._size for bundle in shadows):
                self._delete(seq)

    def _mark_stale(self, key: MemberKey, seq: int) -> None:
        cohort_id, amplitude_id = key
        members = self._stale.setdefault(cohort_id, {})
        if amplitude_id not in members:
            self._stale_count += 1
        members[amplitude_id] = seq

    def _stale_seq(self, key: MemberKey) -> int | None:
        members = self._stale.get(key[0])
        return None if members is None else members.get(key[1])

    def _sweep_stale(self) -> None:
        """Drop the forgotten members whose last bundle is gone; sweep again at twice what is
        left, so each entry is looked at a bounded number of times."""
        swept = {
            cohort_id: {member: seq for member, seq in members.items() if seq in self._size}
            for cohort_id, members in self._stale.items()
        }
        self._stale = {cohort_id: members for cohort_id, members in swept.items() if members}
        self._stale_count = sum(len(members) for members in self._stale.values())
        self._stale_sweep_at = max(self._stale_sweep_min, 2 * self._stale_count)

    def _delete(self, seq: int, *, deferred: bool = False) -> None:
        del self._live[seq]
        del self._size[seq]
        self._forgotten.pop(seq, None)
        self._shadows.pop(seq, None)
        self._pinned.discard(seq)
        key = codec.bundle_key(self.partition, seq)
        if deferred:
            self._deferred.append(key)
        elif key in self.store:
            del self.store[key]
