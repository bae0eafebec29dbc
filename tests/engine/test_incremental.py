"""Syncs built from the previous sync's rows and the members that changed give the same bytes
as syncs built from every member."""

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.config import settings_from_mapping
from stream.domain.membership import Member, Snapshot, diff_cohort
from stream.domain.partitioner import partition_for
from stream.engine.processor import Processor
from stream.formats.csvfile import Rows
from stream.output.sync import InputPosition, SyncOutput, SyncSpec, build_next_sync, build_sync
from tests.scenario import JAN5, MIN, iso


def rows(ids: list[int]) -> Rows:
    return Rows.of(ids, pa.array([f"{i},line\n" for i in ids], type=pa.string()))


def lines(of: Rows) -> list[str]:
    return of.lines.to_pylist()


sorted_ids = st.lists(st.integers(0, 60), unique=True).map(sorted)


@given(sorted_ids, sorted_ids, sorted_ids, st.booleans())
def test_replacing_rows_keeps_the_others_and_the_id_order(
    kept: list[int], drop: list[int], add: list[int], sort: bool
) -> None:
    add = [i for i in add if i in drop or i not in kept]  # ids stay unique
    before = rows(kept)
    added = Rows.of(add, pa.array([f"{i},new\n" for i in add], type=pa.string()))
    after = before._replaced_by_sorting(drop, added) if sort else before.replaced(drop, added)
    expected = sorted(
        [(i, f"{i},line\n") for i in kept if i not in drop] + [(i, f"{i},new\n") for i in add]
    )
    assert after.ids.to_pylist() == [i for i, _ in expected]
    assert lines(after) == [line for _, line in expected]


SETTINGS = settings_from_mapping(
    {
        "project_id": 7,
        "kafka": {"partitions": 1, "idle_timeout": "off", "allowed_lateness": "10m"},
        "destinations": [
            {"name": "d", "url": "file:///out", "user_property": "plan"},
            {"name": "g", "url": "file:///guarded", "csv_formula_guard": True},
        ],
        "syncs": [
            {"cohort": "*", "destination": "d", "cadence": "hourly"},
            {"cohort": "c1", "destination": "g", "cadence": "15m", "routing_key": "q"},
        ],
    }
)

events = st.lists(
    st.fixed_dictionaries(
        {
            "cohort_id": st.sampled_from(["c1", "c2"]),
            "amplitude_id": st.integers(0, 12),
            "action": st.sampled_from(["enter", "enter", "exit"]),
            "time": st.one_of(
                st.integers(0, 5 * 60).map(lambda minute: iso(JAN5 + minute * MIN)),
                # in ms, around the minutes: within the second before a sync time, a change
                # is noted as of the sync's own second (`CohortState.changed_at`)
                st.tuples(st.integers(0, 5 * 60), st.sampled_from([-999, -1, 1, 999])).map(
                    lambda at: JAN5 + at[0] * MIN + at[1]
                ),
            ),
            "user_properties": st.one_of(
                st.none(),
                st.fixed_dictionaries(
                    {"plan": st.sampled_from(["pro", "a,b", "=1+1", 'say "hi"', None, 3])}
                ),
            ),
            "user_id": st.sampled_from([None, "u", "-x"]),
        },
        optional={"app_id": st.integers(1, 2)},
    ),
    max_size=60,
)


class Collect:
    def __init__(self) -> None:
        self.outputs: list[SyncOutput] = []

    async def dead_letter(self, **_: Any) -> None:
        raise AssertionError("generated events are valid")

    async def forward(self, **_: Any) -> None:
        raise AssertionError("one partition")

    async def write(self, build: Callable[[], SyncOutput], written: Callable[[], None]) -> None:
        self.outputs.append(build())
        written()


def files(
    records: list[bytes], *, incremental: bool, journal: bool = True
) -> list[tuple[str, bytes]]:
    outbox = Collect()
    processor = Processor(
        SETTINGS, {}, outbox, partition_for, incremental=incremental, journal=journal
    )

    async def run() -> None:
        for offset, record in enumerate(records):
            key = json.loads(record)["cohort_id"].encode()
            await processor.on_record(SETTINGS.kafka.topic, 0, offset, key, record)
        await processor.on_tick(0, JAN5 + 7 * 60 * MIN)

    asyncio.run(run())
    return [(f.key, f.data) for o in outbox.outputs for f in (*o.csv_files, o.manifest)]


@settings(max_examples=150, deadline=None)
@given(events)
def test_syncs_built_from_the_last_rows_equal_syncs_built_from_every_member(
    documents: list[dict[str, Any]],
) -> None:
    records = [json.dumps(document).encode() for document in documents]
    assert files(records, incremental=True) == files(records, incremental=False)


batch_messages = st.lists(
    st.fixed_dictionaries(
        {
            "cohort_id": st.sampled_from(["c1", "c2"]),
            "in_cohort": st.booleans(),
            "computed_time": st.integers(0, 5 * 60).map(
                lambda minute: (JAN5 + minute * MIN) // 1000
            ),
            "users": st.lists(
                st.fixed_dictionaries(
                    {
                        "amplitude_id": st.integers(0, 80),
                        "user_id": st.sampled_from([None, "u", "-x"]),
                        "user_properties": st.one_of(
                            st.none(), st.fixed_dictionaries({"plan": st.sampled_from(["pro", 3])})
                        ),
                    }
                ),
                min_size=30,
                max_size=40,
            ),
        }
    ),
    max_size=8,
)


