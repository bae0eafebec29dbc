"""Destination lanes: a failing destination holds up only its own syncs, in order; a
lane writes several cohorts' syncs at once, and each cohort's one after another."""

import asyncio
import functools
import inspect
import threading
import warnings
from collections.abc import Callable

import pytest

from stream.errors import PermanentSinkError, WriteAbandoned
from stream.metrics import Metrics
from stream.output.lanes import SYNCS_AT_ONCE, DestinationLanes
from stream.output.sync import SyncFile, SyncOutput
from stream.output.writer import SyncWriter
from stream.sinks import PUTS_AT_ONCE, Body, Inspection, Put


class Sink:
    def __init__(self, *, failing: bool = False) -> None:
        self.failing = failing
        self.stored: list[str] = []

    def put(self, key: str, body: Body) -> Put:
        if self.failing:
            raise PermanentSinkError(f"s3://missing/{key}: NoSuchBucket")
        self.stored.append(key)
        return Put.WRITTEN

    def location(self, key: str) -> str:
        return f"mem://{key}"

    def probe(self) -> None: ...

    def inspect(self) -> Inspection:
        return Inspection()


def sync(destination: str, hour: int, size: int = 10, cohort: str = "c") -> SyncOutput:
    prefix = "" if cohort == "c" else f"{cohort}_"
    files = tuple(
        SyncFile(f"{prefix}{hour}_{kind}.csv", Body.of(b"x" * size))
        for kind in ("entering", "exiting", "existing")
    )
    return SyncOutput(
        destination=destination,
        cohort_id=cohort,
        sync_time=hour,
        counts={"entering": 0, "exiting": 0, "existing": 0},
        csv_files=files,
        manifest=SyncFile(f"{prefix}{hour}_manifest.json", Body.of(b"{}")),
    )


class GatheringSink(Sink):
    """Each put waits (up to 5 s) until `gather` puts run at once, and the sink records
    which puts ran at the same time."""

    def __init__(self, gather: int) -> None:
        super().__init__()
        self.gather = gather
        self.running: set[str] = set()
        self.most = 0
        self.overlaps: set[tuple[str, str]] = set()
        self.lock = threading.Lock()
        self.gathered = threading.Event()

    def put(self, key: str, body: Body) -> Put:
        with self.lock:
            self.overlaps.update((key, other) for other in self.running)
            self.running.add(key)
            self.most = max(self.most, len(self.running))
            if len(self.running) >= self.gather:
                self.gathered.set()
        self.gathered.wait(timeout=5)
        with self.lock:
            self.running.discard(key)
            self.stored.append(key)
        return Put.WRITTEN


def ready(output: SyncOutput) -> Callable[[], SyncOutput]:
    """A sync's build that gives `output`."""
    return lambda: output


async def until(condition: Callable[[], bool], what: str) -> None:
    """Poll `condition` for up to 5 s."""
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_failing_destination_holds_only_its_own_lane_and_catches_up_in_order() -> None:
    good, bad = Sink(), Sink(failing=True)
    metrics = Metrics()
    writer = SyncWriter({"good": good, "bad": bad}, metrics, first_backoff=0.01, max_backoff=0.05)
    lanes = DestinationLanes(writer)
    written: list[tuple[str, int]] = []

    async def scenario() -> None:
        for hour in (1, 2, 3):
            for name in ("bad", "good"):
                output = sync(name, hour)
                await lanes.submit(ready(output), functools.partial(written.append, (name, hour)))
        await until(lambda: len(good.stored) == 12, "the good destination's three syncs")
        assert written == [("good", 1), ("good", 2), ("good", 3)]
        assert metrics.queued_syncs == {"bad": 3, "good": 0}
        assert metrics.upload_errors[("bad", "permanent")] > 0
        assert not await lanes.drain(timeout=0.05)
        bad.failing = False  # the bucket is created
        assert await lanes.drain(timeout=5)
        writer.abandon()

    asyncio.run(scenario())
    writer.close()
    assert [h for n, h in written if n == "bad"] == [1, 2, 3]
    assert bad.stored[:4] == [
        "1_entering.csv",
        "1_exiting.csv",
        "1_existing.csv",
        "1_manifest.json",
    ]
    assert metrics.queued_syncs == {"bad": 0, "good": 0}


