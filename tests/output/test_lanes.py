"""Destination lanes: a failing destination holds up only its own syncs, in order."""

import asyncio
import warnings
from collections.abc import Callable

import pytest

from stream.errors import PermanentSinkError, WriteAbandoned
from stream.metrics import Metrics
from stream.output.lanes import DestinationLanes
from stream.output.sync import SyncFile, SyncOutput
from stream.output.writer import SyncWriter
from stream.sinks import Body, Put


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


def sync(destination: str, hour: int, size: int = 10) -> SyncOutput:
    files = tuple(
        SyncFile(f"{hour}_{kind}.csv", Body.of(b"x" * size))
        for kind in ("entering", "exiting", "existing")
    )
    return SyncOutput(
        destination=destination,
        cohort_id="c",
        sync_time=hour,
        counts={"entering": 0, "exiting": 0, "existing": 0},
        csv_files=files,
        manifest=SyncFile(f"{hour}_manifest.json", Body.of(b"{}")),
    )


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
                await lanes.submit(
                    lambda o=output: o, lambda n=name, h=hour: written.append((n, h))
                )
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
        assert coroutine.cr_frame is None  # closed: it can never run, nor warn

    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        asyncio.run(main())
    assert ran == []
