"""TOML file + environment -> frozen `Settings`. Every error names the key it is about.

`load_settings(path)` reads the file; `settings_from_mapping(data)` validates an already
parsed document (the demo and tests build one in code). `COHORT_SYNC_BROKER` overrides
`[kafka].broker`. `[kafka]` is read in `kafka.py`, `[[destinations]]` in `destinations.py`,
single values with the readers of `values.py`.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

from stream.config.destinations import Destination, parse_destinations
from stream.config.kafka import BROKER_ENV, KafkaSettings, parse_brokers, read_kafka
from stream.config.values import (
    Problems,
    no_unknown_keys,
    read_integer,
    read_string,
    read_table,
)
from stream.domain.events import parse_time
from stream.domain.windows import Schedule, parse_cadence
from stream.errors import ConfigError, InvalidEvent

__all__ = [
    "KafkaSettings",
    "Destination",
    "SyncRule",
    "Settings",
    "load_settings",
    "require_syncs",
    "settings_from_mapping",
    "CONFIG_ENV",
    "BROKER_ENV",
    "parse_brokers",
]

CONFIG_ENV = "COHORT_SYNC_CONFIG"
_SAFE_NAME_PART = re.compile(r"^[^\x00-\x1f\x7f/\\]+$")


@dataclass(frozen=True, kw_only=True)
class SyncRule:
    index: int
    cohort: str
    destination: str
    cadence: str
    schedule: Schedule
    routing_key: str | None = None
    user_properties: tuple[str, ...] = ()

    @property
    def rule_id(self) -> str:
        return f"{self.destination}|{self.routing_key or ''}|{self.cohort}|{self.schedule.key}"

    def covers(self, cohort_id: str) -> bool:
        return self.cohort in ("*", cohort_id)

    def properties(self, destination: Destination) -> tuple[str, ...]:
        """The destination's `user_property`, then the rule's, without duplicates."""
        names = [destination.user_property] if destination.user_property else []
        return tuple(dict.fromkeys([*names, *self.user_properties]))


@dataclass(frozen=True, kw_only=True)
class Settings:
    project_id: int = 0
    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    faust: Mapping[str, Any] = field(default_factory=dict)
    destinations: Mapping[str, Destination] = field(default_factory=dict)
    syncs: tuple[SyncRule, ...] = ()


def load_settings(
    path: str | os.PathLike[str] | None = None,
    *,
    syncs_required: bool = False,
    secrets: bool = True,
) -> Settings:
    """Read the TOML file at `path` (or `$COHORT_SYNC_CONFIG`) and validate it.
    `syncs_required`: refuse a config that would write nothing (the worker, replay, check).
    `secrets=False`: do not read the Kafka secrets (`policy`, which connects to nothing)."""
    path = path or os.environ.get(CONFIG_ENV)
    if not path:
        raise ConfigError("--config", f"no config file given (use --config PATH or ${CONFIG_ENV})")
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError("--config", f"file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError("--config", f"cannot read {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("--config", f"{path} is not valid TOML: {exc}") from None
    settings = settings_from_mapping(data, environ=os.environ, secrets=secrets)
    if syncs_required:
        require_syncs(settings)
    return settings


def require_syncs(settings: Settings) -> None:
    """A config without destinations or syncs would run and write nothing: refuse it."""
    if not settings.destinations:
        raise ConfigError("destinations", "none defined: add a [[destinations]] table")
    if not settings.syncs:
        raise ConfigError("syncs", "none defined: add a [[syncs]] table naming a destination")


def settings_from_mapping(
    data: Mapping[str, Any], environ: Mapping[str, str] | None = None, *, secrets: bool = True
) -> Settings:
    """Every problem of the config is found before one is raised (`ConfigErrors` for more
    than one): a problem in a destination or sync stops reading that entry, not the file."""
    problems = Problems()
    top = {"project_id", "kafka", "faust", "destinations", "syncs"}
    problems.attempt(lambda: no_unknown_keys(data, top, ""), None)
    project_id = problems.attempt(
        lambda: read_integer(data, "project_id", "project_id", default=0, minimum=0), 0
    )
    kafka = problems.attempt(
        lambda: read_kafka(read_table(data, "kafka"), environ or {}, secrets=secrets),
        KafkaSettings(),
    )
    faust_settings: dict[str, Any] = problems.attempt(lambda: _faust(read_table(data, "faust")), {})
    raw_destinations = data.get("destinations", [])
    destinations: dict[str, Destination] = problems.attempt(
        lambda: parse_destinations(raw_destinations, problems), {}
    )
    syncs: tuple[SyncRule, ...] = problems.attempt(
        lambda: _syncs(data.get("syncs", []), destinations, _named(raw_destinations)), ()
    )
    problems.raise_found()
    return Settings(
        project_id=project_id,
        kafka=kafka,
        faust=faust_settings,
        destinations=destinations,
        syncs=syncs,
    )


#: `[faust]` settings that would defeat a guarantee of the worker, with what to do instead.
REFUSED_FAUST: dict[str, tuple[Callable[[Any], bool], str]] = {
    "producer_threaded": (
        bool,
        "must stay false: a threaded producer sends changelog records past the buffer that "
        "commits wait on, so every commit would wait for ever",
    ),
    "processing_guarantee": (
        lambda value: value != "at_least_once",
        'must stay "at_least_once": files are exactly-once through idempotent writes, and '
        "Faust's transactions neither cover S3 nor work on every broker",
    ),
    "producer_acks": (
        lambda value: value not in (-1, "all"),
        "must stay -1 (all in-sync replicas): a commit must never pass a changelog record "
        "the broker could still lose",
    ),
    "stream_publish_on_commit": (
        bool,
        "must stay false: dead letters must be sent, and confirmed, before their record is "
        "acknowledged",
    ),
    "stream_wait_empty": (
        lambda value: value is not True,
        "must stay true: a rebalance must wait for the record in hand, or it would be "
        "acknowledged after its partition moved to another worker",
    ),
    "broker": (lambda value: True, "set kafka.broker instead"),
    "topic_partitions": (lambda value: True, "set kafka.partitions instead"),
}


def _faust(section: Mapping[str, Any]) -> dict[str, Any]:
    problems = Problems()
    for key, value in section.items():
        refused = REFUSED_FAUST.get(key)
        if refused is not None and refused[0](value):
            problems.found.append(ConfigError(f"faust.{key}", refused[1]))
    problems.raise_found()
    return dict(section)


def _named(raw_destinations: Any) -> set[str]:
    """The names the config's destination tables give, read or not."""
    if not isinstance(raw_destinations, list):
        return set()
    return {
        entry["name"]
        for entry in raw_destinations
        if isinstance(entry, dict) and isinstance(entry.get("name"), str)
    }


