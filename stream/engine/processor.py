"""The worker's logic, free of Faust: what to do with one record or one clock tick.

`faust/worker.py` calls `on_record` and `on_tick` from inside its agent's stream iteration (the only
place Faust tables may be written), with the table as `store`. Per partition it keeps a
`PartitionState`, rebuilt from the store the first time the partition is touched after an
assignment: from a copy of its keys, in a thread (`offload`), so the event loop goes on.
For each record: parse (or dead-letter), forward to the repartition topic if the record is
not on its cohort's partition, apply the events, then decide every sync the new watermark
makes due.

Changed members go to the partition's `Journal`, written to the store in bundles: when
enough wait, on a tick, and always before the partition's metadata, so the store never
holds a decision without the state it was made on. A record is durable once `durable` says
so; the caller acknowledges records only then.

A decided sync is persisted as pending (with the watermark) before it is handed to the
outbox, which builds it at once and writes it when its destination takes it; the outbox
then reports it written and the next record or tick of the partition forgets it. A restart
hands the pending syncs over again, built from the same state: the same bytes.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from array import array
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from stream.config import Settings, SyncRule
from stream.domain.events import MembershipEvent, parse_message
from stream.domain.membership import Member
from stream.domain.retention import too_late_before
from stream.domain.windows import format_duration, format_time
from stream.engine.building import sync_builder
from stream.engine.outbox import Outbox
from stream.errors import InvalidEvent, RecordTooLarge, describe
from stream.metrics import Metrics
from stream.output.sync import InputPosition
from stream.state import codec
from stream.state.journal import FLUSH_MEMBERS, Journal
from stream.state.partition import PartitionState, PendingSync, SyncJob
from stream.state.stored import LoadedPartition, load_partition, partition_items, partition_meta

__all__ = ["Processor"]

log = logging.getLogger(__name__)


class _ApplyFailed(Exception):
    """Applying a record's events raised `cause` (the events before it stay applied)."""

    def __init__(self, cause: Exception) -> None:
        super().__init__(str(cause))
        self.cause = cause


@dataclass
class _Position:
    topic: str
    next_offset: int


T = TypeVar("T")


class Offload(Protocol):
    """Runs `work` off the event loop and gives its result."""

    def __call__(self, work: Callable[[], T], /) -> Awaitable[T]: ...


