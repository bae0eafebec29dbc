"""The membership journal: members written in bundles, replayed in order on load, the table
kept near one version per member."""

from hashlib import sha256
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from stream.domain.membership import Member, Snapshot
from stream.state import codec
from stream.state.bundles import bundle_members
from stream.state.journal import MAX_BUNDLE_BYTES, OWNER_BLOCK, Journal

H = 3_600_000


def member(*versions: int, plan: str = "pro") -> Member:
    result = Member()
    for version in versions:
        snapshot = Snapshot.of_event(
            (version, version, 0), version, True, f"u{version}", {"plan": plan}, None
        )
        result.apply(snapshot, None)
    return result


class Partition:
    """Current members and a journal over a dict store, as the processor keeps them."""

    def __init__(self, store: dict[str, Any] | None = None, *, sweep_min: int = 4096) -> None:
        self.store: dict[str, Any] = {} if store is None else store
        self.members: dict[tuple[str, int], Member] = {}
        self.sweep_min = sweep_min
        self.journal = Journal(
            0, self.store, _Index(self.members), forgetting=True, stale_sweep_min=sweep_min
        )
        self.forgotten: dict[tuple[str, int], list[Any]] = {}
        """Each forgotten member's last history (a member who came back is not here)."""

    def change(self, cohort: str, amplitude_id: int, version: int) -> None:
        self.forgotten.pop((cohort, amplitude_id), None)
        current = self.members.setdefault((cohort, amplitude_id), Member())
        current.apply(
            Snapshot.of_event((version, version, 0), version, True, None, None, None), None
        )
        self.journal.touch(cohort, amplitude_id, current)

    def forget(self, cohort: str, amplitude_id: int) -> None:
        self.journal.flush()
        forgotten = self.members.pop((cohort, amplitude_id))
        self.forgotten[(cohort, amplitude_id)] = [s.stamp for s in forgotten.history]
        self.journal.forget([((cohort, amplitude_id), forgotten.bundle)])

    def restarted(self) -> "Partition":
        again = Partition(self.store, sweep_min=self.sweep_min)
        for cohort, amplitude_id, loaded in again.journal.load(bundles(self.store)).members():
            again.members[(cohort, amplitude_id)] = loaded
        return again

    def stored_versions(self) -> int:
        return sum(len(bundle_members(value)) for _, value in bundles(self.store))


class _Index:
    """`journal.MemberIndex` over plain objects (packing has its own tests)."""

    def __init__(self, members: dict[tuple[str, int], Member]) -> None:
        self.members = members

    def hot(self, cohort_id: str, amplitude_id: int) -> Member | None:
        return self.members.get((cohort_id, amplitude_id))

    def bundle_of(self, cohort_id: str, amplitude_id: int) -> int | None:
        member = self.members.get((cohort_id, amplitude_id))
        return None if member is None else member.bundle

    def freeze(self, cohort_id: str, amplitude_id: int, packed: bytes | None = None) -> None:
        pass


def bundles(store: dict[str, Any]) -> list[tuple[int, bytes]]:
    return [
        (int(rest[0]), value)
        for key, value in store.items()
        for kind, _, rest in [codec.parse_key(key)]
        if kind == "b"
    ]


def histories(members: dict[tuple[str, int], Member]) -> dict[tuple[str, int], list[Any]]:
    return {key: [s.stamp for s in m.history] for key, m in members.items()}


def test_changed_members_wait_for_a_flush_then_share_one_key() -> None:
    partition = Partition()
    for amplitude_id in range(50):
        partition.change("c1", amplitude_id, 1)
    assert partition.journal.dirty == 50
    assert partition.store == {}
    partition.journal.flush()
    assert partition.journal.dirty == 0
    assert list(partition.store) == [codec.bundle_key(0, 0)]
    assert histories(partition.restarted().members) == histories(partition.members)


def test_the_latest_version_wins_on_load() -> None:
    partition = Partition()
    partition.change("c1", 1, 1)
    partition.change("c1", 2, 1)
    partition.journal.flush()
    partition.change("c1", 1, 2)
    partition.journal.flush()
    restored = partition.restarted().members
    assert [s.stamp for s in restored[("c1", 1)].history] == [(1, 1, 0), (2, 2, 0)]


