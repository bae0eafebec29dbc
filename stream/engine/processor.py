"""The worker's logic, free of Faust: what to do with one record or one clock tick.

`faust/worker.py` calls `on_record` and `on_tick` from inside its agent's stream iteration (the only
place Faust tables may be written), with the table as `store`. Per partition it keeps a
`PartitionState`, rebuilt from the store when the partition is assigned (or first touched):
from a copy of its keys, in a thread (`engine/rebuilding.py`), so the event loop goes on.
For each record: parse (or dead-letter), forward to the repartition topic if the record is
not on its cohort's partition, apply the events, then decide every sync the new watermark
makes due.

Changed members go to the partition's `Journal`, written to the store in bundles: when
enough wait, on a tick, and always before the partition's metadata, so the store never
holds a decision without the state it was made on. A record is durable once `durable` says
so; the caller acknowledges records only then.

A decided sync is persisted as pending (with the watermark) before it is handed to the
outbox, which builds it at once and writes it when its destination takes it; the outbox
then reports it written and the next record or tick of the partition retires it. A restart
hands the pending syncs over again, built from the same state: the same bytes.
"""

from __future__ import annotations

import asyncio
import logging
from array import array
from collections.abc import Callable, Iterable, MutableMapping, Sequence
from typing import Any, NamedTuple, Protocol

from stream.config import Settings, SyncRule
from stream.domain.events import BatchEvents, MembershipEvent, parse_message, time_span
from stream.domain.membership import Member
from stream.domain.retention import too_late_before
from stream.engine.admission import too_far_ahead, too_late
from stream.engine.building import sync_builder
from stream.engine.outbox import Outbox
from stream.engine.rebuilding import Offload, Rebuilder
from stream.engine.slot import Position, Slot
from stream.errors import InvalidEvent, RecordTooLarge, describe
from stream.metrics import Metrics
from stream.output.sync import InputPosition
from stream.state import codec
from stream.state.journal import FLUSH_MEMBERS, Journal
from stream.state.partition import PartitionState, PendingSync, SyncJob
from stream.state.stored import LoadedPartition, partition_items, partition_meta

__all__ = ["InputRecord", "Processor"]

log = logging.getLogger(__name__)


class _ApplyFailed(Exception):
    """Applying a record's events raised `cause` (the events before it stay applied)."""

    def __init__(self, cause: Exception) -> None:
        super().__init__(str(cause))
        self.cause = cause


class InputRecord(Protocol):
    """A record `on_records` takes (`kafka.client.Record` is one)."""

    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def timestamp_ms(self) -> int | None: ...


class _Record(NamedTuple):
    """One record's fields, as `on_record` takes them."""

    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int | None


class _Revoked(Exception):
    """The partition was taken away while this worker was rebuilding it."""


