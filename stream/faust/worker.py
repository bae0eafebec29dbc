"""The worker: Faust wiring only (the app, its topics and table, the agent, the timers).

One agent reads the input topic, the repartition topic and the tick topic (co-partitioned,
so partition N of each lands on the same worker) and gives each record to the record pump
(`engine/pump.py`), which delivers them in order to `Processor` and acknowledges each once
the table holds its changes; syncs go to the destination lanes. The membership table is
written only there, inside stream iteration. The timers never touch state: they send tick
records that the agent then handles, when `engine/ticking.py` says a partition needs one.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import faust
from faust.types import TP, EventT

from stream.config import Settings
from stream.domain.partitioner import partition_for
from stream.domain.wording import count
from stream.engine.acknowledgement import FLUSH_SECONDS
from stream.engine.processor import Processor
from stream.engine.pump import RecordPump
from stream.engine.ticking import Tick, TickPolicy
from stream.errors import WorkerFault, describe
from stream.faust.consumer import EventConsumer, heal_stalls, in_order_consumer
from stream.faust.fixes import SafeApp
from stream.faust.outbox import FaustOutbox
from stream.faust.recovery import RecoveryHealer
from stream.faust.reload import ConfigReload
from stream.faust.run import STOP_DEADLINE_SECONDS, Stopper, exit_after, run_app
from stream.faust.security import faust_credentials, is_denial
from stream.faust.web import add_web_views
from stream.kafka.diagnosis import not_authorized
from stream.metrics import Metrics
from stream.ops.looplag import watch_loop_lag
from stream.output.lanes import DestinationLanes
from stream.output.writer import SyncWriter
from stream.sinks import open_sink
from stream.sinks.registry import SinkRegistry

__all__ = ["Worker", "WORKER_FAUST_DEFAULTS", "run_worker"]

#: The worker's Faust defaults: its production settings (a broker's own defaults, such as
#: Tansu's, and `[faust]` override them).
#: - A commit waits until every changelog record is sent: bigger producer batches (well
#:   under Kafka's 1 MB message limit) and a short linger send them in far fewer requests.
#: - At most 500 records a poll (aiokafka's default: all it has fetched, thousands) keeps a
#:   poll within the room the stream queue has left once Faust stops fetching for it (4,096
#:   records, from 80% full), so handing a record on does not wait (`fixes.QuickHandoff`).
#: - A 10 s session (Faust's is 60 s): a worker killed without leaving its group gives its
#:   partitions up within 10 s. Heartbeats run on the event loop, whose longest stall is well
#:   under a second (`cohort_sync_event_loop_lag_max_seconds`).
#: - Requests to a broker time out after 30 s (Faust's 90 s), so a broker that stops
#:   answering is left for the partitions' new leaders in 30 s. The producer keeps Faust's
#:   20 minutes: aiokafka does not retry a batch whose request timed out (the batch's time
#:   to live is that same timeout), so a short one would fail changelog writes that a new
#:   leader or the broker's return would have taken.
#: - Every write waits for all in-sync replicas (`producer_acks = -1`, Faust's default and
#:   refused otherwise in `[faust]`).
WORKER_FAUST_DEFAULTS: dict[str, Any] = {
    "producer_max_batch_size": 512 * 1024,
    "producer_linger": 0.01,
    "broker_max_poll_records": 500,
    "broker_session_timeout": 10.0,
    "broker_heartbeat_interval": 3.0,
    "broker_request_timeout": 30.0,
}

log = logging.getLogger(__name__)


class Worker:
    """The Faust app and the processor it drives, wired step by step: the app, its topics
    and table, the parts that write syncs, the record pump and the agent, the callbacks of a
    rebalance and a stop, and the timers. `fault` is set when the worker stopped itself
    because it cannot go on (see `WorkerFault`); `stopper` is how it stops itself."""

    def __init__(
        self,
        settings: Settings,
        *,
        broker_url: str,
        faust_defaults: Mapping[str, Any] | None = None,
        clock: Callable[[], float] = time.time,
        config_path: str | None = None,
        replace_local_files: bool = False,
    ) -> None:
        """`config_path`: the file SIGHUP reads again (None: SIGHUP is not handled).
        `replace_local_files`: `file://` destinations replace files an earlier run left
        (the embedded broker's input ends with its run, so an earlier run's files are
        another input's and can never be this run's)."""
        self.settings = settings
        self.replace_local_files = replace_local_files
        self.config_path = config_path
        self.reloaded: Settings | None = None
        """A reloaded config waiting for the agent to take it, between two records."""
        self.kafka = settings.kafka
        self.clock = clock
        self.stopper = Stopper()
        self.app = self._make_app(broker_url, faust_defaults)
        self._make_topics()
        self._make_output()
        self.processor = Processor(settings, self.table, self.outbox, partition_for, self.metrics)
        self.pump: RecordPump[EventT] = RecordPump(
            EventConsumer(self.app),
            self._handle,
            self.processor,
            locate=_locate,
            stop=lambda _fault: self.stopper(),
            monotonic=time.monotonic,
        )
        self.tick_policy = TickPolicy(self.processor, self.kafka, started=clock())
        self.consuming: list[int] = []
        """The input partitions last logged as assigned."""
        self._connect_callbacks()
        self._add_agent()
        add_web_views(self.app, self.processor, self.sinks, clock, self.warnings)
        self._add_timers()
        if config_path is not None:
            reload = ConfigReload(config_path, lambda: self.settings, self._accept_reload)
            self.app.task(reload.listen)

    @property
    def fault(self) -> str | None:
        return self.pump.fault

    def stop_for(self, fault: str) -> None:
        """Stop the worker because of `fault` (`RecordPump.stop_for`)."""
        self.pump.stop_for(fault)

    # -- the app, its topics and table, the parts that write syncs

    def _make_app(self, broker_url: str, faust_defaults: Mapping[str, Any] | None) -> SafeApp:
        faust_settings: dict[str, Any] = {
            "store": "memory://",
            "topic_partitions": self.kafka.partitions,
            "web_enabled": "web_port" in self.settings.faust,
            **WORKER_FAUST_DEFAULTS,
            **(faust_defaults or {}),
            **self.settings.faust,
        }
        credentials = faust_credentials(self.kafka.security)
        if credentials is not None:
            faust_settings["broker_credentials"] = credentials
        return SafeApp(self.kafka.app_id, broker=broker_url, **faust_settings)

    def _make_topics(self) -> None:
        kafka, app = self.kafka, self.app
        self.ticks_topic = kafka.ticks_topic
        self.repartition_topic = kafka.repartition_topic
        self.own_topics = {kafka.topic, self.repartition_topic, self.ticks_topic}
        raw: dict[str, Any] = {
            "key_type": bytes,
            "value_type": bytes,
            "key_serializer": "raw",
            "value_serializer": "raw",
            "partitions": kafka.partitions,
        }
        self.sources = app.topic(kafka.topic, self.repartition_topic, self.ticks_topic, **raw)
        self.repartition = app.topic(self.repartition_topic, internal=True, **raw)
        self.ticks = app.topic(self.ticks_topic, internal=True, **raw)
        self.dlq = app.topic(kafka.dlq_topic, **raw)
        self.table = app.Table(
            "membership", default=None, partitions=kafka.partitions, key_type=str, value_type=bytes
        )

    def _make_output(self) -> None:
        self.metrics = Metrics()
        replacing = self.replace_local_files
        self.sinks = SinkRegistry(
            self.settings.destinations,
            lambda dest: open_sink(dest, overwrite=replacing and dest.scheme == "file"),
        )
        self.writer = SyncWriter(self.sinks, self.metrics)
        self.lanes = DestinationLanes(self.writer)
        self.outbox = FaustOutbox(
            self.dlq,
            self.repartition,
            self.lanes,
            max_request_size=self.app.conf.producer_max_request_size,
            on_fault=self.stop_for,
            on_refused=self._refused,
        )

    # -- rebalances and the stop

    def _connect_callbacks(self) -> None:
        self.app.on_seeked = self._start_partitions
        self.app.on_revoking = self._revoking
        self.app.on_stopping = self._stopping
        self.app.on_partitions_revoked.connect(self._on_revoked)  # type: ignore[arg-type]
        recovery = RecoveryHealer(self.app)
        self.app.watchdog = lambda: recovery.check(time.monotonic())
        self.app.refusals_handled = frozenset({self.kafka.dlq_topic})  # the outbox retries
        self.app.on_refused = self._refused

    def _refused(self, operation: str, topic: str, error: BaseException) -> None:
        """The broker refused a record, or a read, for good: nothing more is committed
        (`InOrderConsumer._commit`), and the worker stops with one line saying why."""
        if is_denial(error):
            self.stop_for(not_authorized(self.kafka, operation, f"topic {topic}"))
        else:
            doing = "writing to" if operation == "Write" else "reading"
            self.stop_for(f"{doing} {topic} failed: {describe(error)}")

    def _start_partitions(self, starts: Mapping[TP, int | None]) -> None:
        """The assignment's tables are recovered and its partitions about to be read: every
        input partition starts its rebuild now, side by side (`Processor.assigned`)."""
        mine = sorted(tp.partition for tp in starts if tp.topic == self.kafka.topic)
        self.processor.assigned(mine)
        if mine != self.consuming:
            self.consuming = mine
            log.info("ready: consuming %s partitions %s", self.kafka.topic, _ranges(mine))
        self.pump.start(
            {
                TP(tp.topic, tp.partition): offset
                for tp, offset in starts.items()
                if tp.topic in self.own_topics
            }
        )

    def _revoking(self, revoked: set[TP]) -> None:
        """Give up the records held for revoked partitions: Faust waits for every record
        not acknowledged before it lets a rebalance go on, and their new owner reads them."""
        self.pump.revoke(TP(tp.topic, tp.partition) for tp in revoked)

    async def _on_revoked(self, sender: Any, revoked: set[TP], **_: Any) -> None:
        mine = {tp.partition for tp in revoked if tp.topic == self.kafka.topic}
        self.processor.revoke(mine)
        for partition in mine:
            self.tick_policy.revoke(partition)

    async def _stopping(self) -> None:
        """Let the lanes finish for a moment, then give up what waits, so the stop does
        not: the next start does it (it is pending in the table)."""
        exit_after(STOP_DEADLINE_SECONDS, lambda: self.fault)
        await self.lanes.drain(timeout=STOP_GRACE_SECONDS)
        self.writer.abandon()
        self.pump.abandon_all()

    # -- the agent

    def _add_agent(self) -> None:
        @self.app.agent(self.sources, name="cohort-sync-membership")
        async def membership(stream: Any) -> None:
            async for event in stream.noack().events():
                await self.pump.receive(event)

    async def _handle(self, event: EventT) -> None:
        if self.reloaded is not None:
            self._take_reloaded()
        message = event.message
        partition = message.partition
        if message.topic == self.ticks_topic:
            self.tick_policy.ticked(partition)
            await self.processor.on_tick(partition, json.loads(event.value)["now"])
            return
        self.tick_policy.record_began(partition, self.clock())
        try:
            await self.processor.on_record(
                message.topic,
                partition,
                message.offset,
                message.key,
                event.value,
                timestamp_ms=round(message.timestamp * 1000),  # Faust's are in seconds
            )
        finally:
            self.tick_policy.record_ended(partition, self.clock())

    # -- reloading the config (SIGHUP)

    async def _accept_reload(self, new: Settings) -> None:
        """A config that loaded: the agent takes it between two records; a tick to every
        partition wakes it."""
        self.reloaded = replace(self.settings, destinations=new.destinations, syncs=new.syncs)
        for tp in sorted(self.app.consumer.assignment()):
            if tp.topic == self.kafka.topic and not self.tick_policy.waiting(tp.partition):
                await self._send_tick(tp.partition, Tick(None))

    def _take_reloaded(self) -> None:
        settings, self.reloaded = self.reloaded, None
        assert settings is not None
        old = {rule.rule_id for rule in self.settings.syncs}
        self.sinks.reconfigure(settings.destinations)
        self.settings = settings
        self.processor.reconfigure(settings)
        new = {rule.rule_id for rule in settings.syncs}
        log.info(
            "SIGHUP: config reloaded from %s: %s, %s (%d added, %d removed)",
            self.config_path,
            count(len(settings.destinations), "destination"),
            count(len(settings.syncs), "sync"),
            len(new - old),
            len(old - new),
        )

    # -- the timers

    def _add_timers(self) -> None:
        self.app.timer(interval=self.tick_policy.interval)(self._tick_partitions)
        self.app.timer(interval=FLUSH_SECONDS)(self._flush_quiet_partitions)
        self.app.task(self._watch_loop)

    async def _watch_loop(self) -> None:
        await watch_loop_lag(self.metrics.loop_lag)

    async def _tick_partitions(self) -> None:
        """Load each newly assigned partition (writing any sync it had due when the last
        worker stopped), flush changes waiting in a journal (their records are acknowledged
        then), and advance idle, caught-up partitions by the wall clock."""
        try:
            now = self.clock()
            if not self.tick_policy.busy:
                await heal_stalls(
                    self.app,
                    self.pump.delivery,
                    self.pump.progress,
                    self.own_topics,
                    time.monotonic(),
                )
            for tp in sorted(self.app.consumer.assignment()):
                if tp.topic != self.kafka.topic:
                    continue
                partitions = (tp, TP(self.repartition_topic, tp.partition))
                tick = await self.tick_policy.tick_for(
                    tp.partition, now, functools.partial(_caught_up, self.app, *partitions)
                )
                if tick is not None:
                    await self._send_tick(tp.partition, tick)
        except Exception:  # a timer that raises stops the worker: log and try next time
            log.exception("partition timer failed")

    def warnings(self) -> list[str]:
        """What an operator should know that is not a fault (`/health` and the status page)."""
        return self.tick_policy.warnings(int(self.clock() * 1000))

    async def _flush_quiet_partitions(self) -> None:
        """A partition whose records stopped coming gets a tick, which flushes its journal:
        its last records are acknowledged, and committed, without waiting for more."""
        try:
            for partition in self.tick_policy.flushes(self.pump.acks.dirty_partitions()):
                await self._send_tick(partition, Tick(None))
        except Exception:
            log.exception("flush timer failed")

    async def _send_tick(self, partition: int, tick: Tick) -> None:
        self.tick_policy.sent(partition, tick)
        value = json.dumps({"now": tick.now_ms}).encode()
        await self.ticks.send(value=value, partition=partition)


def stop_line(reason: str, topic: str, committed: Mapping[int, int]) -> str:
    """The worker's last line: why it stopped, and where the next start reads on."""
    if not committed:
        return f"stopped ({reason}): nothing committed on {topic}"
    offsets = ", ".join(f"{partition}@{committed[partition]}" for partition in sorted(committed))
    return (
        f"stopped ({reason}): committed {topic} partition@offset {offsets}; "
        "the next start reads on from there"
    )


