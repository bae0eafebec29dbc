"""The outbox's sends, with topics replaced by fakes: a dead letter returns only once the
broker has it, whatever its size; a send that keeps failing stops the worker; a forward that
is too large, or refused later, never passes silently."""

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError, MessageSizeTooLargeError
from faust.exceptions import ProducerSendError

from stream.domain.deadletter import ORIGINAL_SIZE_HEADER
from stream.errors import RecordTooLarge, WorkerFault
from stream.faust.outbox import FaustOutbox


class Topic:
    """A Faust topic whose `send` fails as `failures` says, in turn, then succeeds."""

    def __init__(self, failures: list[BaseException | Callable[[int], bool]] | None = None):
        self.failures = list(failures or [])
        self.sent: list[dict[str, Any]] = []
        self.attempts = 0

    async def send(self, **record: Any) -> asyncio.Future[None]:
        self.attempts += 1
        delivered: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        failure = self.failures.pop(0) if self.failures else None
        if isinstance(failure, ProducerSendError):
            raise failure  # refused by the client before sending
        if failure is not None and callable(failure) and failure(len(record["value"])):
            delivered.set_exception(MessageSizeTooLargeError("refused by the broker"))
        elif isinstance(failure, BaseException):
            delivered.set_exception(failure)  # answered later, on the delivery
        else:
            self.sent.append(record)
            delivered.set_result(None)
        return delivered


def too_large() -> ProducerSendError:
    error = ProducerSendError("Error while sending")
    error.__cause__ = MessageSizeTooLargeError("too large")
    return error


def outbox(dlq: Topic, forwards: Topic | None = None, **options: Any) -> FaustOutbox:
    async def no_wait(seconds: float) -> None:
        waits.append(seconds)

    waits: list[float] = []
    box = FaustOutbox(
        dlq,
        forwards or Topic(),
        lanes=None,  # type: ignore[arg-type]
        max_request_size=options.pop("max_request_size", 1_000_000),
        on_fault=options.pop("on_fault", lambda fault: None),
        sleep=no_wait,
        **options,
    )
    box.waits = waits  # type: ignore[attr-defined]
    return box


def dead_letter(box: FaustOutbox, value: bytes) -> None:
    asyncio.run(
        box.dead_letter(topic="t", partition=0, offset=9, key=b"c1", value=value, reason="bad")
    )


def test_a_dead_letter_that_fits_is_sent_once_and_confirmed() -> None:
    dlq = Topic()
    dead_letter(outbox(dlq), b"x" * 100)
    assert [record["value"] for record in dlq.sent] == [b"x" * 100]


def test_a_dead_letter_above_the_producer_limit_is_sent_as_a_prefix() -> None:
    dlq = Topic()
    dead_letter(outbox(dlq), b"x" * 2_000_000)
    (record,) = dlq.sent
    assert 900_000 < len(record["value"]) < 1_000_000
    assert dict(record["headers"])[ORIGINAL_SIZE_HEADER] == b"2000000"


def test_a_dead_letter_the_broker_refuses_for_size_is_cut_further_until_it_fits() -> None:
    broker_limit = 200_000
    dlq = Topic([lambda size: size > broker_limit] * 10)
    dead_letter(outbox(dlq), b"x" * 900_000)
    (record,) = dlq.sent
    assert len(record["value"]) <= broker_limit
    assert dict(record["headers"])[ORIGINAL_SIZE_HEADER] == b"900000"


def test_a_client_side_size_refusal_is_cut_too() -> None:
    dlq = Topic([too_large()])
    dead_letter(outbox(dlq, max_request_size=10_000_000), b"x" * 2_000_000)
    assert len(dlq.sent[0]["value"]) < 2_000_000


def test_a_transient_failure_is_retried_with_backoff() -> None:
    dlq = Topic([KafkaConnectionError("down"), KafkaConnectionError("down")])
    box = outbox(dlq)
    dead_letter(box, b"x")
    assert len(dlq.sent) == 1 and dlq.attempts == 3
    assert box.waits == [0.1, 0.2]  # type: ignore[attr-defined]


def test_a_dead_letter_that_never_goes_stops_the_worker() -> None:
    dlq = Topic([KafkaConnectionError("down")] * 1000)
    with pytest.raises(WorkerFault, match=r"t/0/9 could not be sent .*KafkaConnectionError"):
        dead_letter(outbox(dlq, patience=10.0), b"x")
    assert dlq.sent == []


def test_a_forward_too_large_for_the_producer_raises_record_too_large() -> None:
    box = outbox(Topic(), Topic([too_large()]))
    with pytest.raises(RecordTooLarge, match="too large to forward"):
        asyncio.run(box.forward(key=b"c1", value=b"x", partition=1))


def test_a_forward_the_broker_refuses_later_is_reported_as_a_fault() -> None:
    faults: list[str] = []
    box = outbox(Topic(), Topic([KafkaConnectionError("gone")]), on_fault=faults.append)

    async def run() -> None:
        await box.forward(key=b"c1", value=b"x", partition=1)
        await asyncio.sleep(0)  # done callbacks run on the next loop step

    asyncio.run(run())
    (fault,) = faults
    assert fault.startswith("a forwarded record was refused: KafkaConnectionError:")