def test_a_bundle_whose_members_were_all_written_again_is_deleted() -> None:
    partition = Partition()
    partition.change("c1", 1, 1)
    partition.journal.flush()
    partition.change("c1", 1, 2)
    partition.journal.flush()
    assert list(partition.store) == [codec.bundle_key(0, 1)]


def test_a_bundle_left_under_half_full_is_copied_forward_and_deleted() -> None:
    partition = Partition()
    for amplitude_id in range(10):
        partition.change("c1", amplitude_id, 1)
    partition.journal.flush()
    for amplitude_id in range(6):  # 4 of 10 left in bundle 0
        partition.change("c1", amplitude_id, 2)
    partition.journal.flush()
    assert codec.bundle_key(0, 0) not in partition.store
    assert partition.stored_versions() == 10
    assert histories(partition.restarted().members) == histories(partition.members)


def test_a_big_flush_is_split_under_the_message_limit() -> None:
    partition = Partition()
    for amplitude_id in range(600):  # 2.6 KB of hex digits each: ~0.8 MB compressed
        wide = {f"p{n}": sha256(f"{amplitude_id}/{n}".encode()).hexdigest() for n in range(40)}
        current = partition.members.setdefault(("c1", amplitude_id), Member())
        current.apply(Snapshot.of_event((1, 1, 0), 1, True, None, wide, None), None)
        partition.journal.touch("c1", amplitude_id, current)
    partition.journal.flush()
    sizes = [len(value) for value in partition.store.values()]
    assert len(sizes) > 1 and max(sizes) <= MAX_BUNDLE_BYTES
    assert histories(partition.restarted().members) == histories(partition.members)


changes = st.lists(
    st.one_of(
        st.tuples(st.sampled_from(["c1", "c2"]), st.integers(0, 30)),
        st.just(None),  # a flush
    ),
    max_size=300,
)


@settings(max_examples=150, deadline=None)
@given(changes)
def test_any_history_of_changes_and_flushes_restores_the_flushed_state(
    steps: list[tuple[str, int] | None],
) -> None:
    partition = Partition()
    for version, step in enumerate(steps):
        if step is None:
            partition.journal.flush()
        else:
            partition.change(*step, version)
    partition.journal.flush()
    restored = partition.restarted()
    assert histories(restored.members) == histories(partition.members)
    assert partition.stored_versions() <= 2 * len(partition.members) + 1
    restored.change("c1", 99, 10_000)  # a restarted journal goes on where it stopped
    restored.journal.flush()
    assert histories(restored.restarted().members) == histories(restored.members)


def test_a_forgotten_member_leaves_the_table_once_no_older_bundle_holds_it() -> None:
    partition = Partition()
    for amplitude_id in range(4):
        partition.change("c1", amplitude_id, 1)
    partition.journal.flush()  # bundle 0: four members
    partition.change("c1", 0, 2)
    partition.forget("c1", 0)  # its last version in bundle 1; bundle 0 holds an older one
    partition.journal.flush()
    assert partition.journal.pinned == 1
    assert partition.restarted().members.keys() == {("c1", 0), ("c1", 1), ("c1", 2), ("c1", 3)}
    for amplitude_id in (1, 2):  # bundle 0 falls under half full: copied forward, deleted
        partition.change("c1", amplitude_id, 3)
    partition.journal.flush()
    assert partition.journal.pinned == 0
    assert partition.restarted().members.keys() == {("c1", 1), ("c1", 2), ("c1", 3)}


def test_a_journal_forgets_only_what_is_written() -> None:
    partition = Partition()
    partition.change("c1", 1, 1)
    with pytest.raises(RuntimeError, match="flushed before"):
        partition.journal.forget([(("c1", 1), None)])


steps_with_forgets = st.lists(
    st.one_of(
        st.tuples(
            st.sampled_from(["change", "change", "forget"]),
            st.sampled_from(["c1", "c2"]),
            st.integers(0, 6),  # few members: each changed and forgotten often
        ),
        st.just(None),  # a flush
    ),
    max_size=80,
)


