"""A stop that does not end by its deadline ends the process, with exit code 1."""

from __future__ import annotations

import asyncio
import subprocess
import sys

from stream.faust.run import faust_url, until_other_tasks_end

STUCK = """
import threading
from stream.faust.run import exit_after
exit_after(0.2)
threading.Event().wait()  # a stop that never ends
"""


STUCK_AFTER_A_FAULT = STUCK.replace("exit_after(0.2)", "exit_after(0.2, lambda: 'no luck')")


def test_exit_after_ends_a_stuck_process_with_code_1() -> None:
    result = subprocess.run(
        [sys.executable, "-c", STUCK], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1].endswith("the stop did not end within 0s: exiting now")


def test_a_stuck_stop_of_a_worker_stopping_itself_still_ends_with_the_reason() -> None:
    result = subprocess.run(
        [sys.executable, "-c", STUCK_AFTER_A_FAULT], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert lines[-2].endswith("the stop did not end within 0s: exiting now")
    assert lines[-1] == "cohort-sync: the worker stopped: no luck"


def test_the_broker_setting_becomes_faust_s_url_list() -> None:
    from stream.config import settings_from_mapping

    def url(broker: str) -> str:
        settings = settings_from_mapping(
            {
                "kafka": {"broker": broker},
                "destinations": [{"name": "d", "url": "file:///out"}],
                "syncs": [{"cohort": "*", "destination": "d", "cadence": "hourly"}],
            }
        )
        return faust_url(settings)

    assert url("a:9092") == "kafka://a:9092"
    assert url("kafka://a:9092;b:9093") == "kafka://a:9092;kafka://b:9093"


class _Naps:
    """`until_other_tasks_end`'s naps, counted; the first sets `wake` when given one."""

    def __init__(self, wake: asyncio.Event | None = None) -> None:
        self.count = 0
        self.wake = wake

    async def __call__(self, seconds: float) -> None:
        self.count += 1
        if self.wake is not None:
            self.wake.set()
        await asyncio.sleep(0)


def test_the_last_wait_of_a_stop_ends_at_once_when_no_other_task_is_left() -> None:
    naps = _Naps()
    asyncio.run(until_other_tasks_end(1.0, naps))
    assert naps.count == 0


def test_the_last_wait_of_a_stop_waits_for_a_task_still_ending() -> None:
    async def scenario() -> tuple[int, bool]:
        wake = asyncio.Event()
        ending = asyncio.ensure_future(wake.wait())
        naps = _Naps(wake)
        await until_other_tasks_end(60.0, naps)
        return naps.count, ending.done()

    count, ended = asyncio.run(scenario())
    assert count >= 1
    assert ended


def test_the_last_wait_of_a_stop_gives_up_at_its_deadline() -> None:
    async def scenario() -> bool:
        never = asyncio.ensure_future(asyncio.Event().wait())
        await until_other_tasks_end(0.0, _Naps())
        pending = not never.done()
        never.cancel()
        return pending

    assert asyncio.run(scenario())