def _syncs(
    raw: Any, destinations: Mapping[str, Destination], named: set[str]
) -> tuple[SyncRule, ...]:
    """The sync rules; a rule of a destination that has a problem of its own is left out
    (that problem is reported, not an unknown destination besides)."""
    if not isinstance(raw, list):
        raise ConfigError("syncs", "must be an array of tables ([[syncs]])")
    problems = Problems()
    rules: list[SyncRule] = []
    for index, entry in enumerate(raw):
        if isinstance(entry, dict) and entry.get("destination") in named - destinations.keys():
            continue
        rule = problems.attempt(partial(_sync, index, entry, destinations, rules), None)
        if rule is not None:
            rules.append(rule)
    problems.raise_found()
    return tuple(rules)


def _sync(
    index: int, entry: Any, destinations: Mapping[str, Destination], rules: list[SyncRule]
) -> SyncRule:
    where = f"syncs[{index}]"
    if not isinstance(entry, dict):
        raise ConfigError(where, "must be a table")
    keys = {"cohort", "destination", "cadence", "at", "routing_key", "user_properties"}
    no_unknown_keys(entry, keys, f"{where}.")
    cohort = entry.get("cohort")
    if isinstance(cohort, int) and not isinstance(cohort, bool):
        cohort = str(cohort)
    if not isinstance(cohort, str) or not _SAFE_NAME_PART.match(cohort):
        raise ConfigError(f"{where}.cohort", 'must be a cohort id or "*"')
    destination = read_string(entry, "destination", f"{where}.destination")
    if destination not in destinations:
        known = ", ".join(sorted(destinations)) or "none defined"
        raise ConfigError(f"{where}.destination", f"unknown destination {destination!r} ({known})")
    cadence = read_string(entry, "cadence", f"{where}.cadence")
    schedule = _schedule(cadence, entry.get("at"), where)
    routing_key = read_string(entry, "routing_key", f"{where}.routing_key", default=None)
    if routing_key is not None and not _SAFE_NAME_PART.match(routing_key):
        raise ConfigError(
            f"{where}.routing_key", "must be non-empty, without '/' or control characters"
        )
    if routing_key is None and destinations[destination].require_suffix:
        raise ConfigError(
            f"{where}.routing_key",
            f"required: destination {destination!r} has require_suffix = true",
        )
    properties = entry.get("user_properties", [])
    if not isinstance(properties, list) or not all(isinstance(p, str) and p for p in properties):
        raise ConfigError(f"{where}.user_properties", "must be a list of property names")
    rule = SyncRule(
        index=index,
        cohort=cohort,
        destination=destination,
        cadence=cadence,
        schedule=schedule,
        routing_key=routing_key,
        user_properties=tuple(properties),
    )
    _no_clash(rule, rules, where)
    return rule


def _schedule(cadence: str, at: Any, where: str) -> Schedule:
    """`cadence` (and `at`, for `cadence = "once"`) -> the rule's sync times."""
    if cadence != "once":
        if at is not None:
            raise ConfigError(f"{where}.at", 'only for cadence = "once"')
        try:
            return Schedule.every(parse_cadence(cadence))
        except ValueError as exc:
            raise ConfigError(f"{where}.cadence", str(exc)) from None
    if at is None:
        raise ConfigError(
            f"{where}.at", 'required with cadence = "once" (for example "2026-01-05T12:00Z")'
        )
    if isinstance(at, datetime):  # TOML's own offset date-time, written without quotes
        at = at.isoformat()
    try:
        at_ms = parse_time(at, f"{where}.at")
    except InvalidEvent as exc:
        raise ConfigError(f"{where}.at", exc.reason.removeprefix(f"{where}.at: ")) from None
    if at_ms % 60_000:
        raise ConfigError(f"{where}.at", f"{at!r} must be a whole minute (file names show minutes)")
    return Schedule.once(at_ms)


def _no_clash(rule: SyncRule, earlier: list[SyncRule], where: str) -> None:
    """Two rules that could write the same file name would overwrite each other."""
    for other in earlier:
        same_target = (other.destination, other.routing_key) == (rule.destination, rule.routing_key)
        overlapping = "*" in (other.cohort, rule.cohort) or other.cohort == rule.cohort
        if same_target and overlapping:
            raise ConfigError(
                where,
                f"writes the same file names as syncs[{other.index}] (same destination, "
                "routing_key and cohort): give one of them another routing_key",
            )
