"""`cohort-sync produce`: which lines of a JSON-lines file are sent, and what is said of the
others.

A line is sent when it is a JSON object with a `cohort_id` (its record key); the worker
validates the rest and dead-letters what it cannot use. A line that is not JSON, or has no
cohort id, could only be dead-lettered: it is refused here instead, counted by reason with
the first line number, so a user fixes the file rather than reading the dead-letter topic.
A UTF-8 byte-order mark at the start of the file is dropped.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

__all__ = ["LineCheck"]

BOM = b"\xef\xbb\xbf"

NOT_JSON = "not JSON"
NOT_AN_OBJECT = "not a JSON object"
NO_COHORT = "no cohort_id"


@dataclass
class LineCheck:
    """Iterating it yields the lines to send; what it refused is in `refused` after."""

    lines: Iterable[bytes]
    refused: dict[str, list[int]] = field(default_factory=dict)
    """Line numbers (from 1) by reason."""
    first_line: bytes = b""
    """The first non-blank line (an array's `[` tells why everything was refused)."""

    def __iter__(self) -> Iterator[bytes]:
        for number, raw in enumerate(self.lines, start=1):
            line = raw.removeprefix(BOM) if number == 1 else raw
            line = line.strip()
            if not line:
                continue
            if not self.first_line:
                self.first_line = line
            problem = _problem(line)
            if problem is None:
                yield line
            else:
                self.refused.setdefault(problem, []).append(number)

    @property
    def refused_count(self) -> int:
        return sum(len(numbers) for numbers in self.refused.values())

    def summary(self) -> str | None:
        """One line on what was refused and why (None: nothing was)."""
        if not self.refused:
            return None
        reasons = ", ".join(
            f"{len(numbers):,} {reason} (first: line {numbers[0]})"
            for reason, numbers in self.refused.items()
        )
        lines = "line" if self.refused_count == 1 else "lines"
        text = f"refused {self.refused_count:,} {lines}, not sent: {reasons}"
        if self.first_line.startswith(b"["):
            text += "; the file looks like one JSON array: write one object per line (jq -c '.[]')"
        return text


def _problem(line: bytes) -> str | None:
    try:
        document: Any = json.loads(line)
    except ValueError:
        return NOT_JSON
    if not isinstance(document, dict):
        return NOT_AN_OBJECT
    cohort = document.get("cohort_id")
    if isinstance(cohort, int | str) and not isinstance(cohort, bool) and str(cohort):
        return None
    return NO_COHORT
