"""Tripwires for upgrades: every private part of faust, mode, aiokafka, asyncio and botocore
that the code overrides, calls, reads or sets (`stream/faust/`: fixes, producer, consumer,
handoff, recovery, run; `stream/sinks/s3.py`) still exists with the shape relied on. This
module is the list of them.

A renamed private method would not fail loudly: the override would simply never be called,
and the guarantee it gives (no commit ahead of the changelog, no skipped record) would be off
with every other test still green. Each case names the fix that depends on it, so a failure
after an upgrade says which fix to port. The versions are pinned in pyproject.toml; these
tests are what an upgrade has to pass.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any

import aiokafka.producer.producer as aiokafka_producer
import botocore.session
import faust
import mode
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.client import AIOKafkaClient
from faust.tables.recovery import Recovery
from faust.transport.consumer import Consumer as BaseConsumer
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.transport.drivers.aiokafka import Consumer as AIOKafkaConsumerDriver
from faust.transport.drivers.aiokafka import Producer as AIOKafkaProducerDriver
from faust.transport.producer import ProducerBuffer
from mode.services import WaitResults
from mode.utils.queues import FlowControlEvent

#: (fix, owner, method, parameter names after self, whether it is a coroutine function)
METHODS: list[tuple[str, type, str, tuple[str, ...], bool]] = [
    ("WholeFlushBuffer", ProducerBuffer, "__post_init__", (), False),
    ("WholeFlushBuffer", ProducerBuffer, "put", ("fut",), False),
    ("WholeFlushBuffer", ProducerBuffer, "_send_pending", ("fut",), True),
    ("WholeFlushBuffer", ProducerBuffer, "flush", (), True),
    ("TopicTrackingProducer", AIOKafkaProducerDriver, "__post_init__", (), False),
    (
        "TopicTrackingProducer",
        AIOKafkaProducerDriver,
        "send",
        ("topic", "key", "value", "partition", "timestamp", "headers", "transactional_id"),
        True,
    ),
    ("TopicTrackingProducer", AIOKafkaProducerDriver, "_ensure_producer", (), False),
    ("TopicTrackingProducer", AIOKafkaClient, "add_topic", ("topic",), False),
    ("QuickHandoff", mode.Service, "wait_first", ("coros", "timeout"), True),
    (
        "InOrderConsumer",
        AIOKafkaConsumerDriver,
        "_add_gap",
        ("tp", "offset_from", "offset_to"),
        True,
    ),
    ("InOrderConsumer", AIOKafkaConsumerDriver, "_new_consumer_thread", (), False),
    ("InOrderConsumer", AIOKafkaConsumerDriver, "seek_to_committed", (), True),
    ("SafeApp", AIOKafkaConsumerDriver, "perform_seek", (), True),
    ("_ShortFetchWaitThread", AIOKafkaConsumerThread, "_create_consumer", ("loop",), False),
    ("SafeApp", faust.App, "_on_partitions_revoked", ("revoked",), True),
    ("SafeApp", faust.App, "on_stop", (), True),
    ("SafeApp", faust.App, "on_start", (), True),
    ("SafeApp", mode.Service, "add_future", ("coro",), False),
    ("SafeApp", faust.App, "_new_producer", (), False),
    ("SafeApp", faust.App, "_new_consumer", (), False),
    ("SafeApp", faust.App, "on_init_dependencies", (), False),
    ("SafeApp", faust.App, "on_rebalance_start", (), False),
    ("SafeApp", faust.App, "on_rebalance_end", (), False),
    ("RecoveryHealer", Recovery, "active_remaining", (), False),
    ("RecoveryHealer", FlowControlEvent, "resume", (), False),
    (
        "InOrderConsumer (no commit after a refusal)",
        AIOKafkaConsumerDriver,
        "_commit",
        ("offsets",),
        True,
    ),
    (
        "_ShortFetchWaitThread (a refused read)",
        AIOKafkaConsumerThread,
        "_fetch_records",
        ("consumer", "active_partitions", "timeout", "max_records"),
        True,
    ),
    ("run_app (the stop line's signal)", mode.Worker, "_schedule_shutdown", ("signal",), False),
]

#: (fix, the function whose body sets the attribute, the attribute it sets on self)
ATTRIBUTES: list[tuple[str, Callable[..., Any], str]] = [
    ("WholeFlushBuffer", ProducerBuffer.__post_init__, "pending"),
    ("InOrderConsumer", BaseConsumer.__init__, "_unacked_messages"),
    ("QuickHandoff", mode.Service.__init__, "_stopped"),
    ("QuickHandoff", mode.Service.__init__, "_crashed"),
    ("_ShortFetchWaitThread", AIOKafkaConsumer.__init__, "_fetch_max_wait_ms"),
    ("TopicTrackingProducer", aiokafka_producer.AIOKafkaProducer.__init__, "client"),
    ("RecoveryHealer", Recovery.__init__, "active_offsets"),
    ("RecoveryHealer", Recovery._set_recovery_started, "in_recovery"),
    ("consumer.rewind (app.rebalancing)", faust.App.on_rebalance_start, "rebalancing"),
    ("run_worker (no start-up spinner)", faust.Worker.__init__, "spinner"),
    ("sinks.s3 assumed-role credentials", botocore.session.Session.__init__, "_credentials"),
    ("InOrderConsumer.committed (the stop line)", BaseConsumer.__init__, "_committed_offset"),
]


@pytest.mark.parametrize(
    ("fix", "owner", "name", "parameters", "coroutine"),
    METHODS,
    ids=[f"{fix}-{owner.__name__}.{name}" for fix, owner, name, _, _ in METHODS],
)
def test_a_private_method_a_fix_relies_on_keeps_its_shape(
    fix: str, owner: type, name: str, parameters: tuple[str, ...], coroutine: bool
) -> None:
    where = f"{owner.__module__}.{owner.__qualname__}.{name}"
    method = getattr(owner, name, None)
    assert method is not None, f"{fix} overrides or calls {where}, which no longer exists"
    found = tuple(inspect.signature(method).parameters)[1:]
    assert found == parameters, f"{fix} relies on {where}{parameters}, now it takes {found}"
    assert inspect.iscoroutinefunction(method) == coroutine, (
        f"{fix} relies on {where} being {'async' if coroutine else 'sync'}"
    )


@pytest.mark.parametrize(
    ("fix", "function", "attribute"),
    ATTRIBUTES,
    ids=[f"{fix}-{attribute}" for fix, _, attribute in ATTRIBUTES],
)
def test_a_private_attribute_a_fix_relies_on_is_still_set(
    fix: str, function: Callable[..., Any], attribute: str
) -> None:
    source = inspect.getsource(function)
    assert f"self.{attribute} =" in source or f"self.{attribute}: " in source, (
        f"{fix} relies on {function.__qualname__} setting self.{attribute}, which it no longer does"
    )


def test_the_wait_results_a_quick_handoff_returns_keep_their_fields() -> None:
    assert WaitResults._fields == ("done", "results", "stopped"), (
        "QuickHandoff builds mode.services.WaitResults(done, results, stopped)"
    )


def test_the_app_still_keeps_its_sensors_and_monitor() -> None:
    source = inspect.getsource(faust.App)
    assert "self.sensors = " in source, "SafeApp.on_init_dependencies removes from app.sensors"
    assert "def monitor(" in source, "SafeApp.on_init_dependencies removes app.monitor"


def test_the_app_still_has_its_flow_control() -> None:
    assert isinstance(
        inspect.getattr_static(faust.App, "flow_control"), mode.utils.objects.cached_property
    ), "RecoveryHealer resumes app.flow_control"


def test_a_future_still_marks_itself_blocking() -> None:
    async def marked() -> bool:
        return hasattr(asyncio.get_running_loop().create_future(), "_asyncio_future_blocking")

    assert asyncio.run(marked()), "QuickHandoff clears a future's _asyncio_future_blocking"


def test_a_botocore_session_still_hands_out_the_credentials_it_was_given() -> None:
    source = inspect.getsource(botocore.session.Session.get_credentials)
    assert "return self._credentials" in source, (
        "sinks.s3 sets session._credentials to refreshable assumed-role credentials"
    )


def test_a_commit_still_flushes_the_producer_before_it_commits() -> None:
    """`TopicTrackingProducer.failure` is set by the time that flush returns, and
    `InOrderConsumer._commit` reads it: the order is what keeps a refused record's state from
    being committed past."""
    source = inspect.getsource(BaseConsumer._commit_offsets)
    flush = source.index("await self.app.producer.flush()")
    commit = source.index("await self._commit(committable_offsets)")
    assert flush < commit
