"""A table recovery that stops receiving is read again from where it stopped."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from faust.types import TP

from stream.faust.recovery import RecoveryHealer

CHANGELOG = TP("cohort-sync-membership-changelog", 2)


class Recovery:
    def __init__(self) -> None:
        self.in_recovery = True
        self.remaining = {CHANGELOG: 40}
        self.active_offsets = {CHANGELOG: 99}

    def active_remaining(self) -> dict[TP, int]:
        return dict(self.remaining)


class Consumer:
    def __init__(self) -> None:
        self.calls: list[Any] = []

    def resume_partitions(self, partitions: list[TP]) -> None:
        self.calls.append(("resume_partitions", partitions))

    async def seek(self, tp: TP, offset: int) -> None:
        self.calls.append(("seek", tp, offset))

    def resume_flow(self) -> None:
        self.calls.append("resume_flow")


def app_in_recovery() -> Any:
    flow = SimpleNamespace(resumed=0)
    flow.resume = lambda: setattr(flow, "resumed", flow.resumed + 1)
    return SimpleNamespace(
        tables=SimpleNamespace(recovery=Recovery()), consumer=Consumer(), flow_control=flow
    )


def test_a_recovery_that_receives_nothing_for_the_patience_is_read_again_once() -> None:
    app = app_in_recovery()
    healer = RecoveryHealer(app, patience=10.0)
    for now in (0.0, 5.0, 9.9):
        asyncio.run(healer.check(now))
    assert healer.healed == 0
    asyncio.run(healer.check(10.0))
    assert healer.healed == 1
    assert app.consumer.calls == [
        ("resume_partitions", [CHANGELOG]),
        ("seek", CHANGELOG, 100),  # the record after the last one received
        "resume_flow",
    ]
    assert app.flow_control.resumed == 1


def test_a_recovery_that_moves_or_has_nothing_left_is_left_alone() -> None:
    app = app_in_recovery()
    healer = RecoveryHealer(app, patience=10.0)
    for now in range(0, 40, 5):
        app.tables.recovery.active_offsets[CHANGELOG] += 1  # still receiving
        asyncio.run(healer.check(float(now)))
    app.tables.recovery.remaining = {CHANGELOG: 0}
    for now in range(40, 80, 5):
        asyncio.run(healer.check(float(now)))
    assert healer.healed == 0 and app.consumer.calls == []
