"""`cohort-sync demo`: the whole pipeline on embedded defaults in well under a minute.

It starts the embedded broker, writes a config with a `file://` destination, produces a
few simulated hours of events for several cohorts, runs a worker process, waits until the
files of every expected sync are there and equal to the reference run's, then stops
everything and prints a summary.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from stream.config import settings_from_mapping
from stream.domain.windows import format_sync_time, format_time
from stream.engine.offline import expected_outputs
from stream.errors import CohortSyncError
from stream.kafka.client import produce_lines
from stream.kafka.embedded import EmbeddedBroker
from stream.kafka.topics import ensure_topics
from stream.output.sync import SyncOutput

__all__ = ["run_demo", "demo_events", "demo_config", "sample_events"]

START_MS = int(datetime(2026, 1, 5, tzinfo=UTC).timestamp() * 1000)
HOURS = 4
COHORTS = ("power-users", "trial", "churn-risk", "1234")
PLANS = ("free", "pro", "enterprise")
COUNTRIES = ("DE", "US", "FR", "JP", "BR")


def demo_events(
    seed: int = 7, *, start_ms: int = START_MS, cohorts: tuple[str, ...] = COHORTS
) -> list[bytes]:
    """A deterministic `HOURS` hours of membership changes from `start_ms`, a batch message,
    then one event per cohort just after the last hour so that every partition's watermark
    reaches it."""
    rng = random.Random(seed)
    lines: list[dict[str, object]] = []
    for minute in range(0, HOURS * 60, 2):
        cohort = rng.choice(cohorts)
        user = rng.randrange(1000, 1060)
        lines.append(
            {
                "cohort_id": int(cohort) if cohort.isdigit() else cohort,
                "amplitude_id": user,
                "user_id": f"user{user}@example.com" if user % 7 else None,
                "action": rng.choice(("enter", "enter", "exit")),
                "time": format_time(
                    start_ms + minute * 60_000 + rng.randrange(60_000), "milliseconds"
                ),
                "user_properties": {"plan": rng.choice(PLANS), "country": rng.choice(COUNTRIES)},
            }
        )
    lines.append(
        {
            "cohort_id": cohorts[1 % len(cohorts)],
            "in_cohort": True,
            "computed_time": str(start_ms // 1000 + 5400),
            "users": [
                {"amplitude_id": n, "user_id": f"batch{n}", "user_properties": {"plan": "free"}}
                for n in range(2000, 2005)
            ],
        }
    )
    for cohort in cohorts:
        lines.append(
            {
                "cohort_id": cohort,
                "amplitude_id": 1,
                "user_id": "heartbeat",
                "action": "exit",
                "time": format_time(start_ms + HOURS * 3_600_000 + 60_000, "milliseconds"),
            }
        )
    return [json.dumps(line, separators=(",", ":")).encode() for line in lines]


#: The cohorts of `sample-events`: `c1` has its own 15-minute sync in examples/local.toml.
SAMPLE_COHORTS = ("c1", "trial", "power-users")


def sample_events(now_ms: int, seed: int = 7) -> list[bytes]:
    """The demo's events moved to end a minute before `now_ms`: fed to a worker, they make
    its past few hours' syncs due at once (well within `kafka.idle_catch_up`)."""
    start = (now_ms // 60_000 - 2) * 60_000 - HOURS * 3_600_000
    return demo_events(seed, start_ms=start, cohorts=SAMPLE_COHORTS)


def demo_config(broker_url: str, files: Path) -> str:
    return f"""\
project_id = 4242

[kafka]
broker = "{broker_url}"
topic = "cohort-membership"
app_id = "cohort-sync-demo"
partitions = 4
idle_timeout = "off"

[faust]
broker_session_timeout = 2.0
broker_heartbeat_interval = 0.5
broker_rebalance_timeout = 2.0

[[destinations]]
name = "local"
url = "{files.resolve().as_uri()}"
naming = "no-colon"
user_property = "plan"

[[syncs]]
cohort = "*"
destination = "local"
cadence = "hourly"
user_properties = ["country"]

[[syncs]]
cohort = "trial"
destination = "local"
cadence = "30m"
routing_key = "crm"
"""


def run_demo(folder: Path, *, timeout: float = 60.0) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    files = folder / "files"
    _clear(files)
    lines = demo_events()
    (folder / "events.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    with EmbeddedBroker() as broker:
        config_path = folder / "demo.toml"
        config_path.write_text(demo_config(broker.url, files), encoding="utf-8")
        settings = settings_from_mapping(_toml(config_path))
        expected = expected_outputs(settings, lines)
        print(
            f"embedded broker on {broker.bootstrap}; producing {len(lines)} events "
            f"for {len(COHORTS)} cohorts over {HOURS} simulated hours",
            flush=True,
        )
        ensure_topics(settings.kafka)
        produce_lines(settings.kafka, lines)
        log_path = folder / "worker.log"
        with open(log_path, "wb") as log:
            worker = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "stream.commands.cli",
                    "worker",
                    "--config",
                    str(config_path.resolve()),
                    "--log-level",
                    "warn",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=folder,
            )
            try:
                _wait_for_files(expected, files, timeout, worker, log_path)
            finally:
                _stop(worker)
    _summary(expected, files)
    return 0


def _wait_for_files(
    expected: list[SyncOutput],
    files: Path,
    timeout: float,
    worker: subprocess.Popen[bytes],
    log_path: Path,
) -> None:
    wanted = {file.key: file.data for out in expected for file in (*out.csv_files, out.manifest)}
    deadline = time.monotonic() + timeout
    shown = -1
    while True:
        done = sum(1 for key, data in wanted.items() if _read(files / key) == data)
        if done != shown:
            print(f"  files written and checked: {done}/{len(wanted)}", flush=True)
            shown = done
        if done == len(wanted):
            return
        if worker.poll() is not None:
            raise CohortSyncError(
                f"the demo worker exited with {worker.returncode}; see {log_path}"
            )
        if time.monotonic() > deadline:
            raise CohortSyncError(
                f"only {done}/{len(wanted)} files after {timeout:.0f}s; see {log_path}"
            )
        time.sleep(0.2)


def _summary(expected: list[SyncOutput], files: Path) -> None:
    print(f"\n{len(expected)} syncs, {4 * len(expected)} files in {files.resolve()}\n")
    print(
        f"{'cohort':<12} {'sync time (UTC)':<17} {'suffix':<6} {'entering':>8} "
        f"{'exiting':>8} {'existing':>8}"
    )
    for out in sorted(expected, key=lambda o: (o.cohort_id, o.sync_time, o.manifest.key)):
        suffix = "crm" if out.manifest.key.endswith("_crm.json") else ""
        print(
            f"{out.cohort_id:<12} {format_sync_time(out.sync_time, 'amplitude'):<17} "
            f"{suffix:<6} {out.counts['entering']:>8} {out.counts['exiting']:>8} "
            f"{out.counts['existing']:>8}"
        )


def _stop(worker: subprocess.Popen[bytes]) -> None:
    if worker.poll() is None:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


def _clear(files: Path) -> None:
    if files.is_dir():
        for path in files.iterdir():
            if path.is_file():
                path.unlink()


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def _toml(path: Path) -> dict[str, object]:
    import tomllib

    return tomllib.loads(path.read_text(encoding="utf-8"))
