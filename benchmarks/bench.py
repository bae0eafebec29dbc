"""`make bench`: throughput, flush time and memory, each beside its baseline.

One run starts its own broker (Apache Kafka by default, Tansu with `--broker tansu`) and
moto S3 server, pre-produces the input topics, then measures: raw aiokafka consumption (the
stack's limit), a stateless Faust agent (the framework's floor), the real worker on single
events and on Amplitude's batch form, the flush of a 1,000,000-member cohort against
pyarrow's bare `write_csv` plus one put, and the memory a member costs. Throughput is
measured from outside the worker processes, by polling their group's committed offsets, the
same way for the floor and for the worker.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
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
from benchmarks.report import write_table
from benchmarks.runs import MotoServer, bench_toml, rate_from_commits, raw_consume, running
from benchmarks.scale import (
    ReplayRates,
    RestartFigures,
    cli_command,
    replay_records_per_s,
    restart_figures,
)
from stream.config import Settings, settings_from_mapping
from stream.domain.membership import diff_cohort
from stream.domain.partitioner import partition_for
from stream.faust.worker import WORKER_FAUST_DEFAULTS
from stream.formats.csvfile import format_cell
from stream.kafka.client import earliest_timestamp_ms, produce_lines
from stream.kafka.topics import ensure_topics
from stream.metrics import LOOP_LAG_BUCKETS, Histogram
from stream.sinks import Body
from stream.sinks.s3 import S3Sink
from tests.brokers import Broker, running_broker

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
#: settings are the worker's own defaults: the one-record batches it uses on a Tansu broker
#: only matter for restarts (see embedded.TANSU_FAUST_SETTINGS), so on Tansu only the
#: restart measurement (`scale.restart_figures`) uses them.
#: COHORT_SYNC_BENCH_FAUST (JSON) overrides them.
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
    restart_members: int = 1_000_000
    """Members in the table of the restarted worker (`scale.restart_figures`)."""


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
    *,
    quick: bool,
    out: TextIO = sys.stdout,
    sizes: Sizes | None = None,
    broker_kind: str = "apache",
) -> dict[str, float]:
    """`broker_kind`: "apache" (Apache Kafka, as `make test` runs it) or "tansu"."""
    sizes = sizes or (QUICK if quick else FULL)
    results: dict[str, list[float]] = {}
    with (
        running_broker(broker_kind) as broker,
        MotoServer() as s3_endpoint,
        tempfile.TemporaryDirectory() as tmp,
    ):
        bench = _Bench(broker, s3_endpoint, Path(tmp), out)
        bench.say(f"broker: {broker.description}")
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
            results.setdefault("raw_batch", []).append(
                bench.raw(batch, sizes.batch_messages) * 1000
            )
            replayed = bench.replay(single)
            results.setdefault("replay", []).append(replayed.summary)
            results.setdefault("replay_wall", []).append(replayed.wall)
            replayed = bench.replay(batch)
            results.setdefault("replay_batch", []).append(replayed.summary * 1000)
            results.setdefault("replay_batch_wall", []).append(replayed.wall * 1000)
        bench.say(f"memory: loading {sizes.memory_members:,} members")
        bytes_per_member = bench.memory(sizes.memory_members)
        bench.say(f"flush: loading a cohort of {sizes.flush_members:,} members")
        flush_seconds, bare_seconds = bench.flush(sizes.flush_members, max(sizes.repeats, 3))
        bench.say(f"restart: a worker with {sizes.restart_members:,} members, stopped, started")
        restart = bench.restart(sizes.restart_members)
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
        "replay_events_per_s": round(figures["replay"]),
        "replay_events_ratio": round(figures["replay"] / figures["raw"], 3),
        "replay_changes_per_s": round(figures["replay_batch"]),
        "replay_changes_ratio": round(figures["replay_batch"] / figures["raw_batch"], 3),
        "replay_events_wall_ratio": round(figures["replay_wall"] / figures["raw"], 3),
        "replay_changes_wall_ratio": round(figures["replay_batch_wall"] / figures["raw_batch"], 3),
        "recovery_seconds": round(restart.recovery_seconds, 1),
        "recovery_ratio": round(restart.recovery_seconds / restart.ingest_seconds, 3),
        "first_sync_seconds": round(bench.first_sync_seconds, 2),
        "first_sync_ratio": round(bench.first_sync_seconds / bare_seconds, 2),
        "max_loop_stall_s": round(max(restart.max_loop_stall_s, bench.first_sync_stall), 2),
    }
    write_table(summary, bare_seconds, bench, sizes, out)
    out.write(json.dumps(summary) + "\n")
    out.flush()
    return summary


def _faust_overrides() -> dict[str, Any]:
    raw = os.environ.get("COHORT_SYNC_BENCH_FAUST")
    return json.loads(raw) if raw else {}


class _Bench:
    def __init__(self, broker: Broker, s3_endpoint: str, tmp: Path, out: TextIO) -> None:
        self.broker = broker
        self.s3_endpoint = s3_endpoint
        self.tmp = tmp
        self.out = out
        self.runs = 0
        self.first_sync_seconds = 0.0
        """The flush cohort's first sync: built from every member, all of them entering."""
        self.first_sync_stall = 0.0
        """The longest its event loop was blocked during that first sync."""
        self.restart_stall = 0.0
        """The longest the restarted worker's event loop was blocked (`restart`)."""

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
        return asyncio.run(raw_consume(self.broker.bootstrap, topic.kafka.topic, count))

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
        with running(self._spawn(settings, command)) as process:
            rate, finished_ms = rate_from_commits(settings, count, process)
            if command == "bench-floor":
                return rate
            # The worker's commits wait for its changelog to be flushed, so its first commit
            # can come late; its first changelog record marks when it started working.
            changelog = f"{app_id}-membership-changelog"
            started_ms = earliest_timestamp_ms(settings.kafka, changelog)
            return count / max((finished_ms - started_ms) / 1000, 1e-9)

    def _spawn(
        self, settings: Settings, command: str, log: Path | None = None
    ) -> subprocess.Popen[bytes]:
        """`command` on `settings`; a worker logs warnings only, or with `log` everything
        from level info on, into that file."""
        config = self.config_file(settings)
        level = [] if command != "worker" else ["--log-level", "info" if log else "warn"]
        with open(log or os.devnull, "wb") as output:
            return subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "benchmarks.floor" if command == "bench-floor" else "stream.commands.cli",
                    *([] if command == "bench-floor" else [command]),
                    "--config",
                    str(config),
                    *level,
                ],
                cwd=self.tmp,
                stdout=subprocess.DEVNULL,
                stderr=output,
                env=self.child_env,
            )

    @property
    def child_env(self) -> dict[str, str]:
        return {**_CHILD_ENV, "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"}

    def config_file(self, settings: Settings) -> Path:
        config = self.tmp / f"{settings.kafka.app_id}.toml"
        config.write_text(bench_toml(settings, self.s3_endpoint))
        return config

    # -- what benchmarks/scale.py asks of a bench (`scale.WorkerRun`)

    def spawn_worker(self, settings: Settings, log: Path | None = None) -> subprocess.Popen[bytes]:
        return self._spawn(settings, "worker", log)

    def wait_committed(
        self, settings: Settings, count: int, process: subprocess.Popen[bytes]
    ) -> None:
        rate_from_commits(settings, count, process)

    def manifests_ending(self, suffix: str) -> int:
        return sum(1 for key in self._keys() if key.endswith(suffix))

    def produce(self, settings: Settings, records: list[bytes]) -> None:
        produce_lines(settings.kafka, records)

    def _keys(self) -> Iterator[str]:
        for page in self._s3.get_paginator("list_objects_v2").paginate(Bucket="bench"):
            for item in page.get("Contents", []):
                yield item["Key"]

    @functools.cached_property
    def _s3(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.s3_endpoint,
            region_name="us-east-1",
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
        )

    def replay(self, topic: Settings) -> ReplayRates:
        """Records/s of `cohort-sync replay` of the topic, to this run's own folder."""
        self.runs += 1
        settings = replace(topic, kafka=replace(topic.kafka, app_id=f"bench-replay-{self.runs}"))
        return replay_records_per_s(
            self.config_file(settings), self.tmp, self.child_env, cli_command()
        )

    def restart(self, members: int) -> RestartFigures:
        self.say(f"  producing {members // 1000:,} batch messages of 1,000 users")
        topic = self.topic("bench-restart", batch_messages(members // 1000))
        self.runs += 1
        settings = replace(
            topic,
            kafka=replace(topic.kafka, app_id=f"bench-restart-{self.runs}"),
            faust={**topic.faust, **self.broker.faust},  # Tansu's restarts need its own
        )
        figures = restart_figures(settings, members, self)
        self.restart_stall = figures.max_loop_stall_s
        return figures

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
        lag = Histogram(LOOP_LAG_BUCKETS)  # the first sync, every member entering:
        self.first_sync_seconds = feed([trigger(T0 + HOUR_MS + 1000, 1)], lag)
        self.first_sync_stall = lag.largest
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


def bare_arrow_csv(header: Sequence[str], columns: Sequence[Sequence[str | None]]) -> bytes:
    """pyarrow's own `write_csv` of the same cells: the baseline for a flush (here, not in
    the package: nothing else needs it)."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    table = pa.table(
        {name: pa.array(col, type=pa.string()) for name, col in zip(header, columns, strict=True)}
    )
    buffer = io.BytesIO()
    pa_csv.write_csv(table, buffer)
    return buffer.getvalue()
