"""`make bench`: throughput, flush time and memory, each beside its baseline.

One run starts its own Tansu broker and moto S3 server, pre-produces the input topics, then
measures: raw aiokafka consumption (the stack's limit), a stateless Faust agent (the
framework's floor), the real worker on single events and on Amplitude's batch form, the
flush of a 1,000,000-member cohort against pyarrow's bare `write_csv` plus one put, and the
memory a member costs. Throughput is measured from outside the worker processes, by polling
their group's committed offsets, the same way for the floor and for the worker.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TextIO

from benchmarks.benchwork import (
    CHURN_ROUNDS,
    HOUR_MS,
    PARTITIONS,
    T0,
    batch_messages,
    feeder,
    flush_processor,
    one_cohort,
    single_events,
    trigger,
)
from stream.config import Settings, settings_from_mapping
from stream.domain.membership import diff_cohort
from stream.domain.partitioner import partition_for
from stream.errors import CohortSyncError
from stream.faust.worker import WORKER_FAUST_DEFAULTS
from stream.formats.csvfile import bare_arrow_csv, format_cell
from stream.kafka.client import (
    GroupOffsets,
    earliest_timestamp_ms,
    ensure_topics,
    produce_lines,
)
from stream.kafka.embedded import EmbeddedBroker, free_port
from stream.sinks import Body
from stream.sinks.s3 import S3Sink

__all__ = ["Sizes", "run_bench"]

_REPO = Path(__file__).resolve().parent.parent
_CHILD_ENV = {
    **os.environ,
    "PYTHONPATH": os.pathsep.join(filter(None, [str(_REPO), os.environ.get("PYTHONPATH")])),
}
"""Child processes import `benchmarks`, which is not installed: they find it from here."""

_CHURN_CHILD = (
    "import json, sys; from benchmarks.benchwork import churn_child; "
    "print(json.dumps(churn_child(int(sys.argv[1]), sys.argv[2], sys.argv[3])))"
)
_MEMORY_CHILD = (
    "import sys; from benchmarks.benchwork import memory_child; "
    "print(memory_child(int(sys.argv[1])))"
)


#: Commit often so that throughput can be read from committed offsets (a run's figure can be
#: off by one commit interval, so every measured phase lasts many seconds). The producer
#: settings are the worker's own defaults, as against Apache Kafka: the one-record batches
#: it uses on a Tansu broker only matter for restarts (see embedded.TANSU_FAUST_SETTINGS),
#: and a bench run never restarts a worker. COHORT_SYNC_BENCH_FAUST (JSON) overrides them.
BENCH_FAUST = {"broker_commit_interval": 0.2, **WORKER_FAUST_DEFAULTS}


@dataclass(frozen=True)
class Sizes:
    single_events: int
    batch_messages: int
    flush_members: int
    memory_members: int
    repeats: int
    churn_members: int = 100_000
    """New members a round of the churn run (`benchwork.churn_child`)."""


FULL = Sizes(
    single_events=100_000,
    batch_messages=1_000,
    flush_members=1_000_000,
    memory_members=2_000_000,
    repeats=3,
    churn_members=200_000,
)
QUICK = Sizes(  # long enough for commits every 0.2 s and journal flushes to even out
    single_events=50_000,
    batch_messages=300,
    flush_members=1_000_000,
    memory_members=1_000_000,  # 10,000 a cohort: their dicts as full as in the full run
    repeats=1,
)


def run_bench(
    *, quick: bool, out: TextIO = sys.stdout, sizes: Sizes | None = None
) -> dict[str, float]:
    sizes = sizes or (QUICK if quick else FULL)
    results: dict[str, list[float]] = {}
    with (
        EmbeddedBroker() as broker,
        _MotoServer() as s3_endpoint,
        tempfile.TemporaryDirectory() as tmp,
    ):
        bench = _Bench(broker, s3_endpoint, Path(tmp), out)
        bench.say(
            f"producing {sizes.single_events:,} single events and "
            f"{sizes.batch_messages:,} batch messages of 1,000 users"
        )
        single = bench.topic("bench-single", single_events(sizes.single_events))
        batch = bench.topic("bench-batch", batch_messages(sizes.batch_messages))
        for run in range(sizes.repeats):
            bench.say(f"run {run + 1}/{sizes.repeats}")
            results.setdefault("raw", []).append(bench.raw(single, sizes.single_events))
            results.setdefault("floor", []).append(bench.floor(single, sizes.single_events))
            results.setdefault("ingest", []).append(bench.ingest(single, sizes.single_events))
            results.setdefault("batch", []).append(bench.ingest(batch, sizes.batch_messages) * 1000)
        bench.say(f"memory: loading {sizes.memory_members:,} members")
        bytes_per_member = bench.memory(sizes.memory_members)
        bench.say(f"flush: loading a cohort of {sizes.flush_members:,} members")
        flush_seconds, bare_seconds = bench.flush(sizes.flush_members, max(sizes.repeats, 3))
        bench.say(f"churn: {CHURN_ROUNDS} days of {sizes.churn_members:,} members in and out")
        churn = bench.churn(sizes.churn_members, "1d")
        churn_forever = bench.churn(sizes.churn_members, "forever")
    figures = {key: statistics.median(values) for key, values in results.items()}
    summary = {
        "raw_events_per_s": round(figures["raw"]),
        "faust_floor_events_per_s": round(figures["floor"]),
        "ingest_events_per_s": round(figures["ingest"]),
        "ingest_ratio": round(figures["ingest"] / figures["raw"], 3),
        "state_overhead_ratio": round(figures["ingest"] / figures["floor"], 3),
        "batch_changes_per_s": round(figures["batch"]),
        "flush_1m_seconds": round(flush_seconds, 2),
        "flush_ratio": round(flush_seconds / bare_seconds, 2),
        "bytes_per_member": round(bytes_per_member),
        "churn_growth_ratio": round(churn, 3),
        "churn_growth_ratio_forever": round(churn_forever, 3),
    }
    _table(summary, bare_seconds, bench.first_sync_seconds, sizes, out)
    out.write(json.dumps(summary) + "\n")
    out.flush()
    return summary


def _faust_overrides() -> dict[str, Any]:
    raw = os.environ.get("COHORT_SYNC_BENCH_FAUST")
    return json.loads(raw) if raw else {}


class _Bench:
    def __init__(self, broker: EmbeddedBroker, s3_endpoint: str, tmp: Path, out: TextIO) -> None:
        self.broker = broker
        self.s3_endpoint = s3_endpoint
        self.tmp = tmp
        self.out = out
        self.runs = 0
        self.first_sync_seconds = 0.0
        """The flush cohort's first sync: built from every member, all of them entering."""

    def say(self, text: str) -> None:
        self.out.write(f"  {text}\n")
        self.out.flush()

    def settings(self, topic: str, app_id: str, faust: dict[str, Any] | None = None) -> Settings:
        return settings_from_mapping(
            {
                "project_id": 1,
                "kafka": {
                    "broker": self.broker.url,
                    "topic": topic,
                    "app_id": app_id,
                    "partitions": PARTITIONS,
                    "idle_timeout": "off",
                },
                "faust": {**BENCH_FAUST, **_faust_overrides(), **(faust or {})},
                "destinations": [
                    {
                        "name": "s3",
                        "url": "s3://bench/out",
                        "region": "us-east-1",
                        "endpoint_url": self.s3_endpoint,
                        "user_property": "plan",
                    }
                ],
                "syncs": [{"cohort": "*", "destination": "s3", "cadence": "hourly"}],
            }
        )

    def topic(self, name: str, records: list[bytes]) -> Settings:
        settings = self.settings(name, "unused")
        ensure_topics(settings.kafka)
        produce_lines(settings.kafka, records)
        return settings

    def raw(self, topic: Settings, count: int) -> float:
        """aiokafka `getmany` and `json.loads` per record: the stack's limit."""
        return asyncio.run(_raw_consume(self.broker.bootstrap, topic.kafka.topic, count))

    def floor(self, topic: Settings, count: int) -> float:
        """Plain Faust, with Faust's own poll size: the worker's 500 records a poll
        (`app.WORKER_FAUST_DEFAULTS`) only serve its quick hand-off."""
        faust = {k: v for k, v in topic.faust.items() if k != "broker_max_poll_records"}
        return self._timed_worker(replace(topic, faust=faust), count, "bench-floor")

    def ingest(self, topic: Settings, count: int) -> float:
        return self._timed_worker(topic, count, "worker")

    def _timed_worker(self, topic: Settings, count: int, command: str) -> float:
        """Records/s of a worker process, from its first commit to its last."""
        self.runs += 1
        app_id = f"bench-{command}-{self.runs}"
        settings = replace(topic, kafka=replace(topic.kafka, app_id=app_id))
        config = self.tmp / f"{app_id}.toml"
        config.write_text(_toml(settings, self.s3_endpoint))
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "benchmarks.floor" if command == "bench-floor" else "stream.commands.cli",
                *([] if command == "bench-floor" else [command]),
                "--config",
                str(config),
                *(["--log-level", "warn"] if command == "worker" else []),
            ],
            cwd=self.tmp,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**_CHILD_ENV, "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"},
        )
        try:
            rate, finished_ms = _rate_from_commits(settings, count, process)
            if command == "bench-floor":
                return rate
            # The worker's commits wait for its changelog to be flushed, so its first commit
            # can come late; its first changelog record marks when it started working.
            changelog = f"{app_id}-membership-changelog"
            started_ms = earliest_timestamp_ms(settings.kafka, changelog)
            return count / max((finished_ms - started_ms) / 1000, 1e-9)
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()

    def memory(self, members: int) -> float:
        """RSS growth per member of a fresh process that loads `members` members."""
        result = subprocess.run(
            [
                sys.executable,
                "-c",
                _MEMORY_CHILD,
                str(members),
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=1800,
            env=_CHILD_ENV,
        )
        return float(result.stdout.strip().splitlines()[-1])

    def churn(self, members: int, retain: str) -> float:
        """RSS after the last churn round over RSS after the second, in a fresh process."""
        with tempfile.TemporaryDirectory(dir=self.tmp) as out_dir:
            result = subprocess.run(
                [sys.executable, "-c", _CHURN_CHILD, str(members), retain, out_dir],
                capture_output=True,
                text=True,
                check=True,
                timeout=1800,
                env=_CHILD_ENV,
            )
        sizes = json.loads(result.stdout.strip().splitlines()[-1])
        return float(sizes[-1] / sizes[1])

    def flush(self, members: int, repeats: int) -> tuple[float, float]:
        """Seconds from a 1M-member cohort's sync time being reached to its files in S3,
        and seconds for pyarrow's bare write_csv of the same rows plus one put (medians)."""
        settings = self.settings("bench-flush", "bench-flush")
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
        sink = S3Sink(bucket="bench", region="us-east-1", endpoint_url=self.s3_endpoint)
        processor, writer_close = flush_processor(settings)
        feed = feeder(processor, settings)
        feed(one_cohort(members, T0 + 1000))
        started = time.perf_counter()
        feed([trigger(T0 + HOUR_MS + 1000, 1)])  # the first sync (every member enters)
        self.first_sync_seconds = time.perf_counter() - started
        timings = []
        for hour in range(2, 2 + repeats):  # each measured sync: 1M existing, a few changes
            feed([trigger(T0 + (hour - 1) * HOUR_MS + 2000, 10 * hour)])
            started = time.perf_counter()
            feed([trigger(T0 + hour * HOUR_MS + 1000, 10 * hour + 1)])
            timings.append(time.perf_counter() - started)
        writer_close()
        cohort = processor.partitions[partition_for(b"big", PARTITIONS)].cohorts["big"]
        diff = diff_cohort(cohort.members, T0 + 2 * HOUR_MS, T0 + HOUR_MS)
        rows = diff.existing
        header = ["amplitudeID", "userID", "plan"]
        cells: list[list[str | None]] = [
            [str(a) for a, _ in rows],
            [v.user_id for _, v in rows],
            [format_cell(v.properties.get(("plan", None), (None,))[0]) for _, v in rows],
        ]
        del processor, cohort, diff
        gc.collect()
        bare = []
        for _ in range(repeats):
            started = time.perf_counter()
            sink.put("bare/existing.csv", Body.of(bare_arrow_csv(header, cells)))
            bare.append(time.perf_counter() - started)
        return statistics.median(timings), statistics.median(bare)


async def _raw_consume(bootstrap: str, topic: str, count: int) -> float:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        seen = 0
        started: float | None = None
        while seen < count:
            batches = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            if started is None and batches:
                started = time.perf_counter()
            for records in batches.values():
                for record in records:
                    json.loads(record.value)
                seen += len(records)
        elapsed = time.perf_counter() - (started or time.perf_counter())
        return count / max(elapsed, 1e-9)
    finally:
        await consumer.stop()


def _rate_from_commits(
    settings: Settings, count: int, process: subprocess.Popen[bytes]
) -> tuple[float, int]:
    """Records/s from the first commit seen to the last (from the process start when all
    was done before any commit was seen, as at tiny sizes), and the wall-clock epoch ms at
    which the last commit was seen."""
    spawned = time.perf_counter()
    first: tuple[float, int] | None = None
    deadline = time.monotonic() + 900
    with GroupOffsets(settings.kafka, settings.kafka.app_id) as group:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise CohortSyncError(f"benchmark worker exited with {process.returncode}")
            done = sum(v or 0 for v in group.read().values())
            now = time.perf_counter()
            if done >= count:
                start, already = first if first is not None else (spawned, 0)
                return (count - already) / max(now - start, 1e-9), int(time.time() * 1000)
            if done and first is None:
                first = (now, done)
            time.sleep(0.05)
    raise CohortSyncError("benchmark worker did not finish within 15 minutes")


def _toml(settings: Settings, endpoint: str) -> str:
    faust = "\n".join(f"{k} = {json.dumps(v)}" for k, v in settings.faust.items())
    return f"""project_id = 1
[kafka]
broker = "{settings.kafka.broker}"
topic = "{settings.kafka.topic}"
app_id = "{settings.kafka.app_id}"
partitions = {settings.kafka.partitions}
idle_timeout = "off"
[faust]
{faust}
[[destinations]]
name = "s3"
url = "s3://bench/out"
region = "us-east-1"
endpoint_url = "{endpoint}"
user_property = "plan"
[[syncs]]
cohort = "*"
destination = "s3"
cadence = "hourly"
"""


class _MotoServer:
    def __enter__(self) -> str:
        import logging

        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        try:
            from moto.server import ThreadedMotoServer
        except ImportError:
            raise CohortSyncError(
                "bench needs moto[server]: pip install 'cohort-sync[test]'"
            ) from None
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
        port = free_port()
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        self._server.start()
        endpoint = f"http://127.0.0.1:{port}"
        urllib.request.urlopen(urllib.request.Request(f"{endpoint}/bench", method="PUT")).close()
        return endpoint

    def __exit__(self, *_: object) -> None:
        self._server.stop()


def _table(
    summary: dict[str, float], bare_seconds: float, first_sync: float, sizes: Sizes, out: TextIO
) -> None:
    rows = [
        ("raw aiokafka getmany + json.loads", f"{summary['raw_events_per_s']:,} records/s", ""),
        ("Faust agent, no state", f"{summary['faust_floor_events_per_s']:,} events/s", ""),
        (
            "worker, single events",
            f"{summary['ingest_events_per_s']:,} events/s",
            f"{summary['ingest_ratio']:.2f} of raw, {summary['state_overhead_ratio']:.2f} of floor",
        ),
        ("worker, batch form (1,000 users)", f"{summary['batch_changes_per_s']:,} changes/s", ""),
        (
            f"flush, {sizes.flush_members:,} members",
            f"{summary['flush_1m_seconds']:.2f} s",
            f"{summary['flush_ratio']:.2f}x bare pyarrow write_csv + put ({bare_seconds:.2f} s)",
        ),
        (
            "  its first sync (every member enters)",
            f"{first_sync:.2f} s",
            "built from every member: two files of every row",
        ),
        (
            "memory",
            f"{summary['bytes_per_member']:,} bytes/member",
            f"over {sizes.memory_members:,} members",
        ),
        (
            f"churn, {CHURN_ROUNDS} days, retain 1d",
            f"{summary['churn_growth_ratio']:.2f}x RSS",
            f"last day over the 2nd; {summary['churn_growth_ratio_forever']:.2f}x kept forever",
        ),
    ]
    out.write(f"\n{'measure':<36} {'result':>22}  compared\n")
    for name, value, note in rows:
        out.write(f"{name:<36} {value:>22}  {note}\n")
