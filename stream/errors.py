"""The one exception tree of cohort-sync.

Every error a user can cause (bad config, bad event, unreachable destination) is a
`CohortSyncError`, so the command line can print one line instead of a traceback.
"""

from __future__ import annotations

__all__ = [
    "CohortSyncError",
    "ConfigError",
    "OptionError",
    "InvalidEvent",
    "SinkError",
    "TransientSinkError",
    "PermanentSinkError",
    "BrokerError",
    "WriteAbandoned",
    "WorkerFault",
    "RecordTooLarge",
    "describe",
]


def describe(exc: BaseException) -> str:
    """An exception for a log line or a dead letter's reason: `Type: message`."""
    return f"{type(exc).__name__}: {exc}"


class CohortSyncError(Exception):
    """Base of every error cohort-sync raises on purpose."""


class ConfigError(CohortSyncError):
    """The configuration is invalid; `key` names the offending setting."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"config error: {key}: {problem}")
        self.key = key
        self.problem = problem


class OptionError(CohortSyncError):
    """A command-line option is invalid; `option` names it (`--since`)."""

    def __init__(self, option: str, problem: str) -> None:
        super().__init__(f"{option}: {problem}")
        self.option = option
        self.problem = problem


class InvalidEvent(CohortSyncError):
    """A message cannot be turned into membership events; `reason` goes to the DLQ."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SinkError(CohortSyncError):
    """Writing an object to a destination failed."""


class TransientSinkError(SinkError):
    """A write failed in a way that retrying later may fix (throttling, 5xx, network)."""


class PermanentSinkError(SinkError):
    """A write failed in a way that needs an operator (no bucket, access denied)."""


class BrokerError(CohortSyncError):
    """The Kafka broker could not be started or reached."""


class WriteAbandoned(CohortSyncError):
    """A sync was not written because the worker is stopping; a restart writes it."""


class WorkerFault(CohortSyncError):
    """The worker cannot go on (a bug, a broker that stays unreachable): it stops, and the
    record it was handling is delivered again at the next start."""


class RecordTooLarge(CohortSyncError):
    """A record is larger than the worker may produce (to forward it to its cohort's
    partition): it is dead-lettered instead."""