@settings(max_examples=60, deadline=None)
@given(batch_messages)
def test_a_replay_that_packs_new_members_in_bulk_writes_the_workers_bytes(
    documents: list[dict[str, Any]],
) -> None:
    """A replay journals nothing, so a batch message's new members are packed in bulk."""
    records = [json.dumps(document).encode() for document in documents]
    assert files(records, incremental=True, journal=False) == files(records, incremental=True)


def member(enter: bool, at: int, plan: str) -> Member:
    result = Member()
    result.apply(Snapshot.of_event((at, at, 0), at, enter, f"u{at}", {"plan": plan}, None), None)
    return result


def test_the_next_sync_formats_only_the_members_that_changed() -> None:
    destination = SETTINGS.destinations["d"]
    rule = SETTINGS.syncs[0]
    members = {n: member(True, 10, "pro") for n in range(100)}

    def spec(sync_time: int) -> SyncSpec:
        return SyncSpec(
            project_id=7,
            destination=destination,
            rule=rule,
            cohort_id="c1",
            sync_time=sync_time,
            position=InputPosition("t", 0, 1),
        )

    _, first = build_sync(spec(100), None, diff_cohort(members, 100, None))
    members[5].apply(Snapshot.of_event((150, 150, 0), 150, False, None, None, None), None)
    members[7].apply(Snapshot.of_event((160, 160, 0), 160, True, None, {"plan": "x"}, None), None)
    members[200] = member(True, 170, "new")
    changed = [5, 7, 200]
    built = build_next_sync(spec(200), first, changed, diff_cohort(members, 200, 100, changed))
    whole, _ = build_sync(spec(200), 100, diff_cohort(members, 200, 100))
    assert built is not None
    assert built[0] == whole
    assert built[0].counts == {"entering": 1, "exiting": 1, "existing": 100}


def files_with_a_restart(records: list[bytes], crash_after: int) -> list[tuple[str, bytes]]:
    """As `files`, but the worker dies after `crash_after` records: a new one starts from the
    store and reads again from the first record whose changes the store did not hold."""
    outbox = Collect()
    store: dict[str, Any] = {}
    first = Processor(SETTINGS, store, outbox, partition_for)
    durable_until = 0

    async def feed(processor: Processor, start: int, stop: int) -> int:
        durable = start
        for offset in range(start, stop):
            key = json.loads(records[offset])["cohort_id"].encode()
            await processor.on_record(SETTINGS.kafka.topic, 0, offset, key, records[offset])
            if processor.durable(0):
                durable = offset + 1
        return durable

    durable_until = asyncio.run(feed(first, 0, crash_after))
    second = Processor(SETTINGS, store, outbox, partition_for)

    async def resume() -> None:
        await second.on_tick(0, None)  # loads the partition, hands pending syncs over again
        await feed(second, durable_until, len(records))
        await second.on_tick(0, JAN5 + 7 * 60 * MIN)

    asyncio.run(resume())
    return sorted({(f.key, f.data) for o in outbox.outputs for f in (*o.csv_files, o.manifest)})


@settings(max_examples=100, deadline=None)
@given(events, st.integers(0, 60))
def test_a_restart_from_the_store_gives_the_same_files(
    documents: list[dict[str, Any]], crash_after: int
) -> None:
    records = [json.dumps(document).encode() for document in documents]
    crash_after = min(crash_after, len(records))
    assert files_with_a_restart(records, crash_after) == sorted(
        set(files(records, incremental=False))
    )


def test_changes_are_kept_for_synced_cohorts_only_and_not_past_the_horizon() -> None:
    only_c1 = settings_from_mapping(
        {
            "project_id": 7,
            "kafka": {"partitions": 1, "idle_timeout": "off"},
            "destinations": [{"name": "d", "url": "file:///out"}],
            "syncs": [{"cohort": "c1", "destination": "d", "cadence": "hourly"}],
        }
    )
    processor = Processor(only_c1, {}, Collect(), partition_for)

    async def feed() -> None:
        for offset, (cohort, minute) in enumerate([("c1", 5), ("c9", 6), ("c1", 50), ("c9", 51)]):
            document = {"cohort_id": cohort, "amplitude_id": offset, "action": "enter"}
            record = json.dumps({**document, "time": iso(JAN5 + minute * MIN)}).encode()
            await processor.on_record(only_c1.kafka.topic, 0, offset, cohort.encode(), record)

    asyncio.run(feed())
    cohorts = processor.partitions[0].cohorts
    assert cohorts["c1"].changed_since(JAN5) == [0, 2]
    assert len(cohorts["c9"].changed_ids) == 0  # no rule syncs c9: nothing would prune them
    asyncio.run(processor.on_tick(0, JAN5 + 2 * 60 * MIN + 1))  # 01:00 and 02:00 decided
    assert len(cohorts["c1"].changed_ids) == 0  # both before the 02:00 horizon: pruned
