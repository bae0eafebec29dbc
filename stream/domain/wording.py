"""How a count is written in a message: `1 record`, `2 records`, `12,000 records`."""

from __future__ import annotations

__all__ = ["count"]


def count(number: int, noun: str) -> str:
    """`number` and `noun`, plural unless it is one (the noun's plural takes an `s`)."""
    return f"{number:,} {noun}{'' if number == 1 else 's'}"