def test_a_full_lane_makes_submit_wait_and_a_stop_ends_the_wait() -> None:
    metrics = Metrics()
    writer = SyncWriter({"bad": Sink(failing=True)}, metrics, first_backoff=0.01)
    lanes = DestinationLanes(writer, max_bytes=100)

    async def scenario() -> None:
        await lanes.submit(lambda: sync("bad", 1, size=40), lambda: None)  # always admitted
        second = asyncio.ensure_future(lanes.submit(lambda: sync("bad", 2, size=40), lambda: None))
        await until(lambda: metrics.upload_errors[("bad", "permanent")] >= 3, "failed attempts")
        assert not second.done()  # 2 x 122 bytes > 100: it waits for room
        writer.abandon()
        with pytest.raises(WriteAbandoned):
            await asyncio.wait_for(second, timeout=5)

    asyncio.run(scenario())
    writer.close()


def test_work_offered_after_the_stop_is_closed_unrun_without_a_never_awaited_warning() -> None:
    writer = SyncWriter({}, Metrics())
    ran: list[bool] = []

    async def work() -> None:
        ran.append(True)

    async def main() -> None:
        writer.abandon()
        coroutine = work()
        with pytest.raises(WriteAbandoned):
            await writer.unless_abandoned(coroutine)
        assert inspect.getcoroutinestate(coroutine) == inspect.CORO_CLOSED  # never to run, nor warn

    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        asyncio.run(main())
    assert ran == []


def test_a_lane_writes_syncs_of_different_cohorts_at_once() -> None:
    """Eight cohorts' syncs: the lane's writers put their CSV files all at the same time
    (a lane writing one sync at a time would have at most three puts running)."""
    assert SYNCS_AT_ONCE * 3 == PUTS_AT_ONCE
    sink = GatheringSink(gather=PUTS_AT_ONCE)
    writer = SyncWriter({"d": sink}, Metrics())
    lanes = DestinationLanes(writer)
    written: list[str] = []

    async def scenario() -> None:
        for index in range(8):
            output = sync("d", 1, cohort=f"c{index}")
            await lanes.submit(ready(output), functools.partial(written.append, output.cohort_id))
        assert await lanes.drain(timeout=30)
        writer.abandon()

    asyncio.run(scenario())
    writer.close()
    assert sink.most == PUTS_AT_ONCE
    assert sorted(written) == [f"c{index}" for index in range(8)]


def test_a_cohort_s_syncs_are_written_one_after_another_in_order() -> None:
    """Three syncs of cohort a and one of b: b's files are put beside a's, but no two of
    a's syncs are ever written at the same time, and a's land in the order submitted."""
    sink = GatheringSink(gather=6)  # a sync of a and b's: three CSVs each
    writer = SyncWriter({"d": sink}, Metrics())
    lanes = DestinationLanes(writer)
    written: list[tuple[str, int]] = []

    async def scenario() -> None:
        for cohort, hour in (("a", 1), ("a", 2), ("a", 3), ("b", 1)):
            output = sync("d", hour, cohort=cohort)
            await lanes.submit(ready(output), functools.partial(written.append, (cohort, hour)))
        assert await lanes.drain(timeout=60)
        writer.abandon()

    asyncio.run(scenario())
    writer.close()
    assert [hour for cohort, hour in written if cohort == "a"] == [1, 2, 3]
    a_keys = {key for key in sink.stored if key.startswith("a_")}
    assert not {(k, o) for k, o in sink.overlaps if k in a_keys and o in a_keys and k[:3] != o[:3]}
    assert any(k.startswith("b_") and o.startswith("a_1") for k, o in sink.overlaps)
    assert [key for key in sink.stored if key.startswith("a_") and "manifest" in key] == [
        "a_1_manifest.json",
        "a_2_manifest.json",
        "a_3_manifest.json",
    ]


def test_a_stop_leaves_no_task_of_the_lanes_behind() -> None:
    """Once abandoned, the lanes' writers and what they waited for end: a stop waits for
    every task left (mode gives them up to a second) before it closes the loop."""
    writer = SyncWriter({"d": Sink()}, Metrics())
    lanes = DestinationLanes(writer)

    async def scenario() -> None:
        await lanes.submit(lambda: sync("d", 1), lambda: None)
        assert await lanes.drain(timeout=5)
        assert len(asyncio.all_tasks()) > 1  # the lane's writers wait for the next sync
        writer.abandon()
        await until(lambda: len(asyncio.all_tasks()) == 1, "every lane task to end")

    asyncio.run(scenario())
    writer.close()
