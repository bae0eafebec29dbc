"""cohort-sync's exceptions, in two trees by cause.

Every error a user can cause (bad config, bad event, unreachable destination) is a
`CohortSyncError`, so the command line can print one line instead of a traceback. The
signals the worker's parts send each other (a write abandoned at a stop, a record too large
to forward, a fault that stops the worker) are `InternalSignal`s: never a user's mistake, so
one that leaks is not printed as one.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "CohortSyncError",
    "ConfigError",
    "ConfigErrors",
    "OptionError",
    "InvalidEvent",
    "SinkError",
    "TransientSinkError",
    "PermanentSinkError",
    "BrokerError",
    "InternalSignal",
    "WriteAbandoned",
    "WorkerFault",
    "RecordTooLarge",
    "describe",
]


def describe(exc: BaseException) -> str:
    """An exception for a log line or a dead letter's reason: `Type: message` (once:
    aiokafka's errors already name their type)."""
    name, text = type(exc).__name__, str(exc)
    if text.startswith(f"{name}: ") or f"] {name}: " in text[: len(name) + 16]:
        return text
    return f"{name}: {text}"


class CohortSyncError(Exception):
    """Base of every error cohort-sync raises on purpose."""


class ConfigError(CohortSyncError):
    """The configuration is invalid; `key` names the offending setting."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"config error: {key}: {problem}")
        self.key = key
        self.problem = problem


class ConfigErrors(ConfigError):
    """Several problems of one config, each a `ConfigError`; shown one line each."""

    def __init__(self, errors: Sequence[ConfigError]) -> None:
        super().__init__(errors[0].key, errors[0].problem)
        self.errors = tuple(errors)
        self.args = ("\n".join(str(error) for error in errors),)


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


class InternalSignal(Exception):
    """Base of the signals between the worker's parts; caught where they are expected."""


class WriteAbandoned(InternalSignal):
    """A sync was not written because the worker is stopping; a restart writes it."""


class WorkerFault(InternalSignal):
    """The worker cannot go on (a bug, a broker that stays unreachable): it stops, and the
    record it was handling is delivered again at the next start."""

    @staticmethod
    def line(fault: str) -> str:
        """The one line a user reads last when the worker stopped itself for `fault`."""
        return f"cohort-sync: the worker stopped: {fault}"


class RecordTooLarge(InternalSignal):
    """A record is larger than the worker may produce (to forward it to its cohort's
    partition): it is dead-lettered instead."""
