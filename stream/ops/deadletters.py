"""`cohort-sync dead-letters`: read the dead-letter topic, and send records back.

Selecting, deciding what a requeue sends and formatting are pure (`select`,
`plan_requeue`, `render_*`); `run_dead_letters` does the reading and sending.

A requeued record goes to the input topic with the same key and value and a header
`cohort-sync-requeued-from` naming its dead letter. That header is how a later `--requeue`
knows what was sent already, with no state of its own: it reads the input topic from an
hour before the oldest selected dead letter (requeued copies are written after their dead
letter; the hour allows for clocks that differ between machines) and skips
- a dead letter some input record names as its origin (requeued before), and
- the dead letter of a requeued copy (requeued once, failed again: sending it again would
  loop).
A copy that the input topic's retention has deleted no longer counts.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TextIO

from stream.config import KafkaSettings
from stream.domain.deadletter import (
    ORIGINAL_SIZE_HEADER,
    REASON_HEADER,
    REQUEUED_FROM_HEADER,
    SOURCE_HEADER,
)
from stream.domain.wording import count
from stream.kafka.scan import LoggedRecord, scan_topic, send_records

__all__ = [
    "Selection",
    "RequeuePlan",
    "select",
    "plan_requeue",
    "render_text",
    "render_json",
    "run_dead_letters",
]

#: How far before the oldest selected dead letter the input topic is searched for copies.
CLOCK_SKEW_MS = 3_600_000

#: Characters of a value shown: enough to recognise an event.
VALUE_START = 80


@dataclass(frozen=True, slots=True, kw_only=True)
class Selection:
    since_ms: int | None = None
    until_ms: int | None = None
    reason: str | None = None
    """A piece of the reason, matched without regard to case."""
    limit: int | None = None
    """The oldest this many of the records that match."""


@dataclass(slots=True)
class RequeuePlan:
    send: list[LoggedRecord] = field(default_factory=list)
    already: list[LoggedRecord] = field(default_factory=list)
    """Requeued before, or the dead letter of a requeued copy."""
    truncated: list[LoggedRecord] = field(default_factory=list)
    """Dead-lettered as a prefix of a record too large to send whole: not the record."""


def select(records: Iterable[LoggedRecord], selection: Selection) -> list[LoggedRecord]:
    """The dead letters that match, oldest first (by time, then partition and offset)."""
    wanted = (selection.reason or "").casefold()
    chosen = [
        record
        for record in records
        if (selection.since_ms is None or record.timestamp_ms >= selection.since_ms)
        and (selection.until_ms is None or record.timestamp_ms < selection.until_ms)
        and wanted in _text(record.header(REASON_HEADER)).casefold()
    ]
    chosen.sort(key=lambda r: (r.timestamp_ms, r.partition, r.offset))
    return chosen if selection.limit is None else chosen[: selection.limit]


def plan_requeue(
    selected: Sequence[LoggedRecord], input_records: Iterable[LoggedRecord]
) -> RequeuePlan:
    """Which of `selected` to send back, given the input topic's records since they were
    dead-lettered."""
    origins: set[str] = set()
    copies: set[str] = set()
    first_copy_ms: dict[tuple[bytes | None, bytes | None], int] = {}
    for record in input_records:
        origin = record.header(REQUEUED_FROM_HEADER)
        if origin is not None:
            origins.add(_text(origin))
            copies.add(record.position)
            content = (record.key, record.value)
            first_copy_ms[content] = min(
                first_copy_ms.get(content, record.timestamp_ms), record.timestamp_ms
            )
    plan = RequeuePlan()
    for dead in selected:
        requeued = dead.position in origins or _text(dead.header(SOURCE_HEADER)) in copies
        if requeued or _forwarded_copy(dead, first_copy_ms):
            plan.already.append(dead)
        elif dead.header(ORIGINAL_SIZE_HEADER) is not None:
            plan.truncated.append(dead)
        else:
            plan.send.append(dead)
    return plan


def _forwarded_copy(
    dead: LoggedRecord, first_copy_ms: dict[tuple[bytes | None, bytes | None], int]
) -> bool:
    """Whether `dead` is the dead letter of a requeued copy that failed after the worker
    forwarded it to its cohort's partition (its source then names the repartition topic):
    the same key and value, dead-lettered after the copy was sent."""
    copied_ms = first_copy_ms.get((dead.key, dead.value))
    return copied_ms is not None and dead.timestamp_ms >= copied_ms


def render_text(records: Sequence[LoggedRecord]) -> str:
    """One line a record: time, source record, reason, and the start of the value."""
    lines = [
        f"{_iso(r.timestamp_ms)}  {_text(r.header(SOURCE_HEADER)) or '-'}  "
        f"{_text(r.header(REASON_HEADER)) or '-'}  | {_start(r.value)}"
        for r in records
    ]
    return "\n".join(lines)


def render_json(records: Sequence[LoggedRecord]) -> str:
    return json.dumps(
        [
            {
                "time": _iso(r.timestamp_ms),
                "timestamp_ms": r.timestamp_ms,
                "dead_letter": r.position,
                "source": _text(r.header(SOURCE_HEADER)) or None,
                "reason": _text(r.header(REASON_HEADER)) or None,
                "key": None if r.key is None else r.key.decode("utf-8", "replace"),
                "value": _start(r.value),
                "value_bytes": len(r.value or b""),
                "truncated": r.header(ORIGINAL_SIZE_HEADER) is not None,
            }
            for r in records
        ],
        ensure_ascii=False,
    )


def run_dead_letters(
    kafka: KafkaSettings,
    selection: Selection,
    *,
    as_json: bool = False,
    requeue: bool = False,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    """List the selected dead letters (and requeue them); 0 unless the topic is unreadable."""
    records = list(scan_topic(kafka, kafka.dlq_topic))
    selected = select(records, selection)
    if as_json:
        print(render_json(selected), file=out)
    elif selected:
        print(render_text(selected), file=out)
    note = err if as_json else out
    print(_count_line(kafka.dlq_topic, len(records), len(selected), selection), file=note)
    if requeue and selected:
        print(_requeue(kafka, selected), file=note)
    return 0


def _requeue(kafka: KafkaSettings, selected: Sequence[LoggedRecord]) -> str:
    since = min(r.timestamp_ms for r in selected) - CLOCK_SKEW_MS
    plan = plan_requeue(selected, scan_topic(kafka, kafka.topic, since_ms=since))
    sent = send_records(
        kafka,
        kafka.topic,
        ((r.key, r.value or b"", [(REQUEUED_FROM_HEADER, r.position.encode())]) for r in plan.send),
    )
    parts = [f"requeued {count(sent, 'record')} to {kafka.topic}"]
    if plan.already:
        parts.append(f"{count(len(plan.already), 'record')} requeued before: not sent again")
    if plan.truncated:
        parts.append(
            f"{count(len(plan.truncated), 'record')} dead-lettered as a prefix of a larger "
            "record: not sent (the whole record is only in the source)"
        )
    return "; ".join(parts)


def _count_line(topic: str, total: int, shown: int, selection: Selection) -> str:
    if total == 0:
        return f"no dead letters in {topic}"
    filtered = selection != Selection()
    if not filtered:
        return f"{count(total, 'dead letter')} in {topic}"
    return f"{shown:,} of {count(total, 'dead letter')} in {topic} selected"


def _iso(timestamp_ms: int) -> str:
    if timestamp_ms < 0:
        return "-"
    moment = datetime.fromtimestamp(timestamp_ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{timestamp_ms % 1000:03d}Z"


def _text(data: bytes | None) -> str:
    return "" if data is None else data.decode("utf-8", "replace")


def _start(value: bytes | None) -> str:
    """The first characters of a value, control characters escaped, `...` when cut."""
    text = _text(value)
    cut = text[:VALUE_START]
    shown = "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in cut)
    return shown + ("..." if len(text) > VALUE_START else "")