class Processor:
    def __init__(
        self,
        settings: Settings,
        store: MutableMapping[str, Any],
        outbox: Outbox,
        partition_for: Callable[[bytes, int], int],
        metrics: Metrics | None = None,
        *,
        wanted: Callable[[SyncJob], bool] | None = None,
        incremental: bool = True,
        journal: bool = True,
        offload: Offload | None = None,
    ) -> None:
        """`wanted` (a replay's --since/--until) picks which due syncs are written; state
        and the decided watermark advance the same either way. `incremental` builds each
        sync after a cohort's first from the rows of the one before and the members that
        changed since (False: from every member; the same bytes, which tests check).
        `journal=False` keeps members in memory only, for a run that never restarts from
        the store (a replay): nothing is encoded for it. `offload(fn)` runs `fn` off the
        event loop (default: the loop's thread pool): a partition is rebuilt there."""
        self.settings = settings
        self.rules: tuple[SyncRule, ...] = settings.syncs
        self._rules_by_id = {rule.rule_id: rule for rule in self.rules}
        self.store = store
        self.outbox = outbox
        self.partition_for = partition_for
        self.metrics = metrics or Metrics()
        self.wanted = wanted
        self.incremental = incremental
        self.journal = journal
        self._rebuilder = Rebuilder(
            store,
            journal=journal,
            track_exits=settings.kafka.retain_exited_ms is not None,
            offload=offload,
        )
        self._slots: dict[int, Slot] = {}
        self._homes: dict[str, tuple[bytes, int]] = {}
        self._synced_cohorts: dict[str, bool] = {}
        self._built_whole: set[str] = set()
        """Cohorts no rule synced before a reload: their changes were not kept, so each of
        their syncs is built from every member (the same bytes) until the next start."""

    def reconfigure(self, settings: Settings) -> None:
        """Take `settings`' destinations and syncs (a reload); call it between records, not
        during one. A rule new to a partition starts at the first sync time after its
        decided watermark (as at a start); the store is written at each partition's next
        event, inside its own stream iteration (`partition`)."""
        was_synced = {cohort for cohort, synced in self._synced_cohorts.items() if synced}
        self.settings = settings
        self.rules = settings.syncs
        self._rules_by_id = {rule.rule_id: rule for rule in self.rules}
        self._synced_cohorts.clear()
        for slot in self._slots.values():
            state = slot.state
            if state is None:
                continue
            if state.register_rules(self.rules):
                slot.meta_changed = True
            for cohort_id, cohort in state.cohorts.items():
                cohort.writable()
                cohort.synced.clear()  # rows kept for the next build follow the old config
                if cohort_id not in was_synced and self._synced(cohort_id):
                    self._built_whole.add(cohort_id)

    async def on_record(
        self,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        *,
        timestamp_ms: int | None = None,
    ) -> None:
        """Handle one input (or repartitioned) record; never raises for bad input. A record
        of a partition taken away while it was being rebuilt is left to its new owner.
        `timestamp_ms` is the record's Kafka timestamp (None: a file's line, unchecked): an
        input record dated more than `kafka.max_future` after it is dead-lettered."""
        await self._one(topic, partition, offset, key, value, timestamp_ms, None)

    async def _one(
        self,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        timestamp_ms: int | None,
        events: Sequence[MembershipEvent] | None,
    ) -> None:
        """`on_record`, with the record's `events` parsed already (None: not yet)."""
        try:
            await self._handle(topic, partition, offset, key, value, timestamp_ms, events)
        except _Revoked:
            return
        except BaseException:
            self._seen(topic, partition, offset)
            raise
        self._seen(topic, partition, offset)

    async def on_records(self, topic: str, partition: int, records: Sequence[InputRecord]) -> int:
        """Handle one partition's `records` (in offset order) as `on_record` would, one
        after another; returns how many were handled: all, or up to and including the
        first one forwarded to another partition (the caller hands it on, then calls
        again with the rest). A processor without a journal (a replay) applies runs of
        them together (`_run`)."""
        done = 0
        while done < len(records):
            ran, parsed = await self._run(topic, partition, records, done)
            done += ran
            if done == len(records) or (ran and parsed is None):
                continue  # every record handled, or a run ended on a decision
            record = records[done]
            forwarded = self.metrics.forwarded
            await self._one(
                topic,
                partition,
                record.offset,
                record.key,
                record.value,
                record.timestamp_ms,
                parsed,
            )
            done += 1
            if self.metrics.forwarded != forwarded:
                break
        return done

    async def _run(
        self, topic: str, partition: int, records: Sequence[InputRecord], start: int
    ) -> tuple[int, Sequence[MembershipEvent] | None]:
        """Handle the records from `start` that can go together, and return how many,
        with the events of the one it stopped before, parsed (None: it did not parse it).

        A run is single-event records of cohorts the partition holds, on their cohort's
        partition, and the dead letters among them. It ends with the record whose watermark
        makes a sync due (decided after it, as `on_record` does). Within it, no sync is
        decided and no cohort is added, so each cohort's events are applied together, in
        their order (`PartitionState.apply_run`), and the partition's watermark moves once.
        Only without a journal: a journal's flush follows its records one by one."""
        slot = self._slots.get(partition)
        state = None if slot is None else slot.state
        if self.journal or slot is None or state is None or slot.written or slot.unsubmitted:
            return 0, None
        is_input = topic == self.settings.kafka.topic
        due = state.next_due(self.rules)
        watermark = state.watermark
        lateness = self._lateness
        runs: dict[str, list[InputRecord]] = {}
        events_of: dict[str, list[MembershipEvent]] = {}
        handled: int | None = None  # the offset of the last record applied or dead-lettered
        at = start
        parsed: Sequence[MembershipEvent] | None = None
        while at < len(records):
            record = records[at]
            events = await self._parsed(topic, partition, record.offset, record.key, record.value)
            if events is None:  # dead-lettered
                handled = record.offset
                at += 1
                continue
            if len(events) != 1 or isinstance(events, BatchEvents):
                if not events:  # an empty batch: nothing to do, as `on_record` does
                    at += 1
                    continue
                parsed = events
                break
            event = events[0]
            if await self._ahead(topic, partition, record, events):
                handled = record.offset
                at += 1
                continue
            cohort_key, home = self._home(event.cohort_id)
            if (is_input and (record.key != cohort_key or home != partition)) or (
                event.cohort_id not in state.cohorts
            ):
                parsed = events  # forwarded, or a new cohort: one by one
                break
            if await self._late(topic, partition, record, state, events):
                handled = record.offset
                at += 1
                continue
            runs.setdefault(event.cohort_id, []).append(record)
            events_of.setdefault(event.cohort_id, []).append(event)
            at += 1
            if watermark is None or event.time_ms - lateness > watermark:
                watermark = event.time_ms - lateness
            if due is not None and watermark >= due:
                break  # this record decides: the run ends with it
        newest, last_applied = await self._apply_runs(topic, partition, state, runs, events_of)
        for run in runs.values():  # applied, or dead-lettered as their apply failed
            handled = max(run[-1].offset, -1 if handled is None else handled)
        if handled is not None:
            self._handled(topic, partition, handled)
        if at > start:
            self._seen(topic, partition, records[at - 1].offset)
        if newest is not None and last_applied is not None:
            watermark = state.observe(newest, lateness)
            due = state.next_due(self.rules)
            if due is not None and watermark >= due:
                await self._advance(
                    partition, state, watermark, InputPosition(topic, partition, last_applied + 1)
                )
        return at - start, parsed

    async def _apply_runs(
        self,
        topic: str,
        partition: int,
        state: PartitionState,
        runs: dict[str, list[InputRecord]],
        events_of: dict[str, list[MembershipEvent]],
    ) -> tuple[int | None, int | None]:
        """Apply each cohort's run; the newest event time applied and the last offset."""
        horizon = state.horizon(self.rules)
        journal = self._journal(partition)
        newest: int | None = None
        last: int | None = None
        failures: list[tuple[InputRecord, Exception]] = []
        for cohort_id, run in runs.items():
            events = events_of[cohort_id]
            self.metrics.events += len(events)
            self.metrics.late_events += sum(1 for event in events if state.is_late(event.time_ms))
            changed: list[tuple[int, Member]] = []
            failed = state.apply_run(
                events,
                [record.offset for record in run],
                horizon,
                note_change=self._synced(cohort_id),
                changed=changed,
            )
            for amplitude_id, member in changed:
                journal.touch(cohort_id, amplitude_id, member)
            unapplied = {at for at, _ in failed}
            failures += [(run[at], exc) for at, exc in failed]
            for at, (record, event) in enumerate(zip(run, events, strict=True)):
                if at not in unapplied:
                    newest = event.time_ms if newest is None else max(newest, event.time_ms)
                    last = record.offset if last is None else max(last, record.offset)
        if journal.dirty >= FLUSH_MEMBERS:
            journal.flush()
        for record, exc in failures:
            reason = f"the record could not be applied: {describe(exc)}"
            await self._dead_letter(
                topic, partition, record.offset, record.key, record.value, reason
            )
        return newest, last

    def _seen(self, topic: str, partition: int, offset: int) -> None:
        if topic == self.settings.kafka.topic:
            self._slot(partition).input_next_offset = offset + 1

    # -- what the worker, the web views and replay read

    @property
    def partitions(self) -> dict[int, PartitionState]:
        """The state of each partition held (a new dict: reading it changes nothing)."""
        return {p: slot.state for p, slot in self._slots.items() if slot.state is not None}

    @property
    def input_next_offset(self) -> dict[int, int]:
        """Per input partition: the offset after the last record handled (for lag)."""
        return {
            p: slot.input_next_offset
            for p, slot in self._slots.items()
            if slot.input_next_offset is not None
        }

    def state_of(self, partition: int) -> PartitionState | None:
        slot = self._slots.get(partition)
        return None if slot is None else slot.state

    def handled_up_to(self, partition: int) -> int | None:
        """The input offset after the last record of `partition` handled (None: none yet)."""
        slot = self._slots.get(partition)
        return None if slot is None else slot.input_next_offset

    def _slot(self, partition: int) -> Slot:
        slot = self._slots.get(partition)
        if slot is None:
            slot = self._slots[partition] = Slot()
        return slot

    def _journal(self, partition: int) -> Journal:
        journal = self._slots[partition].journal
        assert journal is not None, "a partition's journal is read only once it is rebuilt"
        return journal

    async def _parsed(
        self, topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None
    ) -> Sequence[MembershipEvent] | None:
        """The record's events; None when it was dead-lettered instead."""
        try:
            return parse_message(value)
        except InvalidEvent as exc:
            await self._dead_letter(topic, partition, offset, key, value, exc.reason)
        except Exception as exc:  # a fault of the record, not of the worker: never fatal
            reason = f"the record could not be parsed: {describe(exc)}"
            await self._dead_letter(topic, partition, offset, key, value, reason)
        return None

    async def _handle(
        self,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        timestamp_ms: int | None,
        events: Sequence[MembershipEvent] | None = None,
    ) -> None:
        """`events`: the record's, parsed already (None: parse it here)."""
        if events is None:
            events = await self._parsed(topic, partition, offset, key, value)
            if events is None:
                return
        if not events:
            return
        record = _Record(offset, key, value, timestamp_ms)
        # Checked before forwarding: the repartitioned copy has the forwarder's timestamp.
        if await self._ahead(topic, partition, record, events):
            return
        is_input = topic == self.settings.kafka.topic
        cohort_key, home = self._home(events[0].cohort_id)
        if is_input and (key != cohort_key or home != partition):
            try:
                await self.outbox.forward(key=cohort_key, value=value or b"", partition=home)
            except RecordTooLarge as exc:
                await self._dead_letter(topic, partition, offset, key, value, str(exc))
                return
            self.metrics.forwarded += 1
            return
        state = await self._rebuilt(partition)
        slot = self._slots[partition]
        if slot.written or slot.unsubmitted:
            await self._catch_up(partition, state)
        if await self._late(topic, partition, record, state, events):
            return
        # Apply first, then decide what became due: a record that makes sync T due has no
        # event before T (its newest time minus the lateness reached T), so T cannot see it.
        try:
            self._apply(partition, state, offset, events)
        except _ApplyFailed as failed:
            reason = f"the record could not be applied: {describe(failed.cause)}"
            await self._dead_letter(topic, partition, offset, key, value, reason)
            return
        journal = self._journal(partition)
        if journal.dirty >= FLUSH_MEMBERS:
            journal.flush()
        self._handled(topic, partition, offset)
        _, newest = time_span(events)
        watermark = state.observe(newest, self._lateness)
        due = state.next_due(self.rules)  # checked here: the per-record cost of syncs
        if due is not None and watermark >= due:
            await self._advance(
                partition, state, watermark, InputPosition(topic, partition, offset + 1)
            )

    async def _ahead(
        self,
        topic: str,
        partition: int,
        record: InputRecord,
        events: Sequence[MembershipEvent],
    ) -> bool:
        """Dead-letter an input record dated too far ahead of its Kafka timestamp; whether
        it was (`admission.too_far_ahead`)."""
        if topic != self.settings.kafka.topic or record.timestamp_ms is None:
            return False
        reason = too_far_ahead(self.settings.kafka, record.timestamp_ms, record.key, events)
        if reason is None:
            return False
        self.metrics.too_far_ahead += 1
        await self._dead_letter(topic, partition, record.offset, record.key, record.value, reason)
        return True

    async def _late(
        self,
        topic: str,
        partition: int,
        record: InputRecord,
        state: PartitionState,
        events: Sequence[MembershipEvent],
    ) -> bool:
        """Dead-letter a record too late to apply; whether it was (`admission.too_late`)."""
        reason = too_late(self.settings.kafka, state, events)
        if reason is None:
            return False
        self.metrics.too_late += 1
        await self._dead_letter(topic, partition, record.offset, record.key, record.value, reason)
        return True

    async def _dead_letter(
        self,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        reason: str,
    ) -> None:
        self._handled(topic, partition, offset)
        self.metrics.dead_letters += 1
        message = f"dead letter {topic}/{partition}@{offset}: {reason}"
        log.warning("%s", message)
        self.metrics.recent_errors.appendleft(message)
        await self.outbox.dead_letter(
            topic=topic, partition=partition, offset=offset, key=key, value=value, reason=reason
        )

    def _handled(self, topic: str, partition: int, offset: int) -> None:
        """The record at `offset` is applied or dead-lettered: syncs decided from now on
        cover the input up to it (their manifests' `input`), also when the records after the
        last one applied are all dead letters, so a restart writes the same manifests."""
        slot = self._slot(partition)
        if slot.position is None:
            slot.position = Position(topic, offset + 1)
        else:
            slot.position.topic, slot.position.next_offset = topic, offset + 1

    def _forget_absent(self, partition: int, state: PartitionState) -> None:
        """Forget the members absent for longer than `kafka.retain_exited` (`retention.py`)."""
        before = too_late_before(state.emitted_through, self.settings.kafka.retain_exited_ms)
        horizon = state.horizon(self.rules)
        if before is None or horizon is None:
            return
        journal = self._journal(partition)
        journal.flush()  # a forgotten member must not be written after it is forgotten
        forgotten = state.forget_absent(before, horizon)
        journal.forget(forgotten)
        self.metrics.forgotten_members += len(forgotten)

    def _home(self, cohort_id: str) -> tuple[bytes, int]:
        """A cohort's key and the partition it belongs to (cached: hashed once a cohort)."""
        home = self._homes.get(cohort_id)
        if home is None:
            key = cohort_id.encode("utf-8")
            home = self._homes[cohort_id] = (
                key,
                self.partition_for(key, self.settings.kafka.partitions),
            )
        return home

    async def on_tick(self, partition: int, now_ms: int | None) -> None:
        """The wall clock reached `now_ms` on an idle partition: decide what became due.
        `None` only loads the partition (handing over its pending syncs), retires the
        syncs reported written and flushes the journal."""
        try:
            state = await self._rebuilt(partition)
        except _Revoked:
            return
        await self._catch_up(partition, state)
        self._journal(partition).flush()
        watermark = state.watermark if now_ms is None else state.observe(now_ms, self._lateness)
        if watermark is None:
            return
        known = self._slots[partition].position
        position = InputPosition(
            known.topic if known else self.settings.kafka.topic,
            partition,
            known.next_offset if known else 0,
        )
        await self._advance(partition, state, watermark, position)

    def needs_tick(self, partition: int) -> bool:
        """Whether the partition has written syncs to retire or changes not yet in the store
        (a tick does both when it is idle)."""
        slot = self._slots.get(partition)
        return slot is not None and (
            bool(slot.written) or not self.durable(partition) or slot.meta_changed
        )

    def flush(self, partition: int) -> None:
        """Write the partition's waiting changes to the store now (inside stream iteration)."""
        slot = self._slots.get(partition)
        if slot is not None and slot.journal is not None:
            slot.journal.flush()

    def durable(self, partition: int) -> bool:
        """Whether every record handled on this partition has its changes in the store."""
        slot = self._slots.get(partition)
        return slot is None or slot.journal is None or slot.journal.durable

    def next_due(self, partition: int) -> int | None:
        """The earliest sync time this partition will emit next (None: nothing to sync)."""
        state = self.state_of(partition)
        return None if state is None else state.next_due(self.rules)

    def revoke(self, partitions: Iterable[int]) -> None:
        """Drop everything held for partitions this worker no longer owns."""
        for partition in partitions:
            self._slots.pop(partition, None)

    def assigned(self, partitions: Iterable[int]) -> None:
        """Start rebuilding each of `partitions` not held yet, all at once and off the event
        loop, so that a partition's first record or tick finds its rebuild done or under way
        rather than starting it then, one partition after another. Call it on the event
        loop when the partitions are assigned; a rebuild begun before the store held all of
        the partition's state is found out when it is installed, and made again."""
        for partition in partitions:
            slot = self._slot(partition)
            if slot.state is None and slot.rebuild is None:
                slot.rebuild = self._rebuilder.start(partition)

    async def _rebuilt(self, partition: int) -> PartitionState:
        """`partition`'s state; one this worker has not yet is rebuilt from the table off
        the event loop (or its rebuild since the assignment awaited) and installed if the
        table still holds what it was rebuilt from; `_Revoked` is raised when the partition
        was taken away before it was done."""
        slot = self._slot(partition)
        while slot.state is None:
            rebuild = slot.rebuild
            if rebuild is None:
                rebuild = slot.rebuild = self._rebuilder.start(partition)
            try:
                made = await asyncio.shield(rebuild)  # others may await it too
            finally:
                if rebuild.done() and slot.rebuild is rebuild:
                    slot.rebuild = None  # installed below, or made again
            if self._slots.get(partition) is not slot:
                raise _Revoked(partition)
            if slot.state is None and made.items_are(partition_items(self.store, partition)):
                self._install(slot, partition, made.loaded)
        return self.partition(partition)

    def partition(self, partition: int) -> PartitionState:
        """`partition`'s state, rebuilt here (on the caller's thread) if need be."""
        slot = self._slot(partition)
        if slot.state is None:
            items = partition_items(self.store, partition)
            self._install(slot, partition, self._rebuilder.read(partition, items).loaded)
        state = slot.state
        assert state is not None
        if slot.meta_changed:
            slot.meta_changed = False
            self._persist_partition(partition, state)
        return state

    @property
    def _lateness(self) -> int:
        return self.settings.kafka.allowed_lateness_ms

    async def _advance(
        self, partition: int, state: PartitionState, watermark: int, position: InputPosition
    ) -> None:
        due = state.next_due(self.rules)
        if due is None or watermark < due:
            return
        jobs = state.due_jobs(self.rules, watermark)
        if not jobs:
            return
        decided = [
            PendingSync(
                job.rule.rule_id,
                job.cohort_id,
                job.sync_time,
                job.previous,
                position.topic,
                position.end_offset,
            )
            for job in jobs
            if self.wanted is None or self.wanted(job)
        ]
        state.mark_emitted(watermark)
        state.add_pending(decided)
        self._persist_partition(partition, state)  # decided and pending, before any upload
        await self._submit(partition, state, decided)
        self._retire_written(partition, state)
        self._forget_absent(partition, state)
        horizon = state.horizon(self.rules)
        if horizon is not None:  # no later sync looks at changes before it
            for cohort in state.cohorts.values():
                cohort.drop_changes_before(horizon)

    async def _catch_up(self, partition: int, state: PartitionState) -> None:
        """Retire the pending syncs reported written; hand over those a restart restored."""
        self._retire_written(partition, state)
        if self._slots[partition].unsubmitted:
            await self._submit(partition, state, list(state.pending))

    def _retire_written(self, partition: int, state: PartitionState) -> None:
        slot = self._slots[partition]
        written, slot.written = slot.written, set()
        if written and state.written(written):
            self._persist_partition(partition, state)

    async def _submit(
        self, partition: int, state: PartitionState, syncs: list[PendingSync]
    ) -> None:
        slot = self._slots[partition]
        slot.unsubmitted = True  # until every one is handed over
        for sync in syncs:
            rule = self._rules_by_id.get(sync.rule_id)
            cohort = state.cohorts.get(sync.cohort_id)
            if rule is None or cohort is None:
                log.warning(
                    "partition %d: pending sync %s dropped: its rule or cohort is gone",
                    partition,
                    sync,
                )
                state.written({sync.key})
                continue
            job = SyncJob(rule, sync.cohort_id, sync.sync_time, sync.previous)
            position = InputPosition(sync.topic, partition, sync.end_offset)
            incremental = self.incremental and sync.cohort_id not in self._built_whole
            build = sync_builder(self.settings, cohort, job, position, incremental)
            await self.outbox.write(build, self._reporter(partition, sync.key))
        slot.unsubmitted = False

    def _reporter(self, partition: int, key: tuple[str, str, int]) -> Callable[[], None]:
        slot = self._slots[partition]

        def written() -> None:
            if self._slots.get(partition) is slot:  # not for a partition taken away since
                slot.written.add(key)

        return written

    def _apply(
        self,
        partition: int,
        state: PartitionState,
        offset: int,
        events: Sequence[MembershipEvent],
    ) -> None:
        cohort_id = events[0].cohort_id  # a message holds one cohort's events
        new_cohort = cohort_id not in state.cohorts
        self.metrics.events += len(events)
        oldest, newest = time_span(events)
        if state.is_late(oldest):
            self.metrics.late_events += (
                len(events)
                if state.is_late(newest)
                else sum(1 for event in events if state.is_late(event.time_ms))
            )
        horizon = state.horizon(self.rules)
        changed: list[tuple[int, Member]] = []
        try:
            state.apply(
                events,
                offset,
                horizon,
                note_change=self._synced(cohort_id),
                changed=changed,
                pack_fresh=not self.journal,  # nothing to journal: members packed at once
            )
        except Exception as exc:  # what was applied before the fault is journaled below
            failure: Exception | None = exc
        else:
            failure = None
        if new_cohort and cohort_id in state.cohorts:
            self.store[codec.cohort_key(partition, cohort_id)] = codec.encode_json(
                {"first": state.cohorts[cohort_id].first_ms}
            )
        journal = self._journal(partition)
        for amplitude_id, member in changed:
            journal.touch(cohort_id, amplitude_id, member)
        if failure is not None:
            raise _ApplyFailed(failure)

    def _synced(self, cohort_id: str) -> bool:
        """Whether any rule syncs this cohort (cached until a reload)."""
        synced = self._synced_cohorts.get(cohort_id)
        if synced is None:
            synced = any(rule.covers(cohort_id) for rule in self.rules)
            self._synced_cohorts[cohort_id] = synced
        return synced

    def _persist_partition(self, partition: int, state: PartitionState) -> None:
        self._journal(partition).flush()  # the state before the decisions made on it
        position = self._slots[partition].position
        self.store[codec.partition_key(partition)] = partition_meta(
            state, next_offset=position.next_offset if position else None
        )

    def _install(self, slot: Slot, partition: int, loaded: LoadedPartition) -> None:
        """Make a rebuilt partition this worker's, then write what its rebuild decided."""
        slot.journal = loaded.journal
        if loaded.state.pending:
            slot.unsubmitted = True
        if loaded.next_offset is not None and slot.position is None:
            slot.position = Position(self.settings.kafka.topic, loaded.next_offset)
        for cohort_id, cohort in loaded.state.cohorts.items():
            if not self._synced(cohort_id):
                cohort.changes = array("q")  # no sync will ask, nor prune them
        state = slot.state = loaded.state
        if state.register_rules(self.rules):
            self._persist_partition(partition, state)
        self._forget_absent(partition, state)  # what the last owner forgot, from the store
        loaded.journal.flush()  # the superseded bundles the rebuild found
