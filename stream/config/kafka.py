"""`[kafka]`: the broker, the topics and the worker's clocks, read into `KafkaSettings`.

`parse_brokers` is the one reader of `kafka.broker` that every client uses: Faust gets
`kafka_url()`, kafka-python `bootstrap_servers()`, both from the same list of hosts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from stream.config.security import SECRET_KEYS, SECURITY_KEYS, KafkaSecurity, read_security
from stream.config.values import (
    Problems,
    no_unknown_keys,
    read_duration,
    read_duration_text,
    read_integer,
    read_name,
    read_positive_duration,
    read_string,
)
from stream.domain.windows import format_duration
from stream.errors import ConfigError

__all__ = ["KafkaSettings", "BROKER_ENV", "parse_brokers", "read_kafka"]

BROKER_ENV = "COHORT_SYNC_BROKER"
RETAIN_EXITED_DEFAULT_MS = 30 * 86_400_000
IDLE_CATCH_UP_DEFAULT_MS = 86_400_000
MAX_FUTURE_DEFAULT_MS = 3_600_000
#: Topic configs the worker's changelog always has, whatever `kafka.topic_config` says: the
#: table is rebuilt from its latest record per key.
CHANGELOG_CONFIG = {"cleanup.policy": "compact"}
_HOST_PORT = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._\-]+):(\d{1,5})$")


@dataclass(frozen=True, kw_only=True)
class KafkaSettings:
    broker: str | None = None
    """As written (None: the embedded broker); `bootstrap_servers()` is its parsed form."""
    topic: str = "cohort-membership"
    app_id: str = "cohort-sync"
    partitions: int = 8
    allowed_lateness_ms: int = 0
    idle_timeout_ms: int | None = 30_000
    idle_catch_up_ms: int | None = IDLE_CATCH_UP_DEFAULT_MS
    """How far behind the wall clock an idle partition may be and still follow it (None:
    any distance)."""
    retain_exited_ms: int | None = RETAIN_EXITED_DEFAULT_MS
    """How long before the decided watermark an absent member is kept (None: for ever)."""
    max_future_ms: int | None = MAX_FUTURE_DEFAULT_MS
    """How far an input record's event time may be ahead of its Kafka timestamp (None: any
    distance); a record further ahead is dead-lettered, so no watermark passes it."""
    replication_factor: int | None = None
    """Of every topic the worker creates (None: the cluster's default.replication.factor)."""
    topic_config: Mapping[str, str] = field(default_factory=dict)
    """Topic configs set on every topic the worker creates."""
    security: KafkaSecurity = field(default_factory=KafkaSecurity)
    """TLS and SASL: how every client reaches the cluster."""

    @property
    def dlq_topic(self) -> str:
        return f"{self.topic}-dlq"

    @property
    def ticks_topic(self) -> str:
        return f"{self.app_id}-ticks"

    @property
    def repartition_topic(self) -> str:
        return f"{self.app_id}-by-cohort"

    @property
    def changelog_topic(self) -> str:
        """Faust's name for the changelog of the worker's one table, `membership`."""
        return f"{self.app_id}-membership-changelog"

    @property
    def leader_topic(self) -> str:
        """The one-partition topic Faust's partition assignor keeps for its leader."""
        return f"{self.app_id}-__assignor-__leader"

    def own_topics(self) -> list[str]:
        """The worker's topics co-partitioned with the input: ticks, repartition, changelog."""
        return [self.ticks_topic, self.repartition_topic, self.changelog_topic]

    def topic_config_for(self, topic: str) -> dict[str, str]:
        """The configs a topic the worker creates gets (the changelog is always compacted)."""
        if topic == self.changelog_topic:
            return {**self.topic_config, **CHANGELOG_CONFIG}
        return dict(self.topic_config)

    def bootstrap_servers(self) -> list[str]:
        """`kafka://h1:9092, h2:9092` -> `["h1:9092", "h2:9092"]` for kafka-python."""
        if self.broker is None:
            raise ConfigError("kafka.broker", "no broker configured")
        return parse_brokers(self.broker)

    def kafka_url(self) -> str:
        """The same hosts as Faust wants them: `kafka://h1:9092;kafka://h2:9092`."""
        return ";".join(f"kafka://{host}" for host in self.bootstrap_servers())


def parse_brokers(text: str) -> list[str]:
    """`host:port` of each broker in `text`: hosts separated by `,` or `;`, spaces allowed,
    each with or without `kafka://`. Raises `ConfigError` naming `kafka.broker`."""
    hosts = []
    for part in re.split(r"[;,]", text):
        host = part.strip()
        if not host:
            continue
        scheme, separator, rest = host.partition("://")
        if separator:
            if scheme.lower() != "kafka":
                raise ConfigError(
                    "kafka.broker", f"{host!r}: only kafka:// (or no scheme) is understood"
                )
            host = rest.rstrip("/")
        if not _HOST_PORT.match(host) or not 0 < int(host.rsplit(":", 1)[1]) < 65536:
            raise ConfigError(
                "kafka.broker", f"{part.strip()!r} is not host:port (for example kafka1:9092)"
            )
        hosts.append(host)
    if not hosts:
        raise ConfigError("kafka.broker", "names no host (omit it for the embedded broker)")
    return hosts


_KEYS = {
    "broker",
    "topic",
    "app_id",
    "partitions",
    "allowed_lateness",
    "idle_timeout",
    "idle_catch_up",
    "retain_exited",
    "max_future",
    "replication_factor",
    "topic_config",
    *SECURITY_KEYS,
}


def read_kafka(
    section: Mapping[str, Any], environ: Mapping[str, str], *, secrets: bool = True
) -> KafkaSettings:
    """The `[kafka]` table (and `COHORT_SYNC_BROKER`) -> `KafkaSettings`; every key's
    problem is reported, not only the first."""
    problems = Problems()
    # A secret written in the file gets its own line (`read_security`), not "unknown key".
    written = {key: value for key, value in section.items() if key not in SECRET_KEYS}
    problems.attempt(lambda: no_unknown_keys(written, _KEYS, "kafka."), None)
    defaults = KafkaSettings()
    broker = problems.attempt(lambda: _broker(section, environ), None)

    def duration(key: str, default: int | None, unlimited: str) -> int | None:
        return problems.attempt(
            lambda: read_positive_duration(section, key, default, unlimited=unlimited), default
        )

    settings = KafkaSettings(
        broker=broker,
        topic=problems.attempt(
            lambda: read_name(section, "topic", "kafka.topic", defaults.topic), defaults.topic
        ),
        app_id=problems.attempt(
            lambda: read_name(section, "app_id", "kafka.app_id", defaults.app_id), defaults.app_id
        ),
        partitions=problems.attempt(
            lambda: read_integer(
                section, "partitions", "kafka.partitions", default=defaults.partitions, minimum=1
            ),
            defaults.partitions,
        ),
        allowed_lateness_ms=problems.attempt(
            lambda: _allowed_lateness(section, defaults.allowed_lateness_ms),
            defaults.allowed_lateness_ms,
        ),
        idle_timeout_ms=duration("idle_timeout", defaults.idle_timeout_ms, "off"),
        idle_catch_up_ms=duration("idle_catch_up", defaults.idle_catch_up_ms, "off"),
        retain_exited_ms=duration("retain_exited", defaults.retain_exited_ms, "forever"),
        max_future_ms=duration("max_future", defaults.max_future_ms, "off"),
        replication_factor=problems.attempt(lambda: _replication_factor(section), None),
        topic_config=problems.attempt(lambda: _topic_config(section), {}),
        security=read_security(section, environ, problems, secrets=secrets),
    )
    embedded = "broker" not in section and not environ.get(BROKER_ENV)
    if embedded and settings.security != KafkaSecurity():
        problems.found.append(
            ConfigError(
                "kafka.security_protocol",
                "the embedded broker is plaintext: set kafka.broker to use TLS or SASL",
            )
        )
    problems.raise_found()
    return settings


def _broker(section: Mapping[str, Any], environ: Mapping[str, str]) -> str | None:
    broker = environ.get(BROKER_ENV) or read_string(section, "broker", "kafka.broker", default=None)
    if broker is not None:
        if not broker.strip():
            raise ConfigError("kafka.broker", "must not be empty (omit it for the embedded broker)")
        parse_brokers(broker)
    return broker


def _allowed_lateness(section: Mapping[str, Any], default_ms: int) -> int:
    where = "kafka.allowed_lateness"
    text = read_duration_text(section, "allowed_lateness", where, format_duration(default_ms))
    return read_duration(text, where)


def _replication_factor(section: Mapping[str, Any]) -> int | None:
    value = section.get("replication_factor", "default")
    if value == "default":
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 32767:
        raise ConfigError(
            "kafka.replication_factor",
            f'must be a whole number from 1 (or "default": the cluster\'s), got {value!r}',
        )
    return value


def _topic_config(section: Mapping[str, Any]) -> dict[str, str]:
    table = section.get("topic_config", {})
    if not isinstance(table, dict):
        raise ConfigError("kafka.topic_config", 'must be a table: {"min.insync.replicas" = "2"}')
    configs: dict[str, str] = {}
    for key, value in table.items():
        if not isinstance(value, str):
            raise ConfigError(
                f"kafka.topic_config.{key}",
                f'must be a string (write {key} = "{_as_text(value)}"), got {type(value).__name__}',
            )
        configs[key] = value
    return configs


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
