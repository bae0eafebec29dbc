"""aiokafka at the edge for `replay`: read some partitions of a topic from their beginning
up to the end offsets seen at start, a fetched batch at a time.

aiokafka is the client Faust already brings; it decodes record batches in C, where
kafka-python decodes (and checks the CRC of) each record in Python, several times slower.
No consumer group: nothing is committed, no live worker is disturbed. The end offsets come
from the high watermark of the first Fetch response of each partition, which is right on
Tansu too (its ListOffsets(LATEST) is not).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable, Iterator

from aiokafka import AIOKafkaClient, AIOKafkaConsumer, TopicPartition
from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    KafkaError,
    TopicAuthorizationFailedError,
)

from stream.config import KafkaSettings
from stream.errors import BrokerError, describe
from stream.kafka.diagnosis import not_authorized
from stream.kafka.record import Record
from stream.kafka.security import aiokafka_options

__all__ = ["PartitionFetcher", "quick_partitions"]

#: Records a fetch hands over at most: as many as the raw read of the benchmark takes.
MAX_RECORDS = 10_000


#: Seconds `quick_partitions` waits for the cluster before leaving the answer to kafka-python.
QUICK_LOOKUP_S = 5.0


async def quick_partitions(kafka: KafkaSettings) -> list[int] | None:
    """The topic's partitions, sorted, from one aiokafka metadata request for every topic
    (asking for the topic alone could create it); None when they cannot be learned so.

    None for any failure (unreachable, refused, denied, no such topic, slow): then the
    caller asks kafka-python, whose failure says in one line what to fix
    (`client.topic_partitions`). Nothing is logged here, so that line stays the only one.
    kafka-python's import and connection cost about 0.3 s, a replay of a small topic's
    worth."""
    client = AIOKafkaClient(
        bootstrap_servers=kafka.bootstrap_servers(), **aiokafka_options(kafka.security)
    )
    with _silenced("aiokafka", "asyncio"):
        try:
            await asyncio.wait_for(client.bootstrap(), QUICK_LOOKUP_S)
            cluster = await asyncio.wait_for(client.fetch_all_metadata(), QUICK_LOOKUP_S)
        except Exception:  # whatever it is, kafka-python's attempt will explain it
            return None
        finally:
            await client.close()
    partitions = cluster.partitions_for_topic(kafka.topic)
    return sorted(partitions) if partitions else None


@contextlib.contextmanager
def _silenced(*names: str) -> Iterator[None]:
    loggers = [logging.getLogger(name) for name in names]
    disabled = [logger.disabled for logger in loggers]
    for logger in loggers:
        logger.disabled = True
    try:
        yield
    finally:
        for logger, was in zip(loggers, disabled, strict=True):
            logger.disabled = was


class PartitionFetcher:
    """Reads `partitions` of the topic in offset order within each partition. Use it on one
    event loop: `start`, then `fetch` until `done`, then `close`."""

    def __init__(
        self, kafka: KafkaSettings, partitions: Iterable[int], *, timeout_s: float = 30.0
    ) -> None:
        self.kafka = kafka
        self.topic = kafka.topic
        self.partitions = sorted(partitions)
        self._timeout_s = timeout_s
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=kafka.bootstrap_servers(),
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            **aiokafka_options(kafka.security),
        )
        self._tps = {p: TopicPartition(self.topic, p) for p in self.partitions}
        self._pending: list[Record] = []
        self.begin: dict[int, int] = {}
        self.end: dict[int, int] = {}
        self._next: dict[int, int] = {}

    async def start(self) -> None:
        """Assign the partitions from their beginning and learn their end offsets (the
        records fetched meanwhile are kept for `fetch`). A failure closes the client."""
        try:
            await self._start()
        except BaseException:
            await self._consumer.stop()
            raise

    async def _start(self) -> None:
        with self._reading():
            await self._consumer.start()
            tps = list(self._tps.values())
            self._consumer.assign(tps)
            await self._consumer.seek_to_beginning(*tps)
            self.begin = {p: await self._consumer.position(tp) for p, tp in self._tps.items()}
            self._next = dict(self.begin)
            deadline = time.monotonic() + self._timeout_s
            while True:
                known = {p: self._consumer.highwater(tp) for p, tp in self._tps.items()}
                if all(value is not None for value in known.values()):
                    break
                if time.monotonic() > deadline:
                    raise BrokerError(
                        f"no fetch response for partitions {self.partitions} of {self.topic} "
                        f"in {self._timeout_s:.0f}s"
                    )
                self._pending.extend(await self._get(timeout_ms=200))
            self.end = {p: int(value) for p, value in known.items() if value is not None}

    @property
    def total(self) -> int:
        """The records between the beginnings and the ends."""
        return sum(self.end[p] - self.begin[p] for p in self.end)

    def done(self) -> bool:
        return all(self._next[p] >= self.end[p] for p in self.end)

    async def fetch(self) -> list[Record]:
        """The next records below the end offsets (an empty list when none came in 1 s)."""
        if not self._pending and not self.done():
            with self._reading():
                self._pending = await self._get(timeout_ms=1000)
        batch, self._pending = self._pending, []
        wanted = [r for r in batch if self._next[r.partition] <= r.offset < self.end[r.partition]]
        for record in wanted:
            self._next[record.partition] = record.offset + 1
        finished = [self._tps[p] for p in self.end if self._next[p] >= self.end[p]]
        if finished:  # fetch no further there
            self._consumer.pause(*finished)
        return wanted

    async def _get(self, *, timeout_ms: int) -> list[Record]:
        fetched = await self._consumer.getmany(timeout_ms=timeout_ms, max_records=MAX_RECORDS)
        return [
            Record(tp.partition, r.offset, r.key, r.value, r.timestamp)
            for tp, records in sorted(fetched.items())
            for r in records
        ]

    async def close(self) -> None:
        await self._consumer.stop()

    @contextlib.contextmanager
    def _reading(self) -> Iterator[None]:
        """aiokafka's errors as one `BrokerError` line; a denial names the missing ACL."""
        try:
            yield
        except (TopicAuthorizationFailedError, ClusterAuthorizationFailedError):
            line = not_authorized(self.kafka, "Read", f"topic {self.topic}")
            raise BrokerError(line) from None
        except KafkaError as exc:
            raise BrokerError(f"reading {self.topic} failed: {describe(exc)}") from None
