"""In-process counters of what the worker did, for logs, the demo summary and tests."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

__all__ = ["Metrics"]


@dataclass
class Metrics:
    events: int = 0
    dead_letters: int = 0
    late_events: int = 0
    forwarded: int = 0
    files: int = 0
    bytes: int = 0
    upload_retries: int = 0
    syncs: Counter[str] = field(default_factory=Counter)
    """Syncs written, by destination name."""
