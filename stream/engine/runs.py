"""Runs: a partition's fetched records taken together, as a replay reads them.

A run is single-event records of cohorts the partition holds, on their cohort's partition,
and the dead letters among them. It ends with the record whose watermark makes a sync due,
so the processor decides that sync right after it, as it would one record at a time.
Within a run no sync is decided and no cohort is added, so each cohort's events are applied
together, in their order (`PartitionState.apply_run`), and the partition's watermark moves
once. A run stops before what must go one by one: a forwarded record, a new cohort's (it
can bring the next sync time forward) and a batch message.

`take` admits the records (dead letters through `Intake`); `apply` applies what it took.
The processor (`Processor.on_records`) decides what became due."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from stream.domain.events import BatchEvents, MembershipEvent
from stream.domain.membership import Member
from stream.engine.intake import InputRecord, Intake
from stream.metrics import Metrics
from stream.state.journal import FLUSH_MEMBERS, Journal
from stream.state.partition import PartitionState

__all__ = ["Applied", "Run", "apply", "take"]


@dataclass
class Run:
    """The records `take` took from `start` to `end`, by cohort, in their order."""

    end: int
    """The index after the last record taken."""
    records: dict[str, list[InputRecord]] = field(default_factory=dict)
    events: dict[str, list[MembershipEvent]] = field(default_factory=dict)
    dead_lettered: int | None = None
    """The offset of the last record taken that was dead-lettered."""
    next_events: Sequence[MembershipEvent] | None = None
    """The parsed events of the record it stopped before (None: not parsed)."""


@dataclass(frozen=True)
class Applied:
    """What `apply` did: the newest event time applied and the last offset (None: none),
    and the records whose apply failed, with why (each to be dead-lettered)."""

    newest: int | None
    last: int | None
    failures: list[tuple[InputRecord, Exception]]


async def take(
    intake: Intake,
    topic: str,
    partition: int,
    records: Sequence[InputRecord],
    start: int,
    *,
    state: PartitionState,
    due: int | None,
    lateness: int,
    home: Callable[[str], tuple[bytes, int]],
) -> Run:
    """Take the records from `start` that can go together (`due`: the partition's next
    sync time; `home(cohort_id)`: the cohort's key and partition)."""
    is_input = topic == intake.settings.kafka.topic
    watermark = state.watermark
    run = Run(start)
    while run.end < len(records):
        record = records[run.end]
        events = await intake.parsed(topic, partition, record)
        if events is None:
            run.dead_lettered = record.offset
            run.end += 1
            continue
        if len(events) != 1 or type(events) is BatchEvents:
            if not events:  # an empty batch: nothing to do, as `on_record` does
                run.end += 1
                continue
            run.next_events = events
            break
        if await intake.ahead(topic, partition, record, events):
            run.dead_lettered = record.offset
            run.end += 1
            continue
        event = events[0]
        cohort_key, cohort_home = home(event.cohort_id)
        if (is_input and (record.key != cohort_key or cohort_home != partition)) or (
            event.cohort_id not in state.cohorts
        ):
            run.next_events = events  # forwarded, or a new cohort: one by one
            break
        if await intake.late(topic, partition, record, state, events):
            run.dead_lettered = record.offset
            run.end += 1
            continue
        run.records.setdefault(event.cohort_id, []).append(record)
        run.events.setdefault(event.cohort_id, []).append(event)
        run.end += 1
        if watermark is None or event.time_ms - lateness > watermark:
            watermark = event.time_ms - lateness
        if due is not None and watermark >= due:
            break  # this record decides: the run ends with it
    return run


def apply(
    state: PartitionState,
    run: Run,
    *,
    horizon: int | None,
    journal: Journal,
    metrics: Metrics,
    synced: Callable[[str], bool],
) -> Applied:
    """Apply each cohort's records of `run` and journal the members they changed
    (`synced(cohort_id)`: whether a sync will ask for the cohort's changes)."""
    newest: int | None = None
    last: int | None = None
    failures: list[tuple[InputRecord, Exception]] = []
    for cohort_id, records in run.records.items():
        events = run.events[cohort_id]
        metrics.events += len(events)
        metrics.late_events += sum(1 for event in events if state.is_late(event.time_ms))
        changed: list[tuple[int, Member]] = []
        failed = state.apply_run(
            events,
            [record.offset for record in records],
            horizon,
            note_change=synced(cohort_id),
            changed=changed,
        )
        for amplitude_id, member in changed:
            journal.touch(cohort_id, amplitude_id, member)
        failures += [(records[at], exc) for at, exc in failed]
        unapplied = {at for at, _ in failed}
        kept = [at for at in range(len(records)) if at not in unapplied]
        if kept:
            here = max(events[at].time_ms for at in kept)
            newest = here if newest is None else max(newest, here)
            last = max(records[kept[-1]].offset, -1 if last is None else last)  # they ascend
    if journal.dirty >= FLUSH_MEMBERS:
        journal.flush()
    return Applied(newest, last, failures)
