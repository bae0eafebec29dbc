"""The worker's logic, free of Faust: what to do with one record or one clock tick.

`faust/worker.py` calls `on_record` and `on_tick` from inside its agent's stream iteration (the only
place Faust tables may be written), with the table as `store`. Per partition it keeps a
`PartitionState`, rebuilt from the store when the partition is assigned (or first touched):
from a copy of its keys, in a thread (`engine/rebuilding.py`), so the event loop goes on.
For each record: parse and admit it or dead-letter it (`intake.py`), forward it to the
repartition topic if it is not on its cohort's partition, apply the events, then decide
every sync the new watermark makes due. A replay hands over a partition's fetched records
at once, applied a run at a time (`runs.py`).

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
from collections.abc import Callable, Iterable, MutableMapping, Sequence
from typing import Any

from stream.config import Settings, SyncRule
from stream.domain.events import MembershipEvent, time_span
from stream.domain.membership import Member
from stream.domain.retention import too_late_before
from stream.engine import runs
from stream.engine.building import sync_builder
from stream.engine.intake import InputRecord, Intake, Record
from stream.engine.outbox import Outbox
from stream.engine.rebuilding import Offload, Rebuilder
from stream.engine.slot import Position, Slot
from stream.errors import RecordTooLarge, describe
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
        self._slots: dict[int, Slot] = {}
        self.metrics = metrics or Metrics()
        self.intake = Intake(settings, outbox, self.metrics, self._slot)
        self.rules: tuple[SyncRule, ...] = settings.syncs
        self._rules_by_id = {rule.rule_id: rule for rule in self.rules}
        self.store = store
        self.partition_for = partition_for
        self.wanted = wanted
        self.incremental = incremental
        self.journal = journal
        self._rebuilder = Rebuilder(
            store,
            journal=journal,
            track_exits=settings.kafka.retain_exited_ms is not None,
            offload=offload,
        )
        self._homes: dict[str, tuple[bytes, int]] = {}
        self._synced_cohorts: dict[str, bool] = {}
        self._built_whole: set[str] = set()
        """Cohorts no rule synced before a reload: their changes were not kept, so each of
        their syncs is built from every member (the same bytes) until the next start."""

    @property
    def settings(self) -> Settings:
        return self.intake.settings

    @property
    def outbox(self) -> Outbox:
        """Where syncs, forwarded records and dead letters go (held once, by the intake)."""
        return self.intake.outbox

    @outbox.setter
    def outbox(self, outbox: Outbox) -> None:
        self.intake.outbox = outbox

    def reconfigure(self, settings: Settings) -> None:
        """Take `settings`' destinations and syncs (a reload); call it between records, not
        during one. A rule new to a partition starts at the first sync time after its
        decided watermark (as at a start); the store is written at each partition's next
        event, inside its own stream iteration (`partition`)."""
        was_synced = {cohort for cohort, synced in self._synced_cohorts.items() if synced}
        self.intake.settings = settings
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
        await self._one(topic, partition, Record(offset, key, value, timestamp_ms), None)

    async def _one(
        self,
        topic: str,
        partition: int,
        record: InputRecord,
        events: Sequence[MembershipEvent] | None,
    ) -> None:
        """`on_record`, with the record's `events` parsed already (None: not yet)."""
        try:
            await self._handle(topic, partition, record, events)
        except _Revoked:
            return  # not seen here: the slot is gone with the partition
        except BaseException:
            self.intake.seen(topic, partition, record.offset)
            raise
        self.intake.seen(topic, partition, record.offset)

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
            await self._one(topic, partition, record, parsed)
            done += 1
            if self.metrics.forwarded != forwarded:
                break
        return done

    async def _run(
        self, topic: str, partition: int, records: Sequence[InputRecord], start: int
    ) -> tuple[int, Sequence[MembershipEvent] | None]:
        """Handle the records from `start` that can go together (`runs.py`), then decide
        what became due; return how many, with the events of the one it stopped before,
        parsed (None: it did not parse it). Only without a journal: a journal's flush
        follows its records one by one."""
        slot = self._slots.get(partition)
        state = None if slot is None else slot.state
        if self.journal or slot is None or state is None or slot.written or slot.unsubmitted:
            return 0, None
        run = await runs.take(
            self.intake,
            topic,
            partition,
            records,
            start,
            state=state,
            due=state.next_due(self.rules),
            lateness=self._lateness,
            home=self._home,
        )
        applied = runs.apply(
            state,
            run,
            horizon=state.horizon(self.rules),
            journal=self._journal(partition),
            metrics=self.metrics,
            synced=self._synced,
        )
        for record, exc in applied.failures:
            reason = f"the record could not be applied: {describe(exc)}"
            await self.intake.dead_letter(topic, partition, record, reason)
        handled = run.dead_lettered
        for taken in run.records.values():  # applied, or dead-lettered as their apply failed
            handled = max(taken[-1].offset, -1 if handled is None else handled)
        if handled is not None:
            self.intake.handled(topic, partition, handled)
        if run.end > start:
            self.intake.seen(topic, partition, records[run.end - 1].offset)
        if applied.newest is not None and applied.last is not None:
            watermark = state.observe(applied.newest, self._lateness)
            due = state.next_due(self.rules)
            if due is not None and watermark >= due:
                position = InputPosition(topic, partition, applied.last + 1)
                await self._advance(partition, state, watermark, position)
        return run.end - start, run.next_events

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

    async def _handle(
        self,
        topic: str,
        partition: int,
        record: InputRecord,
        events: Sequence[MembershipEvent] | None,
    ) -> None:
        """`events`: the record's, parsed already (None: parse it here)."""
        intake = self.intake
        if events is None:
            events = await intake.parsed(topic, partition, record)
            if events is None:
                return
        if not events:
            return
        # Checked before forwarding: the repartitioned copy has the forwarder's timestamp.
        if await intake.ahead(topic, partition, record, events):
            return
        is_input = topic == self.settings.kafka.topic
        cohort_key, home = self._home(events[0].cohort_id)
        if is_input and (record.key != cohort_key or home != partition):
            try:
                await self.outbox.forward(key=cohort_key, value=record.value or b"", partition=home)
            except RecordTooLarge as exc:
                await intake.dead_letter(topic, partition, record, str(exc))
                return
            self.metrics.forwarded += 1
            return
        state = await self._rebuilt(partition)
        slot = self._slots[partition]
        if slot.written or slot.unsubmitted:
            await self._catch_up(partition, state)
        if await intake.late(topic, partition, record, state, events):
            return
        # Apply first, then decide what became due: a record that makes sync T due has no
        # event before T (its newest time minus the lateness reached T), so T cannot see it.
        try:
            self._apply(partition, state, record.offset, events)
        except _ApplyFailed as failed:
            reason = f"the record could not be applied: {describe(failed.cause)}"
            await intake.dead_letter(topic, partition, record, reason)
            return
        journal = self._journal(partition)
        if journal.dirty >= FLUSH_MEMBERS:
            journal.flush()
        intake.handled(topic, partition, record.offset)
        _, newest = time_span(events)
        watermark = state.observe(newest, self._lateness)
        due = state.next_due(self.rules)  # checked here: the per-record cost of syncs
        if due is not None and watermark >= due:
            position = InputPosition(topic, partition, record.offset + 1)
            await self._advance(partition, state, watermark, position)

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
                cohort.forget_changes()
        state = slot.state = loaded.state
        if state.register_rules(self.rules):
            self._persist_partition(partition, state)
        self._forget_absent(partition, state)  # what the last owner forgot, from the store
        loaded.journal.flush()  # the superseded bundles the rebuild found
