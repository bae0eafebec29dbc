"""`QuickHandoff`: a record handler that does not suspend runs at once, in the caller's
task; one that suspends is raced against the flow stop as Faust races it."""

import asyncio
import inspect
from typing import Any

import pytest

from stream.faust.handoff import QuickHandoff


class Fetcher(QuickHandoff):
    """A mode service with the quick `wait_first`, as the worker's consumer has it."""


def test_a_handler_that_does_not_suspend_runs_at_once_in_the_callers_task() -> None:
    async def main() -> None:
        service = Fetcher()
        caller = asyncio.current_task()
        ran_in: list[Any] = []

        async def handler() -> str:
            ran_in.append(asyncio.current_task())
            return "delivered"

        flow_stop = asyncio.Event()
        stop_wait = flow_stop.wait()
        results = await service.wait_first(handler(), stop_wait)
        assert results.results == ["delivered"] and not results.stopped
        assert ran_in == [caller]  # no task of its own
        assert inspect.getcoroutinestate(stop_wait) == inspect.CORO_CLOSED  # not left to warn

    asyncio.run(main())


def test_a_handler_that_suspends_finishes_and_returns_its_result() -> None:
    async def main() -> None:
        service = Fetcher()
        loop = asyncio.get_running_loop()
        room = loop.create_future()
        steps: list[str] = []

        async def handler() -> int:
            steps.append("waits for room")
            await asyncio.sleep(0)  # a bare yield
            value = await room
            steps.append("put")
            return value + 1

        loop.call_later(0.01, room.set_result, 41)
        results = await service.wait_first(handler(), asyncio.Event().wait())
        assert results.results == [42] and steps == ["waits for room", "put"]

    asyncio.run(main())


def test_a_flow_stop_cancels_a_suspended_handler_as_faust_does() -> None:
    async def main() -> None:
        service = Fetcher()
        loop = asyncio.get_running_loop()
        flow_stop = asyncio.Event()
        cancelled = loop.create_future()

        async def handler() -> None:
            try:
                await loop.create_future()  # never room
            except asyncio.CancelledError:
                cancelled.set_result(True)
                raise

        loop.call_later(0.01, flow_stop.set)
        results = await service.wait_first(handler(), flow_stop.wait())
        assert not results.stopped and len(results.results) == 1  # the flow stop won
        assert await asyncio.wait_for(cancelled, timeout=5)

    asyncio.run(main())


@pytest.mark.parametrize("suspend_first", [False, True])
def test_a_handlers_failure_reaches_the_caller(suspend_first: bool) -> None:
    async def main() -> None:
        service = Fetcher()
        failing = asyncio.get_running_loop().create_future()
        failing.set_exception(ValueError("bad record"))

        async def handler() -> None:
            if suspend_first:
                await asyncio.sleep(0)
            await failing

        with pytest.raises(ValueError, match="bad record"):
            await service.wait_first(handler(), asyncio.Event().wait())

    asyncio.run(main())


def test_a_stopped_service_races_as_before() -> None:
    async def main() -> None:
        service = Fetcher()
        service._stopped.set()
        ran_in: list[Any] = []

        async def handler() -> None:
            ran_in.append(asyncio.current_task())

        results = await service.wait_first(handler(), asyncio.Event().wait())
        assert results.stopped
        assert ran_in and ran_in[0] is not asyncio.current_task()  # a task, as in mode

    asyncio.run(main())
