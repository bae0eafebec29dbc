"""Forgetting members absent for longer than `kafka.retain_exited`: it never changes a file.

Through the processor (the pure parts: `tests/domain/test_retention.py`): a member absent for
longer than the retention leaves the state and the table, an event older than the bound is
dead-lettered as too late, and (Hypothesis) the files with forgetting are those without it
for the same input less the records refused as too late, with or without a restart.
"""

import asyncio
import json
from collections.abc import Callable
from itertools import accumulate
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from stream.config import Settings, settings_from_mapping
from stream.domain.partitioner import partition_for
from stream.engine.processor import Processor
from stream.output.sync import SyncOutput
from stream.state.bundles import bundle_members
from tests.scenario import JAN5, MIN, H, iso


def config(retain: str = "2h", lateness: str = "10m") -> Settings:
    return settings_from_mapping(
        {
            "project_id": 7,
            "kafka": {
                "partitions": 1,
                "idle_timeout": "off",
                "allowed_lateness": lateness,
                "retain_exited": retain,
            },
            "destinations": [{"name": "d", "url": "file:///out", "user_property": "plan"}],
            "syncs": [
                {"cohort": "*", "destination": "d", "cadence": "hourly"},
                {"cohort": "c1", "destination": "d", "cadence": "15m", "routing_key": "q"},
            ],
        }
    )


class Collect:
    def __init__(self) -> None:
        self.outputs: list[SyncOutput] = []
        self.dead: dict[int, str] = {}

    async def dead_letter(self, *, offset: int, reason: str, **_: Any) -> None:
        self.dead[offset] = reason

    async def forward(self, **_: Any) -> None:
        raise AssertionError("one partition")

    async def write(self, build: Callable[[], SyncOutput], written: Callable[[], None]) -> None:
        self.outputs.append(build())
        written()


