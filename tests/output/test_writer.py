"""The sync writer: a sync's CSVs put at once and its manifest after them, retries with
backoff until a sync lands, kept files counted, abandon."""

from __future__ import annotations

import asyncio
import gc
import threading
from collections.abc import Callable

import pytest

from stream.errors import PermanentSinkError, TransientSinkError, WriteAbandoned
from stream.metrics import Metrics
from stream.output.sync import SyncFile, SyncOutput
from stream.output.writer import SyncWriter
from stream.sinks import Body, Inspection, Put


class FlakySink:
    """Fails the first `failures` puts, then stores (puts may come from several threads)."""

    def __init__(
        self,
        failures: int,
        error: type[Exception] = TransientSinkError,
        clock: Callable[[], float] = lambda: 0.0,
    ) -> None:
        self.failures = failures
        self.error = error
        self.clock = clock
        self.stored: dict[str, bytes] = {}
        self.attempts = 0
        self.attempt_times: list[float] = []
        self._lock = threading.Lock()

    def put(self, key: str, body: Body) -> Put:
        data = body.read()
        with self._lock:
            self.attempts += 1
            self.attempt_times.append(self.clock())
            if self.attempts <= self.failures:
                raise self.error("503 SlowDown")
            if key in self.stored:
                return Put.UNCHANGED if self.stored[key] == data else Put.KEPT
            self.stored[key] = data
            return Put.WRITTEN

    def location(self, key: str) -> str:
        return f"mem://{key}"

    def probe(self) -> None: ...

    def inspect(self) -> Inspection:
        return Inspection()


def output() -> SyncOutput:
    files = tuple(
        SyncFile(f"k_{kind}.csv", Body.of(kind.encode()))
        for kind in ("entering", "exiting", "existing")
    )
    return SyncOutput(
        destination="d",
        cohort_id="c",
        sync_time=0,
        counts={"entering": 0, "exiting": 0, "existing": 0},
        csv_files=files,
        manifest=SyncFile("k_manifest.json", Body.of(b"{}")),
    )


@pytest.mark.parametrize("error", [TransientSinkError, PermanentSinkError])
def test_writer_retries_with_growing_backoff_until_the_sync_lands(error: type[Exception]) -> None:
    clock = [0.0]
    sink = FlakySink(failures=9, error=error, clock=lambda: clock[0])  # three tries of 3 CSVs

    async def fake_sleep(delay: float) -> None:
        clock[0] += delay

    metrics = Metrics()
    writer = SyncWriter({"d": sink}, metrics, first_backoff=1.0, max_backoff=3.0, sleep=fake_sleep)
    asyncio.run(writer.write(output))
    writer.close()
    assert list(sink.stored)[-1] == "k_manifest.json"  # the manifest last
    assert sorted(sink.stored) == sorted(f.key for files in output().rounds for f in files)
    assert sink.attempts == 9 + 4  # a try of the CSVs waits for all three before it retries
    assert metrics.upload_retries == 3 and metrics.syncs["d"] == 1 and metrics.files == 4
    kind = "permanent" if error is PermanentSinkError else "transient"
    assert metrics.upload_errors == {("d", kind): 3}
    assert gc.isenabled()  # paused only while the sync was built
    first_tries = sink.attempt_times[::3][:4]  # the first put of each try
    waits = [b - a for a, b in zip(first_tries, first_tries[1:], strict=False)]
    assert 0.5 <= waits[0] <= 1.5 and 1.0 <= waits[1] <= 3.0 and 1.5 <= waits[2] <= 4.5


def test_writer_counts_and_reports_existing_files_it_kept(caplog: pytest.LogCaptureFixture) -> None:
    sink = FlakySink(failures=0)
    sink.stored["k_exiting.csv"] = b"other bytes"
    sink.stored["k_entering.csv"] = output().csv_files[0].data
    metrics = Metrics()
    writer = SyncWriter({"d": sink}, metrics)
    with caplog.at_level("INFO"):
        asyncio.run(writer.write(output))
    writer.close()
    assert sink.stored["k_exiting.csv"] == b"other bytes"
    assert sink.stored["k_manifest.json"] == b"{}"
    assert metrics.kept_objects == 1 and metrics.syncs["d"] == 1
    assert (metrics.new_objects, metrics.unchanged_objects) == (2, 1)
    assert "mem://k_exiting.csv already holds other bytes" in caplog.text
    assert (
        "wrote 2 of 4 files (1 identical already, 1 kept) of mem://k_manifest.json" in caplog.text
    )
    assert (metrics.files, metrics.bytes) == (2, len(b"existing") + len(b"{}"))  # written only


def test_a_sync_whose_files_were_all_there_is_not_logged_or_counted_as_written(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sink = FlakySink(failures=0)
    metrics = Metrics()
    writer = SyncWriter({"d": sink}, metrics)

    async def twice() -> None:
        await writer.write(output)
        await writer.write(output)  # a retry or a replay: every file is there

    with caplog.at_level("INFO"):
        asyncio.run(twice())
    writer.close()
    lines = [r.getMessage() for r in caplog.records if "k_manifest.json" in r.getMessage()]
    assert lines == [
        "wrote mem://k_manifest.json (entering 0, exiting 0, existing 0)",
        "already written with identical bytes: mem://k_manifest.json "
        "(entering 0, exiting 0, existing 0)",
    ]
    size = sum(len(kind) for kind in (b"entering", b"exiting", b"existing")) + len(b"{}")
    assert (metrics.files, metrics.bytes, metrics.unchanged_objects) == (4, size, 4)


def test_abandon_ends_a_write_that_waits_for_a_failing_destination() -> None:
    sink = FlakySink(failures=10**9)
    writer = SyncWriter({"d": sink}, Metrics(), first_backoff=60.0)

    async def write_then_stop() -> None:
        pending = asyncio.ensure_future(writer.write(output))
        for _ in range(500):  # poll for up to 5 s
            if sink.attempts == 3:
                break
            await asyncio.sleep(0.01)
        assert sink.attempts == 3  # the three CSVs, tried at once
        writer.abandon()  # while the writer waits out a 60 s backoff
        with pytest.raises(WriteAbandoned):
            await asyncio.wait_for(pending, timeout=5)
        with pytest.raises(WriteAbandoned):
            await writer.write(output)  # and every write after it

    asyncio.run(write_then_stop())
    writer.close()
    assert "k_manifest.json" not in sink.stored


class MeetingSink(FlakySink):
    """Each CSV put waits (up to 10 s) until all three CSVs are being put; records the order
    in which puts began and ended."""

    def __init__(self) -> None:
        super().__init__(failures=0)
        self.all_csvs = threading.Barrier(3, timeout=10)
        self.log: list[str] = []

    def put(self, key: str, body: Body) -> Put:
        self.log.append(f"begin {key}")
        if key.endswith(".csv"):
            self.all_csvs.wait()  # BrokenBarrierError unless the other two are put meanwhile
        put = super().put(key, body)
        self.log.append(f"end {key}")
        return put


def test_a_syncs_three_csvs_are_put_at_once_and_its_manifest_once_all_three_are_stored() -> None:
    sink = MeetingSink()
    writer = SyncWriter({"d": sink}, Metrics())
    asyncio.run(writer.write(output))
    writer.close()
    assert set(sink.log[:3]) == {
        f"begin k_{kind}.csv" for kind in ("entering", "exiting", "existing")
    }
    assert sink.log[-2:] == ["begin k_manifest.json", "end k_manifest.json"]
    assert len(sink.stored) == 4
