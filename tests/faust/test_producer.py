"""`WholeFlushBuffer`: a flush (what a commit waits on) returns only once every changelog
record put into the buffer has reached the Kafka client, also the one its sender holds while
the client has no room, where Faust's own flush returned at once (no broker: the client is a
stand-in whose send waits on a gate)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from faust.transport.producer import ProducerBuffer
from faust.types import TP

from stream.faust.producer import WholeFlushBuffer


class _Client:
    """Takes a record only once `room` is set, as a client whose batches are full."""

    def __init__(self) -> None:
        self.room = asyncio.Event()
        self.sent: list[Any] = []

    async def publish_message(self, fut: Any, wait: bool = False) -> None:
        await self.room.wait()
        self.sent.append(fut)


def _record(client: _Client) -> Any:
    return SimpleNamespace(message=SimpleNamespace(channel=client))


async def _buffer(kind: type[ProducerBuffer]) -> ProducerBuffer:
    buffer = kind()
    buffer.app = SimpleNamespace(conf=SimpleNamespace(producer_threaded=False))  # type: ignore[assignment]
    await buffer.start()
    return buffer


async def _held_by_the_sender(kind: type[ProducerBuffer]) -> tuple[ProducerBuffer, _Client]:
    """A buffer whose one record the sender took from the queue and is still sending."""
    buffer, client = await _buffer(kind), _Client()
    buffer.put(_record(client))
    for _ in range(1000):  # the sender takes it off the queue at its next turns
        if not buffer.size:
            break
        await asyncio.sleep(0)
    assert buffer.size == 0, "the buffer's sender never took the record"
    return buffer, client


def test_fausts_own_flush_returns_while_the_sender_still_holds_a_record() -> None:
    async def run() -> list[Any]:
        buffer, client = await _held_by_the_sender(ProducerBuffer)
        await buffer.flush()  # the flaw WholeFlushBuffer exists for
        sent = list(client.sent)
        client.room.set()
        await buffer.stop()
        return sent

    assert asyncio.run(run()) == []


def test_the_whole_flush_waits_until_the_record_the_sender_holds_is_sent() -> None:
    async def run() -> None:
        buffer, client = await _held_by_the_sender(WholeFlushBuffer)
        flush = asyncio.ensure_future(buffer.flush())
        for _ in range(50):  # the flush has every chance to return, and must not
            await asyncio.sleep(0)
        assert not flush.done() and client.sent == []
        client.room.set()
        await asyncio.wait_for(flush, timeout=30)
        assert len(client.sent) == 1
        await buffer.stop()

    asyncio.run(run())


def test_a_whole_flush_of_an_empty_buffer_returns_at_once() -> None:
    async def run() -> None:
        buffer = await _buffer(WholeFlushBuffer)
        await asyncio.wait_for(buffer.flush(), timeout=30)
        await buffer.stop()

    asyncio.run(run())


def test_a_refused_record_is_remembered_once_and_reported_unless_its_sender_handles_it() -> None:
    from stream.faust.producer import TopicTrackingProducer

    reported: list[tuple[str, str]] = []
    producer = SimpleNamespace(
        _unconfirmed={1: 0.0, 2: 0.0, 3: 0.0, 4: 0.0},
        failure=None,
        on_failure=lambda topic, error: reported.append((topic, str(error))),
        handled=lambda topic: topic == "in-dlq",
    )

    async def deliveries() -> None:
        loop = asyncio.get_running_loop()
        outcomes: list[tuple[int, str, BaseException | None]] = [
            (1, "app-ticks", None),
            (2, "in-dlq", RuntimeError("refused dead letter")),  # the outbox retries it
            (3, "app-membership-changelog", RuntimeError("not authorized")),
            (4, "app-ticks", RuntimeError("later")),
        ]
        for number, topic, error in outcomes:
            done: asyncio.Future[Any] = loop.create_future()
            if error is None:
                done.set_result(None)
            else:
                done.set_exception(error)
            TopicTrackingProducer._confirmed(producer, number, topic, done)  # type: ignore[arg-type]

    asyncio.run(deliveries())
    assert producer._unconfirmed == {}
    assert reported == [("app-membership-changelog", "not authorized")]  # the first only
    assert producer.failure is not None and producer.failure[0] == "app-membership-changelog"


def test_nothing_is_committed_once_a_record_was_refused() -> None:
    from stream.faust.consumer import InOrderConsumer
    from stream.faust.producer import TopicTrackingProducer

    producer = TopicTrackingProducer.__new__(TopicTrackingProducer)  # not started: no broker
    producer.failure = ("app-membership-changelog", RuntimeError("not authorized"))
    consumer = SimpleNamespace(app=SimpleNamespace(producer=producer))
    offsets = {TP("app-membership", 0): 5}
    committed = asyncio.run(InOrderConsumer._commit(consumer, offsets))  # type: ignore[arg-type]
    assert committed is False
