"""Reading one value of the config: each reader names the key in its error."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from stream.domain.windows import format_duration, parse_duration
from stream.errors import ConfigError, ConfigErrors

__all__ = [
    "Problems",
    "REQUIRED",
    "no_unknown_keys",
    "read_boolean",
    "read_duration",
    "read_duration_text",
    "read_integer",
    "read_name",
    "read_positive_duration",
    "read_string",
    "read_table",
]


def no_unknown_keys(section: Mapping[str, Any], known: set[str], prefix: str) -> None:
    for key in section:
        if key not in known:
            raise ConfigError(f"{prefix}{key}", f"unknown key (known: {', '.join(sorted(known))})")


def read_table(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(key, "must be a table")
    return value


REQUIRED: Any = object()


def read_string(section: Mapping[str, Any], key: str, where: str, default: Any = REQUIRED) -> Any:
    if key not in section:
        if default is REQUIRED:
            raise ConfigError(where, "required key is missing")
        return default
    value = section[key]
    if not isinstance(value, str):
        raise ConfigError(where, f"must be a string, got {type(value).__name__}")
    return value


def read_name(section: Mapping[str, Any], key: str, where: str, default: str) -> str:
    value: str = read_string(section, key, where, default=default)
    if not re.fullmatch(r"[A-Za-z0-9._\-]{1,200}", value):
        raise ConfigError(where, f"{value!r} must use only letters, digits, '.', '_' and '-'")
    return value


def read_integer(
    section: Mapping[str, Any], key: str, where: str, default: int, minimum: int
) -> int:
    value = section.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(where, f"must be an integer, got {type(value).__name__}")
    if value < minimum:
        raise ConfigError(where, f"must be at least {minimum}, got {value}")
    return value


def read_boolean(section: Mapping[str, Any], key: str, where: str, default: bool) -> bool:
    value = section.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(where, f"must be true or false, got {type(value).__name__}")
    return value


def read_positive_duration(
    section: Mapping[str, Any], key: str, default: int | None, *, unlimited: str
) -> int | None:
    """`kafka.<key>`: a positive duration, or the word `unlimited` names (None); `default`
    in milliseconds (None: unlimited)."""
    where = f"kafka.{key}"
    shown = unlimited if default is None else format_duration(default)
    text = read_duration_text(section, key, where, default=shown)
    duration = None if text == unlimited else read_duration(text, where)
    if duration == 0:
        raise ConfigError(where, f'must be positive, or "{unlimited}"')
    return duration


def read_duration_text(section: Mapping[str, Any], key: str, where: str, default: str) -> str:
    """A duration as written: a string like "5m"; a bare number gets that hint."""
    value = section.get(key, default)
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ConfigError(where, f'a duration is a string like "5m" or "90s", got {value!r}')
    text: str = read_string(section, key, where, default=default)
    return text


def read_duration(text: str, where: str) -> int:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise ConfigError(where, str(exc)) from None


T = TypeVar("T")


class Problems:
    """The config errors found so far. Reading goes on past each one (the key's reader
    gives a fallback), so that a file's every problem is reported at once."""

    def __init__(self) -> None:
        self.found: list[ConfigError] = []

    def attempt(self, read: Callable[[], T], fallback: T) -> T:
        """`read()`, or `fallback` with its error kept."""
        try:
            return read()
        except ConfigErrors as errors:
            self.found.extend(errors.errors)
        except ConfigError as error:
            self.found.append(error)
        return fallback

    def raise_found(self) -> None:
        """Raise what was found: one error, or all of them."""
        if len(self.found) == 1:
            raise self.found[0]
        if self.found:
            raise ConfigErrors(self.found)
