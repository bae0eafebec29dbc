"""What the benchmark runs beside the worker: moto's S3 server, the raw read of a topic (the
stack's limit), a worker's config, and its throughput read from its group's commits."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from stream.config import Settings
from stream.errors import CohortSyncError
from stream.kafka.client import GroupOffsets
from stream.kafka.embedded import free_port

__all__ = ["MotoServer", "bench_toml", "rate_from_commits", "raw_consume", "running"]


async def raw_consume(bootstrap: str, topic: str, count: int) -> float:
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


def rate_from_commits(
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


def bench_toml(settings: Settings, endpoint: str) -> str:
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


class MotoServer:
    """moto's S3 app alone, served over HTTP on a free loopback port in this process.

    The bench writes to S3 only, so it serves moto's S3 app without moto's dispatcher
    (`ThreadedMotoServer`), which picks the service of every request by listing moto's
    own package folder (about 150 `isdir` calls a request): 7.5-8.7 ms of CPU a put with
    it, 5.3-5.7 ms without. The puts and their answers are the same. On two cores moto's
    CPU is taken from the worker the bench measures; see BENCHMARKS.md, ninth session.
    """

    def __enter__(self) -> str:
        import logging
        import threading

        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        try:
            from moto.moto_server.werkzeug_app import MotoRequestHandler, create_backend_app
            from werkzeug.serving import make_server
        except ImportError:
            raise CohortSyncError(
                "bench needs moto[server]: pip install 'cohort-sync[test]'"
            ) from None
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
        port = free_port()
        self._server = make_server(
            "127.0.0.1",
            port,
            create_backend_app("s3"),
            threaded=True,
            request_handler=MotoRequestHandler,
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="moto-s3", daemon=True
        )
        self._thread.start()
        endpoint = f"http://127.0.0.1:{port}"
        urllib.request.urlopen(urllib.request.Request(f"{endpoint}/bench", method="PUT")).close()
        return endpoint

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._thread.join()


@contextmanager
def running(process: subprocess.Popen[Any]) -> Iterator[subprocess.Popen[Any]]:
    """The process, stopped with SIGTERM (killed after 60 s) when the block ends."""
    try:
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