KEPT_OLDER = [("change", "c1", 0), ("change", "c1", 1), None, ("change", "c1", 0)]
"""Member 0's first version stays in bundle 0, which member 1 keeps half full."""


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(steps_with_forgets, st.booleans(), st.sampled_from([1, 4096]))
@example([*KEPT_OLDER, ("forget", "c1", 0)], False, 4096)
@example([*KEPT_OLDER, None, ("change", "c1", 0), ("forget", "c1", 0)], False, 4096)  # bundle 1
@example(  # forgotten, back, forgotten again, while its first bundle lives on for another
    [
        ("change", "c1", 0),
        ("change", "c1", 2),
        ("forget", "c1", 2),
        ("change", "c1", 2),
        ("forget", "c1", 2),
    ],
    False,
    4096,
)
@example(  # the same with a flush, so a sweep, while it is away: its entry must stay
    [
        ("change", "c1", 0),
        ("change", "c1", 2),
        ("forget", "c1", 2),
        None,
        ("change", "c1", 2),
        ("forget", "c1", 2),
    ],
    False,
    1,
)
def test_a_forgotten_member_never_comes_back_older_and_forgetting_all_empties_the_table(
    steps: list[tuple[str, str, int] | None], restart_midway: bool, sweep_min: int
) -> None:
    """`sweep_min` 1: the forgotten members of deleted bundles are swept at every flush."""
    partition = Partition(sweep_min=sweep_min)
    for version, step in enumerate(steps):
        if restart_midway and version == len(steps) // 2:
            partition.journal.flush()
            forgotten = partition.forgotten
            partition = partition.restarted()
            back = {k: v for k, v in histories(partition.members).items() if k in forgotten}
            assert back == {k: forgotten[k] for k in back}  # each as it was forgotten
            for key in back:  # the loader forgets them again
                partition.forget(*key)
        if step is None:
            partition.journal.flush()
        elif step[0] == "forget":
            if (step[1], step[2]) in partition.members:
                partition.forget(step[1], step[2])
        else:
            partition.change(step[1], step[2], version)
    partition.journal.flush()
    restored = histories(partition.restarted().members)
    assert {k: v for k, v in restored.items() if k in partition.members} == histories(
        partition.members
    )
    for key, history in restored.items():
        if key not in partition.members:
            assert history == partition.forgotten[key]  # its exit, never an older version
    for key in list(partition.members):
        partition.forget(*key)
    partition.journal.flush()
    assert bundles(partition.store) == []


def test_values_orjson_refuses_are_written_too() -> None:
    partition = Partition()
    current = partition.members.setdefault(("c1", 1), Member())
    huge = {"big": 2**70, "text": "ünï"}
    current.apply(Snapshot.of_event((1, 1, 0), 1, True, None, huge, None), None)
    partition.journal.touch("c1", 1, current)
    partition.journal.flush()
    view = partition.restarted().members[("c1", 1)].view_at(2)
    assert view is not None
    assert view.properties[("big", None)][0] == 2**70


def test_a_new_owner_numbers_its_bundles_after_any_the_last_owner_may_still_write() -> None:
    old_owner = Partition()
    old_owner.change("c1", 1, 1)
    old_owner.journal.flush()
    new_owner = old_owner.restarted()  # loads bundle 0
    old_owner.change("c1", 2, 2)  # the old owner, not yet told, writes bundle 1
    old_owner.journal.flush()
    new_owner.change("c1", 1, 3)
    new_owner.journal.flush()
    assert sorted(bundles(old_owner.store))[-1][0] == OWNER_BLOCK  # no key written twice
    assert codec.bundle_key(0, 1) in old_owner.store


class _WriteRecordingStore(dict[str, Any]):
    """A dict that records every write and delete."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.writes: list[str] = []

    def __setitem__(self, key: str, value: Any) -> None:
        self.writes.append(key)
        super().__setitem__(key, value)

    def __delitem__(self, key: str) -> None:
        self.writes.append(key)
        super().__delitem__(key)


def test_a_load_writes_nothing_and_the_next_flush_deletes_the_bundles_it_found_superseded() -> None:
    """A load may run in a thread while the store changes on the event loop."""
    partition = Partition()
    partition.change("c1", 0, 1)
    partition.journal.flush()
    superseded = dict(partition.store)
    partition.change("c1", 0, 2)
    partition.journal.flush()
    store = _WriteRecordingStore({**partition.store, **superseded})  # its delete was lost
    assert len(bundles(store)) == 2
    journal = Journal(0, store, _Index({}), forgetting=True)
    loaded = list(journal.load(bundles(store)).members())
    assert [member.history[-1].stamp for _, _, member in loaded] == [(2, 2, 0)]
    assert store.writes == []
    journal.flush()
    assert store.writes == list(superseded) and len(bundles(store)) == 1
