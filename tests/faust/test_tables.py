"""`PromptTableManager`: the worker's table recovery starts at once, without Faust's sleep."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from faust.tables import TableManager

from stream.faust.fixes import SafeApp
from stream.faust.tables import PromptTableManager


def test_the_worker_s_app_manages_its_tables_with_the_prompt_manager() -> None:
    app = SafeApp("tables-test", broker="kafka://127.0.0.1:1")
    assert type(app.tables) is PromptTableManager


@pytest.mark.parametrize(
    ("kind", "slept"),
    [(PromptTableManager, []), (TableManager, [1.0])],
    ids=["prompt", "faust-own"],
)
def test_starting_closes_the_tables_and_starts_their_recovery_without_sleeping(
    kind: type[TableManager], slept: list[float]
) -> None:
    """What the start does, in order, with the sleep recorded instead of slept: Faust's own
    manager waits a second first; the prompt one goes straight to the same two steps."""
    app = SafeApp("tables-test", broker="kafka://127.0.0.1:1")
    manager: Any = kind(app=app, beacon=app.beacon)
    steps: list[str] = []
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    async def update_channels() -> None:
        steps.append("tables closed")

    class Recovery:
        async def start(self) -> None:
            steps.append("recovery started")

    manager.sleep = sleep
    manager._update_channels = update_channels
    manager._recovery = Recovery()
    asyncio.run(manager.on_start())
    assert steps == ["tables closed", "recovery started"]
    assert sleeps == slept