class Run:
    """One processor over a dict store; `restart` replaces it by one reading that store."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store: dict[str, Any] = {}
        self.outbox = Collect()
        self.restart()

    def restart(self) -> None:
        self.processor = Processor(self.settings, self.store, self.outbox, partition_for)

    def feed(self, records: list[bytes], first_offset: int = 0) -> None:
        self.feed_at(list(enumerate(records, start=first_offset)))

    def feed_at(self, records: list[tuple[int, bytes]]) -> None:
        async def run() -> None:
            for offset, record in records:
                key = json.loads(record)["cohort_id"].encode()
                await self.processor.on_record(self.settings.kafka.topic, 0, offset, key, record)

        asyncio.run(run())

    def end(self, at: int) -> None:
        asyncio.run(self.processor.on_tick(0, at))

    def files(self) -> dict[str, bytes]:
        return {f.key: f.data for o in self.outbox.outputs for f in (*o.csv_files, o.manifest)}

    def members(self, cohort: str = "c1") -> set[int]:
        return set(self.processor.partitions[0].cohorts[cohort].members)


def record(amplitude_id: int, action: str, time: int, cohort: str = "c1") -> bytes:
    return json.dumps(
        {
            "cohort_id": cohort,
            "amplitude_id": amplitude_id,
            "user_id": f"u{amplitude_id}",
            "action": action,
            "time": iso(time),
            "user_properties": {"plan": "pro"},
        }
    ).encode()


def test_a_member_absent_longer_than_the_retention_leaves_the_state() -> None:
    run = Run(config(lateness="0s"))
    run.feed([record(1, "enter", JAN5), record(2, "enter", JAN5), record(1, "exit", JAN5 + MIN)])
    run.feed([record(2, "enter", JAN5 + 3 * H + m * MIN) for m in range(1, 3)], first_offset=3)
    assert run.members() == {2}
    assert run.processor.metrics.forgotten_members == 1
    run.processor.flush(0)
    assert 1 not in stored_members(run.store)  # no other bundle held a version of it


def stored_members(store: dict[str, Any]) -> set[int]:
    return {
        amplitude_id
        for key, value in store.items()
        if key.startswith("b")
        for _, amplitude_id in bundle_members(value)
    }


def test_a_member_still_in_a_bundle_is_forgotten_again_after_a_restart() -> None:
    run = Run(config(lateness="0s"))
    run.feed([*(record(m, "enter", JAN5) for m in range(4)), record(0, "exit", JAN5 + MIN)])
    run.processor.flush(0)  # one bundle of four members
    run.feed([record(1, "enter", JAN5 + 3 * H)], first_offset=5)
    assert run.members() == {1, 2, 3}
    assert 0 in stored_members(run.store)  # a bundle still half full (docs/semantics.md)
    run.restart()
    run.feed([record(1, "enter", JAN5 + 3 * H + MIN)], first_offset=6)
    assert run.members() == {1, 2, 3}
    assert run.processor.metrics.forgotten_members == 1  # by the loader, the same rule


def test_a_forgotten_exit_stays_while_an_older_bundle_holds_the_member_present() -> None:
    run = Run(config(lateness="0s"))
    run.feed([record(m, "enter", JAN5) for m in range(4)])
    run.processor.flush(0)  # bundle A: four members present
    run.feed([record(0, "exit", JAN5 + MIN)], first_offset=4)
    run.processor.flush(0)  # bundle B: member 0's exit; A still holds it present
    run.feed([record(1, "enter", JAN5 + 3 * H + m * MIN) for m in range(2)], first_offset=5)
    run.processor.flush(0)
    assert run.members() == {1, 2, 3}
    assert stored_versions(run.store, 0) == 2  # deleting its exit would bring it back
    run.restart()
    run.feed([record(2, "enter", JAN5 + 3 * H + 2 * MIN)], first_offset=7)
    assert run.members() == {1, 2, 3}
    run.feed([record(3, "enter", JAN5 + 3 * H + 3 * MIN)], first_offset=8)
    run.processor.flush(0)  # A fell under half full: copied forward, deleted, B with it
    assert stored_versions(run.store, 0) == 0


def stored_versions(store: dict[str, Any], amplitude_id: int) -> int:
    return sum(
        aid == amplitude_id
        for key, value in store.items()
        if key.startswith("b")
        for _, aid in bundle_members(value)
    )


class Unconfirmed(Collect):
    """A destination that never confirms the sync at `stuck`: it stays pending."""

    def __init__(self, stuck: int) -> None:
        super().__init__()
        self.stuck = stuck

    async def write(self, build: Callable[[], SyncOutput], written: Callable[[], None]) -> None:
        output = build()
        self.outputs.append(output)
        if output.sync_time != self.stuck:
            written()


def test_a_member_a_pending_sync_still_reads_is_held_until_it_is_written() -> None:
    run = Run(config(lateness="0s"))
    run.outbox = Unconfirmed(stuck=JAN5 + 2 * H)
    run.restart()
    run.feed([record(1, "enter", JAN5, "c2"), record(1, "exit", JAN5 + 90 * MIN, "c2")])
    run.feed([record(2, "enter", JAN5 + m * H, "c2") for m in (2, 3, 4)], first_offset=2)
    assert run.members("c2") == {1, 2}  # the sync at 02:00 (from 01:00) is pending
    [pending] = [o for o in run.outbox.outputs if o.sync_time == JAN5 + 2 * H]
    run.processor.flush(0)
    run.outbox = Collect()  # the destination is back: the pending sync is built again
    run.restart()
    run.feed([record(2, "enter", JAN5 + 4 * H + MIN, "c2")], first_offset=5)
    [again] = [o for o in run.outbox.outputs if o.sync_time == JAN5 + 2 * H]
    assert again == pending and b"\n1," in again.csv_files[1].data  # exiting holds member 1
    run.feed([record(2, "enter", JAN5 + 5 * H, "c2")], first_offset=6)
    assert run.members("c2") == {2}  # written now: the next decision forgets member 1


def test_an_event_older_than_the_bound_is_dead_lettered_as_too_late() -> None:
    run = Run(config(lateness="0s"))
    run.feed([record(1, "enter", JAN5), record(1, "enter", JAN5 + 3 * H)])
    run.feed([record(2, "enter", JAN5 + 30 * MIN), record(3, "enter", JAN5 + 2 * H)], 2)
    assert list(run.outbox.dead) == [2]
    assert run.outbox.dead[2] == (
        "too late: event time 2026-01-05T00:30:00Z is more than kafka.retain_exited (2h) "
        "before the partition's watermark 2026-01-05T03:00:00Z; members absent that long "
        "are forgotten"
    )
    assert run.members() == {1, 3} and run.processor.metrics.too_late == 1


def test_with_retention_forever_nothing_is_forgotten_or_too_late() -> None:
    run = Run(config(retain="forever", lateness="0s"))
    run.feed(
        [
            record(1, "exit", JAN5),
            record(2, "enter", JAN5 + 30 * H),
            record(3, "enter", JAN5 - 40 * H),
        ]
    )
    assert run.members() == {1, 2, 3} and not run.outbox.dead


# Every event carries the member's user id and all its properties, as Amplitude's cohort
# streams send them: the one thing forgetting loses is older values a new event lacks.
steps = st.one_of(st.integers(0, 90), st.integers(-300, -130))
documents = st.lists(
    st.tuples(
        st.sampled_from(["c1", "c1", "c1", "c2"]),
        st.integers(0, 3),
        st.sampled_from(["enter", "enter", "exit"]),
        steps,
        st.sampled_from(["pro", "free", None, 3]),
    ),
    max_size=80,
)


def records_of(drawn: list[tuple[str, int, str, int, Any]]) -> list[bytes]:
    minutes = accumulate((step for *_, step, _ in drawn), lambda total, step: max(0, total + step))
    return [
        json.dumps(
            {
                "cohort_id": cohort,
                "amplitude_id": amplitude_id,
                "user_id": f"u{amplitude_id}-{plan}",
                "action": action,
                "time": iso(JAN5 + minute * MIN),
                "user_properties": {"plan": plan},
            }
        ).encode()
        for (cohort, amplitude_id, action, _, plan), minute in zip(drawn, minutes, strict=True)
    ]


END = JAN5 + 60 * H
INVALID = b'{"cohort_id": "c1"}'


def files_of(settings: Settings, records: list[bytes], restart_at: int | None = None) -> Run:
    run = Run(settings)
    if restart_at is None:
        run.feed(records)
    else:  # the table as written, the last records delivered again
        run.feed(records[:restart_at])
        run.processor.flush(0)
        run.restart()
        again = max(0, restart_at - 3)
        run.feed(records[again:], first_offset=again)
    run.end(END)
    return run


# A member forgotten, then an enter older than its exit: applied, it would bring it back.
FORGOTTEN_THEN_TOO_LATE = [
    ("c1", 0, "enter", 0, "pro"),
    ("c1", 0, "exit", 100, "pro"),
    *[("c1", 1, "enter", 90, "pro")] * 3,
    ("c1", 0, "enter", -280, "pro"),
    ("c1", 1, "enter", 10, "pro"),
]


@settings(max_examples=150)
@given(documents)
@example(FORGOTTEN_THEN_TOO_LATE)
def test_forgetting_gives_the_files_of_keeping_everything_but_the_records_too_late(
    drawn: list[tuple[str, int, str, int, Any]],
) -> None:
    records = records_of(drawn)
    forgetting = files_of(config(), records)
    kept = Run(config(retain="forever"))
    refused = forgetting.outbox.dead  # offered to `kept` as records it dead-letters too
    kept.feed_at([(n, INVALID if n in refused else item) for n, item in enumerate(records)])
    kept.end(END)
    assert forgetting.files() == kept.files()


@settings(max_examples=150)
@given(documents, st.integers(0, 80))
@example(FORGOTTEN_THEN_TOO_LATE, 5)
def test_forgetting_after_a_restart_gives_the_files_of_one_run(
    drawn: list[tuple[str, int, str, int, Any]], restart_at: int
) -> None:
    records = records_of(drawn)
    restart_at = min(restart_at, len(records))
    one_run = files_of(config(), records)
    assert files_of(config(), records, restart_at).files() == one_run.files()
