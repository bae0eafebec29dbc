"""The worker's logic without Kafka: syncs, restart from the store, dead letters,
repartitioning, late events and rules added later. The store is a dict, as Faust's
table is a mapping."""

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest

from stream.config import Settings, settings_from_mapping
from stream.domain.membership import Snapshot
from stream.domain.partitioner import partition_for
from stream.engine import intake as intake_module
from stream.engine.processor import Processor
from stream.errors import RecordTooLarge
from stream.output.sync import SyncOutput
from tests.scenario import C1, C2, JAN5, MIN, H, event, expected_csvs


def config(**kafka: object) -> Settings:
    return settings_from_mapping(
        {
            "project_id": 7,
            "kafka": {"partitions": 1, "idle_timeout": "off", **kafka},
            "destinations": [{"name": "d", "url": "file:///out", "user_property": "plan"}],
            "syncs": [{"cohort": "*", "destination": "d", "cadence": "hourly"}],
        }
    )


class Outbox:
    def __init__(self) -> None:
        self.outputs: list[SyncOutput] = []
        self.dead: list[tuple[bytes | None, str]] = []
        self.forwarded: list[tuple[bytes, int]] = []

    async def dead_letter(self, *, value: bytes | None, reason: str, **_: Any) -> None:
        self.dead.append((value, reason))

    async def forward(self, *, key: bytes, value: bytes, partition: int) -> None:
        self.forwarded.append((key, partition))

    async def write(self, build: Callable[[], SyncOutput], written: Callable[[], None]) -> None:
        self.outputs.append(build())
        written()


class Harness:
    def __init__(self, settings: Settings, store: dict[str, Any] | None = None) -> None:
        self.settings = settings
        self.store: dict[str, Any] = {} if store is None else store
        self.outbox = Outbox()
        self.processor = Processor(settings, self.store, self.outbox, partition_for)
        self.offset = 0

    def feed(self, *records: bytes, key: bytes | None = b"c1", partition: int = 0) -> None:
        async def run() -> None:
            for record in records:
                await self.processor.on_record(
                    self.settings.kafka.topic, partition, self.offset, key, record
                )
                self.offset += 1

        asyncio.run(run())

    def files(self) -> dict[str, str]:
        return {
            f.key: f.data.decode()
            for o in self.outbox.outputs
            for f in (*o.csv_files, o.manifest)
            if f.key.endswith(".csv")
        }


SCENARIO = C1
EXPECTED = expected_csvs(cohorts=("c1",))


def test_a_multi_hour_scenario_gives_the_expected_files() -> None:
    harness = Harness(config())
    harness.feed(*SCENARIO)
    assert harness.files() == EXPECTED


def test_values_that_need_quoting_booleans_and_objects() -> None:
    harness = Harness(config())
    harness.feed(*C2, key=b"c2")
    assert harness.files() == expected_csvs(cohorts=("c2",))


def test_manifest_describes_the_files_and_the_input_covered() -> None:
    harness = Harness(config())
    harness.feed(*SCENARIO[:5])
    [output] = harness.outbox.outputs
    manifest = json.loads(output.manifest.data)
    assert output.manifest.key == "7_c1_2026-01-05T01:00_manifest.json"
    assert manifest["files"]["existing"]["rows"] == 2
    assert manifest["files"]["entering"]["bytes"] == len(output.csv_files[0].data)
    assert (manifest["window_start"], manifest["window_end"]) == (
        "2026-01-05T00:00:00Z",
        "2026-01-05T01:00:00Z",
    )
    assert manifest["input"] == {"topic": "cohort-membership", "partition": 0, "end_offset": 5}
    assert manifest["first_sync"] is True


def test_a_restart_from_the_store_continues_exactly_like_one_run() -> None:
    first = Harness(config())
    first.feed(*SCENARIO[:6])
    second = Harness(config(), store=first.store)  # the changelog restored the table
    second.offset = first.offset - 2  # at-least-once: the last two records come again
    second.feed(*SCENARIO[4:])
    assert {**first.files(), **second.files()} == EXPECTED
    written_first = [o.sync_time for o in first.outbox.outputs]
    written_second = [o.sync_time for o in second.outbox.outputs]
    assert written_first == [JAN5 + H]  # 01:00 is not written again after the restart
    assert written_second == [JAN5 + 2 * H, JAN5 + 3 * H, JAN5 + 4 * H]