def _ranges(numbers: list[int]) -> str:
    """`[0, 1, 2, 5]` -> `0-2, 5`."""
    runs: list[list[int]] = []
    for number in numbers:
        if runs and number == runs[-1][-1] + 1:
            runs[-1].append(number)
        else:
            runs.append([number])
    return ", ".join(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]) for run in runs)


def _locate(event: EventT) -> tuple[str, int, int]:
    message = event.message
    return message.topic, message.partition, message.offset


async def _caught_up(app: faust.App, *partitions: TP) -> bool:
    for tp in partitions:
        if tp not in app.consumer.assignment():
            continue
        highwater = app.consumer.highwater(tp)
        position = await app.consumer.position(tp)
        if highwater is None or position is None or position < highwater:
            return False
    return True


#: How long a stop waits for the destination lanes to write what they hold.
STOP_GRACE_SECONDS = 5.0


def run_worker(worker: Worker, *, loglevel: str = "info") -> None:
    """Run until SIGTERM or SIGINT, then stop cleanly (Faust's worker owns the loop).
    Raises `WorkerFault` when the worker stopped itself."""
    try:
        stopped_by = run_app(worker.app, loglevel=loglevel, stopper=worker.stopper)
    finally:
        worker.writer.close()
    topic = worker.kafka.topic
    if worker.fault is not None:  # the refused records' futures, collected at exit: noise now
        logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    reason = worker.fault or stopped_by or "the app stopped"
    log.info("%s", stop_line(reason, topic, in_order_consumer(worker.app).committed(topic)))
    if worker.fault is not None:
        raise WorkerFault(worker.fault)
