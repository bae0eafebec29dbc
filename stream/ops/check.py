"""`cohort-sync check`: is a deployment ready to run? Changes nothing, writes nothing.

It reaches the broker (the worker's topics, their partitions, the group's lag) and every
destination (who the credentials resolve to, the bucket and path, or the folder), then
prints the plan: each sync rule, the cohorts it covers, its next sync time and one example
key. Each problem is one line; the exit code is 0 when everything is reachable and 1 when
something is not (a config error never gets here: it exits 2 before).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TextIO

from stream.config import Destination, Settings, SyncRule
from stream.domain.naming import object_key
from stream.domain.windows import NEVER, format_time
from stream.domain.wording import count
from stream.errors import BrokerError
from stream.kafka.client import end_offsets
from stream.kafka.topics import ClusterReport, inspect_cluster
from stream.sinks import Sink, open_sink

__all__ = ["CheckReport", "plan_lines", "run_check"]


@dataclass
class CheckReport:
    """Labelled lines to show, and the problems found (one line each)."""

    lines: list[tuple[str, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def add(self, label: str, text: str) -> None:
        self.lines.append((label, text))

    def render(self) -> str:
        """The lines, then one per problem, then the verdict."""
        if self.problems:
            verdict = f"{count(len(self.problems), 'problem')}: fix them, then check again"
        else:
            verdict = "everything is reachable"
        problems = [("problem", problem) for problem in self.problems]
        shown = [*self.lines, *problems, ("result", verdict)]
        width = max(len("destination"), *(len(label) for label, _ in shown))
        return "\n".join(f"{label:<{width}}  {text}" for label, text in shown)


def run_check(
    settings: Settings,
    source: str,
    now_ms: int,
    out: TextIO,
    *,
    open_sink: Callable[[Destination], Sink] = open_sink,
) -> int:
    """Check `settings` (read from `source`), print the report on `out`; the exit code."""
    report = CheckReport()
    report.add(
        "config",
        f"{source}: valid ({count(len(settings.destinations), 'destination')}, "
        f"{count(len(settings.syncs), 'sync')})",
    )
    _check_broker(settings, report)
    sinks = {name: open_sink(dest) for name, dest in settings.destinations.items()}
    _check_destinations(settings.destinations, sinks, report)
    for line in plan_lines(settings, sinks, now_ms):
        report.add("plan", line)
    print(report.render(), file=out, flush=True)
    return 1 if report.problems else 0


def _check_broker(settings: Settings, report: CheckReport) -> None:
    kafka = settings.kafka
    if kafka.broker is None:
        report.add("broker", "none configured: the worker starts an embedded one (memory only)")
        return
    try:
        cluster = inspect_cluster(kafka)
    except BrokerError as exc:
        report.problems.append(f"broker: {exc}")
        return
    report.add("broker", f"{kafka.broker}: reachable (cluster {cluster.cluster_id or 'unknown'})")
    security = kafka.security
    plaintext = security.protocol == "PLAINTEXT"
    report.add("login", "none (PLAINTEXT)" if plaintext else f"as {security.identity()}")
    for line in _topic_lines(settings, cluster):
        report.add("topic", line)
    for warning in cluster.warnings:
        report.add("warning", warning)
    report.problems.extend(f"broker: {problem}" for problem in cluster.problems)
    if kafka.topic in cluster.partitions:
        report.add("group", _group_line(settings, cluster))


def _topic_lines(settings: Settings, cluster: ClusterReport) -> list[str]:
    """The input, dead-letter and own topics: partitions, replication, min.insync.replicas."""
    kafka = settings.kafka
    lines = []
    for name in (kafka.topic, kafka.dlq_topic, *kafka.own_topics()):
        topic = cluster.topics.get(name)
        if topic is None:
            lines.append(f"{name}: missing (the worker creates it)")
            continue
        insync = "unknown" if topic.min_insync_replicas is None else topic.min_insync_replicas
        lines.append(
            f"{name}: {count(topic.partitions, 'partition')}, replication factor "
            f"{topic.replication_factor}, min.insync.replicas {insync}"
        )
    return lines


def _group_line(settings: Settings, cluster: ClusterReport) -> str:
    group = settings.kafka.app_id
    try:
        ends = end_offsets(settings.kafka, timeout_s=5.0)
    except BrokerError as exc:
        return f"{group}: end offsets unknown ({exc})"
    committed = {p: c for p, c in cluster.committed.items() if c is not None}
    lag = sum(max(end - committed.get(partition, 0), 0) for partition, end in ends.items())
    partitions, records = count(len(ends), "partition"), count(lag, "record")
    return f"{group}: committed on {len(committed)} of {partitions}, lag {records}"


def _check_destinations(
    destinations: Mapping[str, Destination], sinks: Mapping[str, Sink], report: CheckReport
) -> None:
    for name, destination in destinations.items():
        found = sinks[name].inspect()
        if found.facts:
            report.add("destination", f"{name} ({destination.url}): {'; '.join(found.facts)}")
        report.problems.extend(f"destination {name}: {problem}" for problem in found.problems)


def plan_lines(settings: Settings, sinks: Mapping[str, Sink], now_ms: int) -> list[str]:
    """Per rule: what it covers, where it writes, its next sync time, an example key."""
    return [_plan_line(settings, rule, sinks[rule.destination], now_ms) for rule in settings.syncs]


def _plan_line(settings: Settings, rule: SyncRule, sink: Sink, now_ms: int) -> str:
    destination = settings.destinations[rule.destination]
    cohorts = "every cohort" if rule.cohort == "*" else f"cohort {rule.cohort}"
    schedule = rule.schedule
    upcoming = schedule.next_after(now_ms)
    if upcoming == NEVER:  # a one-time sync whose time has passed
        assert schedule.at_ms is not None
        upcoming = schedule.at_ms
        when = f"once at {format_time(upcoming, 'minutes')} (past: a replay writes it)"
    else:
        when = f"{rule.cadence}, next {format_time(upcoming, 'minutes')}"
    key = object_key(
        path=destination.path if destination.scheme == "s3" else "",
        project_id=settings.project_id,
        cohort_id="{cohort_id}" if rule.cohort == "*" else rule.cohort,
        sync_time=upcoming,
        kind="entering",
        naming=destination.naming,
        routing_key=rule.routing_key,
        file_format=destination.format,
    )
    return (
        f"syncs[{rule.index}]: {cohorts} -> {rule.destination}, {when}: "
        f"for example {sink.location(key)}"
    )