def test_invalid_records_are_dead_lettered_and_processing_goes_on() -> None:
    harness = Harness(config())
    harness.feed(b"{oops", SCENARIO[0], b'{"cohort_id": "c1"}', *SCENARIO[1:])
    assert [value for value, _ in harness.outbox.dead] == [b"{oops", b'{"cohort_id": "c1"}']
    assert harness.processor.metrics.dead_letters == 2
    assert harness.files() == EXPECTED


def test_records_off_their_cohort_partition_are_forwarded() -> None:
    harness = Harness(config(partitions=4))
    home = partition_for(b"c1", 4)
    harness.feed(SCENARIO[0], key=None, partition=home)
    harness.feed(SCENARIO[0], key=b"c1", partition=(home + 1) % 4)
    harness.feed(SCENARIO[0], key=b"c1", partition=home)
    assert harness.outbox.forwarded == [(b"c1", home), (b"c1", home)]
    assert harness.processor.metrics.events == 1


def test_a_record_whose_parsing_raises_is_dead_lettered_with_the_exception(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_parse = intake_module.parse_message

    def parse(value: bytes | None) -> Any:
        if value == SCENARIO[1]:
            raise KeyError("a bug in parsing")
        return real_parse(value)

    monkeypatch.setattr(intake_module, "parse_message", parse)
    harness = Harness(config())
    harness.feed(*SCENARIO)
    assert harness.outbox.dead == [
        (SCENARIO[1], "the record could not be parsed: KeyError: 'a bug in parsing'")
    ]
    without = Harness(config())
    without.feed(SCENARIO[0], *SCENARIO[2:])
    assert harness.files() == without.files() != EXPECTED


def test_a_record_whose_applying_raises_is_dead_lettered_and_what_it_applied_is_stored(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_of_event = Snapshot.of_event

    def of_event(*args: Any) -> Snapshot:
        if args[3] == "u666":  # the user id: the second user of the batch below
            raise ValueError("a bug in applying")
        return real_of_event(*args)

    monkeypatch.setattr(Snapshot, "of_event", staticmethod(of_event))
    harness = Harness(config())
    users = [{"amplitude_id": n, "user_id": f"u{n}"} for n in (5, 666, 7)]
    batch = json.dumps(
        {"cohort_id": "c1", "in_cohort": True, "computed_time": str(JAN5 // 1000), "users": users}
    ).encode()
    harness.feed(batch, SCENARIO[0])
    assert harness.outbox.dead == [
        (batch, "the record could not be applied: ValueError: a bug in applying")
    ]
    harness.processor.flush(0)
    restarted = Harness(config(), store=harness.store)
    members = restarted.processor.partition(0).cohorts["c1"].members
    assert 5 in members and 666 not in members and 7 not in members
    assert harness.processor.metrics.dead_letters == 1


def test_a_record_too_large_to_forward_is_dead_lettered() -> None:
    harness = Harness(config(partitions=4))
    home = partition_for(b"c1", 4)

    async def refuse(**_: Any) -> None:
        raise RecordTooLarge("too large to forward to its cohort's partition: big")

    harness.outbox.forward = refuse  # type: ignore[method-assign]
    harness.feed(SCENARIO[0], key=None, partition=home)
    assert harness.outbox.dead == [
        (SCENARIO[0], "too large to forward to its cohort's partition: big")
    ]
    assert harness.processor.metrics.forwarded == 0


def test_a_late_event_shows_in_the_next_sync_and_never_rewrites_the_past() -> None:
    harness = Harness(config())
    harness.feed(event("c1", 1, "enter", 10 * MIN), event("c1", 2, "enter", 70 * MIN))
    harness.feed(event("c1", 3, "enter", 30 * MIN))  # late for 01:00, already written
    harness.feed(event("c1", 4, "enter", 2 * H + MIN))
    files = harness.files()
    assert files["7_c1_2026-01-05T01:00_existing.csv"] == "amplitudeID,userID,plan\n1,u1,\n"
    assert files["7_c1_2026-01-05T02:00_entering.csv"] == (
        "amplitudeID,userID,plan\n2,u2,\n3,u3,\n"
    )
    assert harness.processor.metrics.late_events == 1


def test_allowed_lateness_holds_the_sync_back() -> None:
    harness = Harness(config(allowed_lateness="10m"))
    harness.feed(event("c1", 1, "enter", 10 * MIN), event("c1", 2, "enter", 65 * MIN))
    assert harness.outbox.outputs == []
    harness.feed(event("c1", 3, "enter", 50 * MIN))  # within lateness: in the 01:00 sync
    harness.feed(event("c1", 4, "enter", 70 * MIN))
    assert harness.files()["7_c1_2026-01-05T01:00_existing.csv"] == (
        "amplitudeID,userID,plan\n1,u1,\n3,u3,\n"
    )


def test_every_sync_time_is_written_even_without_events() -> None:
    harness = Harness(config())
    harness.feed(event("c1", 1, "enter", 10 * MIN), event("c1", 2, "enter", 5 * H + MIN))
    times = [o.manifest.key.split("_")[2] for o in harness.outbox.outputs]
    assert times == [f"2026-01-05T0{h}:00" for h in range(1, 6)]


def with_quarter_rule() -> Settings:
    """`config()` with a 15-minute rule for c1 (routing key q) added."""
    return settings_from_mapping(
        {
            "project_id": 7,
            "kafka": {"partitions": 1, "idle_timeout": "off"},
            "destinations": [{"name": "d", "url": "file:///out", "user_property": "plan"}],
            "syncs": [
                {"cohort": "*", "destination": "d", "cadence": "hourly"},
                {"cohort": "c1", "destination": "d", "cadence": "15m", "routing_key": "q"},
            ],
        }
    )


def test_a_rule_added_later_starts_after_the_watermark() -> None:
    first = Harness(config())
    first.feed(event("c1", 1, "enter", 10 * MIN), event("c1", 2, "enter", 2 * H + MIN))
    settings = with_quarter_rule()
    second = Harness(settings, store=first.store)
    second.offset = first.offset
    second.feed(event("c1", 3, "enter", 2 * H + 31 * MIN))
    keys = sorted(o.manifest.key for o in second.outbox.outputs)
    assert keys == [
        "7_c1_2026-01-05T02:15_manifest_q.json",
        "7_c1_2026-01-05T02:30_manifest_q.json",
    ]
    first_quarter = second.outbox.outputs[0]
    assert first_quarter.counts == {"entering": 2, "exiting": 0, "existing": 2}


def test_idle_tick_emits_due_syncs() -> None:
    harness = Harness(config())
    harness.feed(event("c1", 1, "enter", 10 * MIN))
    assert harness.processor.next_due(0) == JAN5 + H
    asyncio.run(harness.processor.on_tick(0, JAN5 + 2 * H + 5))
    assert [o.sync_time - JAN5 for o in harness.outbox.outputs] == [H, 2 * H]


def test_portfolio_data_has_one_column_per_property_and_app() -> None:
    harness = Harness(config())
    record = json.dumps(
        {
            "cohort_id": "c1",
            "in_cohort": True,
            "computed_time": JAN5 // 1000,
            "users": [
                {"amplitude_id": 1, "user_id": "a", "app_id": 20, "user_properties": {"plan": "x"}},
                {"amplitude_id": 2, "user_id": "b", "app_id": 10, "user_properties": {"plan": "y"}},
            ],
        }
    ).encode()
    harness.feed(record, event("c1", 9, "exit", H + MIN))
    assert harness.files()["7_c1_2026-01-05T01:00_existing.csv"] == (
        "amplitudeID,userID,plan_10,plan_20\n1,a,,x\n2,b,y,\n"
    )


def formula_settings(guard: bool) -> Settings:
    return settings_from_mapping(
        {
            "project_id": 7,
            "kafka": {"partitions": 1, "idle_timeout": "off"},
            "destinations": [
                {
                    "name": "d",
                    "url": "file:///out",
                    "user_property": "plan",
                    "csv_formula_guard": guard,
                }
            ],
            "syncs": [{"cohort": "*", "destination": "d", "cadence": "hourly"}],
        }
    )


def test_values_that_look_like_formulas_are_exported_as_they_are_by_default() -> None:
    harness = Harness(formula_settings(guard=False))
    harness.feed(event("c1", 1, "enter", MIN, plan="=HYPERLINK(1)"), event("c1", 2, "exit", H + 1))
    assert harness.files()["7_c1_2026-01-05T01:00_existing.csv"] == (
        "amplitudeID,userID,plan\n1,u1,=HYPERLINK(1)\n"
    )


def test_the_formula_guard_neutralises_them_for_spreadsheets() -> None:
    harness = Harness(formula_settings(guard=True))
    records = [
        event("c1", n, "enter", MIN, plan=value)
        for n, value in enumerate(["=1+1", "+1", "-2", "@SUM(A1)", "safe"], start=1)
    ]
    harness.feed(*records, event("c1", 9, "exit", H + 1))
    assert harness.files()["7_c1_2026-01-05T01:00_existing.csv"] == (
        "amplitudeID,userID,plan\n1,u1,'=1+1\n2,u2,'+1\n3,u3,'-2\n4,u4,'@SUM(A1)\n5,u5,safe\n"
    )


class FailingOutbox(Outbox):
    async def write(self, build: Callable[[], SyncOutput], written: Callable[[], None]) -> None:
        raise asyncio.CancelledError("the worker stops while the sync is being written")


def test_a_stop_during_a_sync_loses_nothing_and_a_restart_writes_it() -> None:
    first = Harness(config())
    first.outbox = FailingOutbox()
    first.processor.outbox = first.outbox
    first.feed(*SCENARIO[:4])
    with pytest.raises(asyncio.CancelledError):
        first.feed(SCENARIO[4])  # makes 01:00 due; the stop acknowledges the record anyway
    restarted = Harness(config(), store=first.store)
    asyncio.run(restarted.processor.on_tick(0, None))  # loading the partition writes it
    assert restarted.files() == {k: v for k, v in EXPECTED.items() if "T01:00" in k}
    restarted.offset = first.offset + 1
    restarted.feed(*SCENARIO[5:])
    assert restarted.files() == EXPECTED


class StuckDestinationOutbox(Outbox):
    """Builds every sync, but the destination `stuck` never reports one written."""

    def __init__(self, stuck: str) -> None:
        super().__init__()
        self.stuck = stuck

    async def write(self, build: Callable[[], SyncOutput], written: Callable[[], None]) -> None:
        output = build()
        self.outputs.append(output)
        if output.destination != self.stuck:
            written()


def two_destinations() -> Settings:
    return settings_from_mapping(
        {
            "project_id": 7,
            "kafka": {"partitions": 1, "idle_timeout": "off"},
            "destinations": [
                {"name": "d", "url": "file:///out", "user_property": "plan"},
                {"name": "e", "url": "file:///other", "user_property": "plan"},
            ],
            "syncs": [
                {"cohort": "*", "destination": "d", "cadence": "hourly"},
                {"cohort": "*", "destination": "e", "cadence": "hourly", "routing_key": "e"},
            ],
        }
    )


def test_a_destination_that_never_confirms_holds_up_only_its_own_syncs() -> None:
    first = Harness(two_destinations())
    first.outbox = StuckDestinationOutbox(stuck="e")
    first.processor.outbox = first.outbox
    first.feed(*SCENARIO)  # processing goes on; "d" is written and forgotten
    stuck = [o for o in first.outbox.outputs if o.destination == "e"]
    meta = json.loads(first.store["p\x1f0"])
    assert [item[2] for item in meta["pending"]] == [o.sync_time for o in stuck]
    assert {item[0] for item in meta["pending"]} == {"e|e|*|3600000"}  # rule of "e" only
    restarted = Harness(two_destinations(), store=first.store)
    asyncio.run(restarted.processor.on_tick(0, None))  # hands the pending syncs over again
    assert [(o.manifest, o.csv_files) for o in restarted.outbox.outputs] == [
        (o.manifest, o.csv_files) for o in stuck
    ]


def once_at(at: str, *, cohort: str = "*") -> Settings:
    return settings_from_mapping(
        {
            "project_id": 7,
            "kafka": {"partitions": 1, "idle_timeout": "off"},
            "destinations": [{"name": "d", "url": "file:///out", "user_property": "plan"}],
            "syncs": [{"cohort": cohort, "destination": "d", "cadence": "once", "at": at}],
        }
    )


def test_a_one_time_sync_is_everyone_present_at_its_time_and_nothing_else() -> None:
    harness = Harness(once_at("2026-01-05T02:00Z"))
    harness.feed(*C1)  # through 04:01: hourly rules would write four syncs
    [output] = harness.outbox.outputs
    assert output.sync_time == JAN5 + 2 * H
    files = harness.files()
    assert files == {
        "7_c1_2026-01-05T02:00_entering.csv": EXPECTED["7_c1_2026-01-05T02:00_existing.csv"],
        "7_c1_2026-01-05T02:00_exiting.csv": "amplitudeID,userID,plan\n",
        "7_c1_2026-01-05T02:00_existing.csv": EXPECTED["7_c1_2026-01-05T02:00_existing.csv"],
    }
    manifest = json.loads(output.manifest.data)
    assert manifest["cadence"] == "once" and manifest["first_sync"] is True
    assert (manifest["window_start"], manifest["window_end"]) == (None, "2026-01-05T02:00:00Z")


def test_a_one_time_sync_skips_cohorts_that_began_after_it_and_a_restart_does_not_repeat_it() -> (
    None
):
    settings = once_at("2026-01-05T01:00+01:00")  # 00:00Z: before c1's first event
    harness = Harness(settings)
    harness.feed(*C1)
    assert harness.outbox.outputs == []
    later = Harness(once_at("2026-01-05T03:00Z"))
    later.feed(*C1[:7])  # through 02:15
    assert later.processor.next_due(0) == JAN5 + 3 * H
    later.feed(C1[7])  # 04:01: writes 03:00
    again = Harness(once_at("2026-01-05T03:00Z"), store=later.store)
    again.offset = later.offset
    again.feed(event("c1", 9, "enter", 5 * H))
    assert [o.sync_time for o in later.outbox.outputs] == [JAN5 + 3 * H]
    assert again.outbox.outputs == [] and again.processor.next_due(0) is None


def test_a_reload_adds_a_rule_that_starts_after_the_watermark_and_persists_it_later() -> None:
    harness = Harness(config())
    harness.feed(event("c1", 1, "enter", 10 * MIN), event("c1", 2, "enter", 2 * H + MIN))
    store_before = dict(harness.store)
    settings = with_quarter_rule()
    harness.processor.reconfigure(settings)
    assert harness.store == store_before  # outside the partition's own event: nothing written
    assert harness.processor.needs_tick(0)  # so the worker sends it a tick
    harness.outbox.outputs.clear()
    harness.feed(event("c1", 3, "enter", 2 * H + 31 * MIN))
    assert sorted(o.manifest.key for o in harness.outbox.outputs) == [
        "7_c1_2026-01-05T02:15_manifest_q.json",
        "7_c1_2026-01-05T02:30_manifest_q.json",
    ]
    restarted = Harness(settings, store=harness.store)  # the rule's start was persisted
    restarted.offset = harness.offset
    restarted.feed(event("c1", 4, "enter", 2 * H + 46 * MIN))
    assert [o.manifest.key for o in restarted.outbox.outputs] == [
        "7_c1_2026-01-05T02:45_manifest_q.json"
    ]


def test_a_reload_that_changes_how_cells_are_written_rebuilds_the_rows_it_kept() -> None:
    harness = Harness(formula_settings(guard=False))
    harness.feed(event("c1", 1, "enter", 10 * MIN, plan="=1+1"), event("c1", 2, "enter", H + MIN))
    assert harness.files()["7_c1_2026-01-05T01:00_existing.csv"].endswith("1,u1,=1+1\n")
    harness.processor.reconfigure(formula_settings(guard=True))
    harness.feed(event("c1", 3, "enter", 2 * H + MIN))  # member 1 unchanged since 01:00
    existing = harness.files()["7_c1_2026-01-05T02:00_existing.csv"]
    assert existing.splitlines()[1] == "1,u1,'=1+1"
