"""The benchmark's measurements at scale (issue "State at the speed of the stack"): `replay`
against the raw read of the same topic, and a worker restarted with 1,000,000 members in its
table against the time it took to ingest them, with its event loop's longest stall.

Each runs `cohort-sync` in a process of its own, as a user would, against the bench's broker
and S3 server; the figures are read from outside (its summary line, S3, `/metrics`).
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

from benchmarks.benchwork import COHORTS, HOUR_MS, PARTITIONS, T0
from benchmarks.runs import running
from stream.config import Settings
from stream.domain.partitioner import partition_for
from stream.errors import CohortSyncError
from stream.kafka.embedded import free_port

__all__ = [
    "ReplayRates",
    "RestartFigures",
    "replay_records_per_s",
    "restart_figures",
    "restart_triggers",
]

_SUMMARY = re.compile(r"replay done: ([\d,]+) records.* in ([\d.]+)s")
_LOOP_LAG_MAX = re.compile(r"^cohort_sync_event_loop_lag_max_seconds (\S+)$", re.MULTILINE)
#: Seconds between looks at the restarted worker's log.
_POLL_S = 0.02
#: The first hourly sync after the members' hour: what the restarted worker must write.
SYNC_AFTER_RESTART = "_2026-01-05T01:00_manifest.json"
#: In the writer's line for a sync written (`output/writer.py`): its manifest's key.
_MANIFEST_WRITTEN = f"{SYNC_AFTER_RESTART} (".encode()


@dataclass(frozen=True)
class ReplayRates:
    """Records/s of one `cohort-sync replay`, two ways."""

    summary: float
    """By its own summary line: from its reader's start to its last file."""
    wall: float
    """As a user times it: the whole command, from its start to its exit."""


def replay_records_per_s(
    config: Path, cwd: Path, env: dict[str, str], command: list[str]
) -> ReplayRates:
    """Records/s of `cohort-sync replay --config config`, by its summary line and by the
    whole command's wall time."""
    started = time.perf_counter()
    done = subprocess.run(
        [*command, "replay", "--config", str(config), "--overwrite"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    wall_seconds = time.perf_counter() - started
    found = _SUMMARY.search(done.stdout)
    if done.returncode != 0 or found is None:
        raise CohortSyncError(f"replay failed ({done.returncode}): {done.stderr[-2000:]}")
    records, seconds = int(found.group(1).replace(",", "")), float(found.group(2))
    return ReplayRates(records / max(seconds, 1e-9), records / max(wall_seconds, 1e-9))


def restart_triggers() -> list[bytes]:
    """One event an hour after the members' hour in a cohort of each partition: each
    partition's watermark passes 01:00, so every cohort's first sync after the restart is
    due (built from every member)."""
    homes: dict[int, str] = {}
    for index in range(COHORTS):
        cohort = f"c{index}"
        homes.setdefault(partition_for(cohort.encode(), PARTITIONS), cohort)
    return [
        (
            f'{{"cohort_id":"{cohort}","amplitude_id":{10**9 + p},"action":"exit",'
            f'"time":{T0 + HOUR_MS + 1000}}}'
        ).encode()
        for p, cohort in sorted(homes.items())
    ]


@dataclass(frozen=True)
class RestartFigures:
    ingest_seconds: float
    """From the first worker's spawn to its commit of the last input offset."""
    recovery_seconds: float
    """From the restarted worker's spawn to every cohort's sync due after the restart in S3."""
    max_loop_stall_s: float
    """The restarted worker's longest event-loop stall (its `/metrics`)."""


class WorkerRun(Protocol):
    """How the bench runs a worker (`bench._Bench`)."""

    def spawn_worker(self, settings: Settings, log: Path | None = None) -> subprocess.Popen[bytes]:
        """`cohort-sync worker` on `settings`, its config written for it; with `log`, at
        level info, its output in that file."""
        ...

    def wait_committed(
        self, settings: Settings, count: int, process: subprocess.Popen[bytes]
    ) -> None: ...

    def manifests_ending(self, suffix: str) -> int:
        """How many manifests in the bench's bucket have keys ending in `suffix`."""
        ...

    def produce(self, settings: Settings, records: list[bytes]) -> None: ...


def restart_figures(settings: Settings, members: int, run: WorkerRun) -> RestartFigures:
    """Ingest `members` members (the topic of `settings`, already produced), stop the worker,
    start it again, make a sync due on every partition, and time each part."""
    if members < 1000 * COHORTS:
        raise CohortSyncError(f"the restart needs at least {1000 * COHORTS:,} members")
    port = free_port()
    faust = {**settings.faust, "web_port": port}
    settings = replace(settings, faust=faust)
    spawned = time.perf_counter()
    with running(run.spawn_worker(settings)) as first:
        run.wait_committed(settings, members // 1000, first)
        ingest_seconds = time.perf_counter() - spawned
    before = run.manifests_ending(SYNC_AFTER_RESTART)
    with tempfile.TemporaryDirectory() as folder:
        log = Path(folder) / "restarted.log"
        spawned = time.perf_counter()
        with running(run.spawn_worker(settings, log=log)) as restarted:
            run.produce(settings, restart_triggers())
            recovery_seconds = _until_synced(restarted, log, before, run) - spawned
            stall = _loop_lag_max(port)
    return RestartFigures(ingest_seconds, recovery_seconds, stall)


def _until_synced(
    restarted: subprocess.Popen[bytes], log: Path, before: int, run: WorkerRun
) -> float:
    """When the restarted worker had written every cohort's sync after the restart: its log
    line for each manifest, then the bucket's listing, which is the proof. The log is read
    from outside; the worker's `/metrics`, polled as often, cost it about 3 ms of CPU a look
    (0.1 s a restart), and listing the bucket costs moto and this process about 0.2 s of
    CPU per few hundred objects, so it is listed only once the log says all are there."""
    deadline = time.monotonic() + 1800
    written = listed_at = 0
    with open(log, "rb") as lines:
        pending = b""
        while True:
            if restarted.poll() is not None:
                raise CohortSyncError(
                    f"restarted worker exited with {restarted.returncode}: "
                    f"{log.read_text(errors='replace')[-2000:]}"
                )
            if time.monotonic() > deadline:
                raise CohortSyncError("the restarted worker wrote no syncs within 30 minutes")
            seen = time.perf_counter()
            *complete, pending = (pending + lines.read()).split(b"\n")
            written += sum(1 for line in complete if _MANIFEST_WRITTEN in line)
            if written >= COHORTS and written > listed_at:
                listed_at = written
                if run.manifests_ending(SYNC_AFTER_RESTART) >= before + COHORTS:
                    return seen
            time.sleep(_POLL_S)


def _metrics(port: int) -> str:
    """The worker's `/metrics` page."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as answer:
        return str(answer.read().decode())


def _loop_lag_max(port: int) -> float:
    found = _LOOP_LAG_MAX.search(_metrics(port))
    if found is None:
        raise CohortSyncError("the worker's /metrics has no cohort_sync_event_loop_lag_max")
    return float(found.group(1))


def cli_command() -> list[str]:
    return [sys.executable, "-m", "stream.commands.cli"]