async def _in_thread(work: Callable[[], T]) -> T:
    return await asyncio.get_running_loop().run_in_executor(None, work)


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
        self.offload = offload or _in_thread
        self.partitions: dict[int, PartitionState] = {}
        self._revocations: dict[int, int] = {}
        """Per partition: how often `forget` dropped it (a rebuild in flight checks it)."""
        self._positions: dict[int, _Position] = {}
        self.input_next_offset: dict[int, int] = {}
        """Per input partition: the offset after the last record handled (for lag)."""
        self._written: dict[int, set[tuple[str, str, int]]] = {}
        """Per partition: pending syncs the outbox reported written, not yet forgotten."""
        self._unsubmitted: set[int] = set()
        """Partitions whose pending syncs must be handed to the outbox (again)."""
        self._journals: dict[int, Journal] = {}
        self._homes: dict[str, tuple[bytes, int]] = {}
        self._synced_cohorts: dict[str, bool] = {}
        self._meta_changed: set[int] = set()
        """Partitions whose metadata a reload changed, persisted at their next event."""
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
        for partition, state in self.partitions.items():
            if state.register_rules(self.rules):
                self._meta_changed.add(partition)
            for cohort_id, cohort in state.cohorts.items():
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
        try:
            await self._handle(topic, partition, offset, key, value, timestamp_ms)
        except _Revoked:
            return
        except BaseException:
            self._seen(topic, partition, offset)
            raise
        self._seen(topic, partition, offset)

    def _seen(self, topic: str, partition: int, offset: int) -> None:
        if topic == self.settings.kafka.topic:
            self.input_next_offset[partition] = offset + 1

    async def _handle(
        self,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        timestamp_ms: int | None,
    ) -> None:
        try:
            events = parse_message(value)
        except InvalidEvent as exc:
            await self._dead_letter(topic, partition, offset, key, value, exc.reason)
            return
        except Exception as exc:  # a fault of the record, not of the worker: never fatal
            reason = f"the record could not be parsed: {describe(exc)}"
            await self._dead_letter(topic, partition, offset, key, value, reason)
            return
        if not events:
            return
        is_input = topic == self.settings.kafka.topic
        if is_input and timestamp_ms is not None:
            # Checked before forwarding: the repartitioned copy has the forwarder's timestamp.
            too_far_ahead = self._too_far_ahead(timestamp_ms, key, events)
            if too_far_ahead is not None:
                self.metrics.too_far_ahead += 1
                await self._dead_letter(topic, partition, offset, key, value, too_far_ahead)
                return
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
        if partition in self._written or partition in self._unsubmitted:
            await self._catch_up(partition, state)
        too_late = self._too_late(state, events)
        if too_late is not None:
            self.metrics.too_late += 1
            await self._dead_letter(topic, partition, offset, key, value, too_late)
            return
        # Apply first, then decide what became due: a record that makes sync T due has no
        # event before T (its newest time minus the lateness reached T), so T cannot see it.
        try:
            self._apply(partition, state, offset, events)
        except _ApplyFailed as failed:
            reason = f"the record could not be applied: {describe(failed.cause)}"
            await self._dead_letter(topic, partition, offset, key, value, reason)
            return
        journal = self._journals[partition]
        if journal.dirty >= FLUSH_MEMBERS:
            journal.flush()
        self._handled(topic, partition, offset)
        newest = max(event.time_ms for event in events) if len(events) > 1 else events[0].time_ms
        watermark = state.observe(newest, self._lateness)
        due = state.next_due(self.rules)  # checked here: the per-record cost of syncs
        if due is not None and watermark >= due:
            await self._advance(
                partition, state, watermark, InputPosition(topic, partition, offset + 1)
            )

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
        position = self._positions.get(partition)
        if position is None:
            self._positions[partition] = _Position(topic, offset + 1)
        else:
            position.topic, position.next_offset = topic, offset + 1

    def _too_late(self, state: PartitionState, events: list[MembershipEvent]) -> str | None:
        """Why the record is too late to apply (`retention.py`), or None when it is not."""
        retain, decided = self.settings.kafka.retain_exited_ms, state.emitted_through
        if retain is None or decided is None:
            return None
        oldest = min(event.time_ms for event in events) if len(events) > 1 else events[0].time_ms
        if oldest >= decided - retain:
            return None
        return (
            f"too late: event time {format_time(oldest)} is more than kafka.retain_exited "
            f"({format_duration(retain)}) before the partition's watermark "
            f"{format_time(decided)}; members absent that long are forgotten"
        )

    def _too_far_ahead(
        self, timestamp_ms: int, key: bytes | None, events: list[MembershipEvent]
    ) -> str | None:
        """Why the record's event time cannot be believed (`kafka.max_future`), or None. The
        record's Kafka timestamp is in the log, so a replay decides the same."""
        limit = self.settings.kafka.max_future_ms
        if limit is None or timestamp_ms < 0:  # -1: a record of the oldest format has none
            return None
        newest = max(event.time_ms for event in events) if len(events) > 1 else events[0].time_ms
        if newest <= timestamp_ms + limit:
            return None
        shown = "none" if key is None else repr(key.decode("utf-8", "replace")[:64])
        return (
            f"too far ahead: event time {format_time(newest)} is more than kafka.max_future "
            f"({format_duration(limit)}) after the record's Kafka timestamp "
            f"{format_time(timestamp_ms)} (key {shown})"
        )

    def _forget_absent(self, partition: int, state: PartitionState) -> None:
        """Forget the members absent for longer than `kafka.retain_exited` (`retention.py`)."""
        before = too_late_before(state.emitted_through, self.settings.kafka.retain_exited_ms)
        horizon = state.horizon(self.rules)
        if before is None or horizon is None:
            return
        journal = self._journals[partition]
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
        `None` only loads the partition (handing over its pending syncs), forgets the
        syncs reported written and flushes the journal."""
        try:
            state = await self._rebuilt(partition)
        except _Revoked:
            return
        await self._catch_up(partition, state)
        self._journals[partition].flush()
        watermark = state.watermark if now_ms is None else state.observe(now_ms, self._lateness)
        if watermark is None:
            return
        known = self._positions.get(partition)
        position = InputPosition(
            known.topic if known else self.settings.kafka.topic,
            partition,
            known.next_offset if known else 0,
        )
        await self._advance(partition, state, watermark, position)

    def unsettled(self, partition: int) -> bool:
        """Whether the partition has written syncs to forget or changes not yet in the store
        (a tick does both when it is idle)."""
        return (
            bool(self._written.get(partition))
            or not self.durable(partition)
            or partition in self._meta_changed
        )

    def flush(self, partition: int) -> None:
        """Write the partition's waiting changes to the store now (inside stream iteration)."""
        journal = self._journals.get(partition)
        if journal is not None:
            journal.flush()

    def durable(self, partition: int) -> bool:
        """Whether every record handled on this partition has its changes in the store."""
        journal = self._journals.get(partition)
        return journal is None or journal.durable

    def next_due(self, partition: int) -> int | None:
        """The earliest sync time this partition will emit next (None: nothing to sync)."""
        state = self.partitions.get(partition)
        return None if state is None else state.next_due(self.rules)

    def forget(self, partitions: Iterable[int]) -> None:
        """Drop the state of partitions this worker no longer owns."""
        for partition in partitions:
            self._revocations[partition] = self._revocations.get(partition, 0) + 1
            self.partitions.pop(partition, None)
            self._positions.pop(partition, None)
            self.input_next_offset.pop(partition, None)
            self._written.pop(partition, None)
            self._unsubmitted.discard(partition)
            self._journals.pop(partition, None)
            self._meta_changed.discard(partition)

    async def _rebuilt(self, partition: int) -> PartitionState:
        """`partition`'s state; one this worker has not yet is rebuilt from the table off
        the event loop (from a copy of its keys: the store may change meanwhile), and
        `_Revoked` raised when the partition was taken away before it was done."""
        if partition not in self.partitions:
            items = partition_items(self.store, partition)
            revocations = self._revocations.get(partition, 0)
            loaded = await self.offload(functools.partial(self._read, partition, items))
            if self._revocations.get(partition, 0) != revocations:
                raise _Revoked(partition)
            if partition not in self.partitions:
                self._install(partition, loaded)
        return self.partition(partition)

    def partition(self, partition: int) -> PartitionState:
        """`partition`'s state, rebuilt here (on the caller's thread) if need be."""
        if partition not in self.partitions:
            items = partition_items(self.store, partition)
            self._install(partition, self._read(partition, items))
        state = self.partitions[partition]
        if partition in self._meta_changed:
            self._meta_changed.discard(partition)
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
        self._settle(partition, state)
        self._forget_absent(partition, state)
        horizon = state.horizon(self.rules)
        if horizon is not None:  # no later sync looks at changes before it
            for cohort in state.cohorts.values():
                cohort.forget_changes_before(horizon)

    async def _catch_up(self, partition: int, state: PartitionState) -> None:
        """Forget the pending syncs reported written; hand over those a restart restored."""
        self._settle(partition, state)
        if partition in self._unsubmitted:
            await self._submit(partition, state, list(state.pending))

    def _settle(self, partition: int, state: PartitionState) -> None:
        written = self._written.pop(partition, None)
        if written and state.written(written):
            self._persist_partition(partition, state)

    async def _submit(
        self, partition: int, state: PartitionState, syncs: list[PendingSync]
    ) -> None:
        self._unsubmitted.add(partition)  # until every one is handed over
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
        self._unsubmitted.discard(partition)

    def _reporter(self, partition: int, key: tuple[str, str, int]) -> Callable[[], None]:
        def written() -> None:
            if partition in self.partitions:
                self._written.setdefault(partition, set()).add(key)

        return written

    def _apply(
        self, partition: int, state: PartitionState, offset: int, events: list[MembershipEvent]
    ) -> None:
        cohort_id = events[0].cohort_id  # a message holds one cohort's events
        new_cohort = cohort_id not in state.cohorts
        self.metrics.events += len(events)
        if state.emitted_through is not None:
            self.metrics.late_events += sum(1 for event in events if state.is_late(event.time_ms))
        horizon = state.horizon(self.rules)
        changed: list[tuple[int, Member]] = []
        try:
            state.apply(
                events, offset, horizon, note_change=self._synced(cohort_id), changed=changed
            )
        except Exception as exc:  # what was applied before the fault is journaled below
            failure: Exception | None = exc
        else:
            failure = None
        if new_cohort and cohort_id in state.cohorts:
            self.store[codec.cohort_key(partition, cohort_id)] = codec.encode_json(
                {"first": state.cohorts[cohort_id].first_ms}
            )
        journal = self._journals[partition]
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
        self._journals[partition].flush()  # the state before the decisions made on it
        position = self._positions.get(partition)
        self.store[codec.partition_key(partition)] = partition_meta(
            state, next_offset=position.next_offset if position else None
        )

    def _read(self, partition: int, items: dict[str, Any]) -> LoadedPartition:
        """The partition rebuilt from `items`; reads nothing else and writes nothing."""
        return load_partition(
            self.store,
            partition,
            items=items,
            journal=self.journal,
            track_exits=self.settings.kafka.retain_exited_ms is not None,
        )

    def _install(self, partition: int, loaded: LoadedPartition) -> None:
        """Make a rebuilt partition this worker's, then write what its rebuild decided."""
        self._journals[partition] = loaded.journal
        if loaded.state.pending:
            self._unsubmitted.add(partition)
        if loaded.next_offset is not None:
            self._positions.setdefault(
                partition, _Position(self.settings.kafka.topic, loaded.next_offset)
            )
        for cohort_id, cohort in loaded.state.cohorts.items():
            if not self._synced(cohort_id):
                cohort.changes = array("q")  # no sync will ask, nor prune them
        state = self.partitions[partition] = loaded.state
        if state.register_rules(self.rules):
            self._persist_partition(partition, state)
        self._forget_absent(partition, state)  # what the last owner forgot, from the store
        loaded.journal.flush()  # the superseded bundles the rebuild found
