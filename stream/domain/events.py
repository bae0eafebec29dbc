"""Parse and validate one Kafka message into membership events.

A message is either one event (`{"cohort_id", "amplitude_id", "action", "time", ...}`) or
Amplitude's batch form (`{"cohort_id", "in_cohort", "computed_time", "users": [...]}`), which
expands to one event per user. Anything else raises `InvalidEvent` with a reason that the
worker puts on the dead-letter topic.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple, overload

import orjson

from stream.errors import InvalidEvent

__all__ = [
    "MembershipEvent",
    "BatchEvents",
    "parse_message",
    "parse_time",
    "time_span",
    "MIN_TIME_MS",
    "MAX_TIME_MS",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: Event times outside [2000-01-01, 2100-01-01) are rejected: a typo'd year would otherwise
#: push a partition's watermark decades ahead and emit every sync time in between.
MIN_TIME_MS = 946_684_800_000
MAX_TIME_MS = 4_102_444_800_000
MAX_COHORT_ID_LENGTH = 200
_INT64_MAX = 2**63 - 1
_DICT, _INT = {dict}, {int}
_TEXT_OR_NONE, _DICT_OR_NONE = {str, type(None)}, {dict, type(None)}
_APP_ID = itertools.repeat("app_id")


class MembershipEvent(NamedTuple):
    """User `amplitude_id` entered (`enter=True`) or exited cohort `cohort_id` at `time_ms`.
    A named tuple, not a frozen dataclass: a batch message builds a thousand of them."""

    cohort_id: str
    amplitude_id: int
    user_id: str | None
    enter: bool
    time_ms: int
    user_properties: dict[str, Any] | None = None
    app_id: int | None = None


@dataclass(frozen=True, slots=True, eq=False)
class BatchEvents(Sequence[MembershipEvent]):
    """A batch message's events as columns: one cohort, presence and time for all of
    them; each user's amplitude id, user id, properties and app id. An event is made only
    when one is read (`[index]`): most are packed straight from the columns. Tell one
    from a single event's list by `type(x) is BatchEvents`: `isinstance` against an ABC
    costs 0.2 us, a measurable part of a record's time on replay's path."""

    cohort_id: str
    enter: bool
    time_ms: int
    amplitude_ids: list[int]
    user_ids: list[str | None]
    user_properties: list[dict[str, Any] | None]
    app_ids: list[int | None]

    def __len__(self) -> int:
        return len(self.amplitude_ids)

    @overload
    def __getitem__(self, index: int) -> MembershipEvent: ...

    @overload
    def __getitem__(self, index: slice) -> list[MembershipEvent]: ...

    def __getitem__(self, index: int | slice) -> MembershipEvent | list[MembershipEvent]:
        if isinstance(index, slice):
            return [self[at] for at in range(*index.indices(len(self)))]
        return MembershipEvent(
            self.cohort_id,
            self.amplitude_ids[index],
            self.user_ids[index],
            self.enter,
            self.time_ms,
            self.user_properties[index],
            self.app_ids[index],
        )

    def __eq__(self, other: object) -> bool:
        """Equal to any sequence of the same events (a list of them, say)."""
        if not isinstance(other, Sequence):
            return NotImplemented
        return list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"BatchEvents({list(self)!r})"


def time_span(events: Sequence[MembershipEvent]) -> tuple[int, int]:
    """The oldest and the newest event time of one message's events (at least one)."""
    if type(events) is BatchEvents:
        return events.time_ms, events.time_ms
    if len(events) == 1:
        return events[0].time_ms, events[0].time_ms
    times = [event.time_ms for event in events]
    return min(times), max(times)


def parse_message(value: bytes | None) -> Sequence[MembershipEvent]:
    """Decode one message value into its events; raise `InvalidEvent` with the reason. A
    batch message's are `BatchEvents`."""
    quick = _parse_quick(value)
    return _parse_exact(value) if quick is None else quick


def _parse_exact(value: bytes | None) -> Sequence[MembershipEvent]:
    """`parse_message` with json, which keeps every integer exact and words each error."""
    document = _decode_json(value)
    if not isinstance(document, dict):
        raise InvalidEvent(f"message must be a JSON object, got {_type_name(document)}")
    if "users" in document or "in_cohort" in document:
        events: Sequence[MembershipEvent] = _parse_batch(document)
    else:
        events = [_parse_single(document)]
    assert value is not None  # `_decode_json` took it
    if _SURROGATE_ESCAPE.search(value):  # else no text can hold a lone surrogate
        _check_unicode(events)
    return events


def _parse_quick(value: bytes | None) -> Sequence[MembershipEvent] | None:
    """The message's events as `parse_message` gives them, decoded by orjson (twice as
    fast as json); None when it cannot say, and the message is parsed again the exact way.

    orjson reads an integer beyond 64 bits as a float where json keeps it exact, and its
    errors are worded otherwise; it refuses a lone surrogate, which json reads (and which
    is then dead-lettered by name). So it decides only messages that parse and whose
    properties are flat and hold no float of 2**63 or more: every field the events keep is
    then a string, an exact integer, a bool, null or a float that was written as one, which
    both read the same (both round a float's digits to the same double; orjson reads an
    integer as an int up to 64 bits, so a float below 2**63 never was an integer).
    `computed_time` may be a float, as a property may."""
    if value is None:
        return None
    try:
        document = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    if type(document) is not dict:
        return None
    try:
        if "users" in document or "in_cohort" in document:
            batch = _parse_batch(document)
            values = list(
                itertools.chain.from_iterable(map(dict.values, filter(None, batch.user_properties)))
            )
            return batch if _read_alike(values) else None
        event = _parse_single(document)
    except InvalidEvent:
        return None
    properties = event.user_properties
    if properties is None or _read_alike(list(properties.values())):
        return [event]
    return None


def _read_alike(values: list[Any]) -> bool:
    """Whether json would have read these property values as orjson did."""
    kinds = set(map(type, values))
    if kinds <= _FLAT:
        return True
    return kinds <= _FLAT_OR_FLOAT and all(
        -_INT_AS_FLOAT < value < _INT_AS_FLOAT for value in values if type(value) is float
    )


_FLAT = {str, int, bool, type(None)}
"""The property values orjson and json always read alike."""
_FLAT_OR_FLOAT = _FLAT | {float}
_INT_AS_FLOAT = float(2**63)
"""orjson reads an integer past 64 bits as a float: such a float is at least this big."""


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
"""A JSON escape of half a surrogate pair: the only way a lone one gets into the text (the
bytes are decoded as strict UTF-8, which has none)."""


def _check_unicode(events: Sequence[MembershipEvent]) -> None:
    """Raise when a user id or a property holds a lone surrogate (an escape like
    `\\ud800` without its pair): no UTF-8 file can hold it, so no sync could be written."""
    batch = type(events) is BatchEvents
    for index, event in enumerate(events):
        where = f"users[{index}]" if batch else ""
        for field, text in (
            ("user_id", event.user_id),
            ("user_properties", json.dumps(event.user_properties, ensure_ascii=False)),
        ):
            if text is None:
                continue
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise InvalidEvent(
                    f"{_at(where, field)}: holds a lone surrogate ({exc.object[exc.start]!r}), "
                    "which no UTF-8 file can hold"
                ) from None


def parse_time(value: Any, field: str = "time") -> int:
    """An ISO-8601 time with an offset (or `Z`), or integer epoch milliseconds -> epoch ms."""
    if isinstance(value, bool):
        raise InvalidEvent(f"{field}: must be ISO-8601 or integer epoch milliseconds, got bool")
    if isinstance(value, int):
        return _checked_time(value, field, value)
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise InvalidEvent(f"{field}: not an ISO-8601 time: {value[:64]!r}") from None
        if moment.tzinfo is None:
            raise InvalidEvent(f"{field}: ISO-8601 time needs an offset or Z: {value[:64]!r}")
        return _checked_time((moment - _EPOCH) // timedelta(milliseconds=1), field, value)
    raise InvalidEvent(
        f"{field}: must be ISO-8601 or integer epoch milliseconds, got {_type_name(value)}"
    )


def _decode_json(value: bytes | None) -> Any:
    if value is None:
        raise InvalidEvent("empty message (null value)")
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidEvent(f"not UTF-8: {exc.reason} at byte {exc.start}") from None
    try:
        return _DECODER.decode(text)
    except RecursionError:
        raise InvalidEvent("JSON nested too deeply") from None
    except ValueError as exc:
        raise InvalidEvent(f"not valid JSON: {exc}") from None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)  # one, not one per message


def _parse_single(doc: dict[str, Any]) -> MembershipEvent:
    action = doc.get("action")
    if action not in ("enter", "exit"):
        raise InvalidEvent(f"action: must be 'enter' or 'exit', got {_short(action)}")
    if "time" not in doc:
        raise InvalidEvent("time: required field is missing")
    cohort_id = _cohort_id(doc)
    amplitude_id, time_ms = doc.get("amplitude_id"), doc["time"]
    user_id, properties = doc.get("user_id"), doc.get("user_properties")
    app_id = doc.get("app_id")
    if (  # the common case, checked inline; otherwise field by field, for the exact error
        type(amplitude_id) is int
        and 0 <= amplitude_id <= _INT64_MAX
        and (user_id is None or type(user_id) is str)
        and type(time_ms) is int
        and MIN_TIME_MS <= time_ms < MAX_TIME_MS
        and (properties is None or type(properties) is dict)
        and (app_id is None or type(app_id) is int)
    ):
        enter = action == "enter"
        return MembershipEvent(
            cohort_id, amplitude_id, user_id, enter, time_ms, properties or None, app_id
        )
    return _single_checked(doc, cohort_id, action == "enter")


def _single_checked(doc: dict[str, Any], cohort_id: str, enter: bool) -> MembershipEvent:
    """An event the inline check did not take: field by field, so that an error names the
    field."""
    return MembershipEvent(
        cohort_id=cohort_id,
        amplitude_id=_amplitude_id(doc, "amplitude_id"),
        user_id=_user_id(doc, "user_id"),
        enter=enter,
        time_ms=parse_time(doc["time"]),
        user_properties=_properties(doc, "user_properties"),
        app_id=_app_id(doc, "app_id"),
    )


def _parse_batch(doc: dict[str, Any]) -> BatchEvents:
    cohort_id = _cohort_id(doc)
    in_cohort = doc.get("in_cohort")
    if not isinstance(in_cohort, bool):
        raise InvalidEvent(f"in_cohort: must be true or false, got {_short(in_cohort)}")
    time_ms = _computed_time(doc.get("computed_time"))
    users = doc.get("users")
    if not isinstance(users, list):
        raise InvalidEvent(f"users: must be a list, got {_type_name(users)}")
    batch_app_id = _app_id(doc, "app_id")
    # The common case, checked a column at a time with C loops: a thousand users a message
    if set(map(type, users)) <= _DICT and not any(map(dict.__contains__, users, _APP_ID)):
        amplitude_ids = [user.get("amplitude_id") for user in users]
        user_ids = [user.get("user_id") for user in users]
        properties = [user.get("user_properties") for user in users]
        if (
            set(map(type, amplitude_ids)) <= _INT  # not bool, whose type is its own
            and (
                not amplitude_ids or (min(amplitude_ids) >= 0 and max(amplitude_ids) <= _INT64_MAX)
            )
            and set(map(type, user_ids)) <= _TEXT_OR_NONE
            and set(map(type, properties)) <= _DICT_OR_NONE
        ):
            return BatchEvents(
                cohort_id,
                in_cohort,
                time_ms,
                amplitude_ids,
                user_ids,
                [value or None for value in properties],
                [batch_app_id] * len(users),
            )
    # otherwise user by user: an error names the user and the field
    events = [
        _batch_user(user, index, cohort_id, in_cohort, time_ms, batch_app_id)
        for index, user in enumerate(users)
    ]
    return BatchEvents(
        cohort_id,
        in_cohort,
        time_ms,
        [event.amplitude_id for event in events],
        [event.user_id for event in events],
        [event.user_properties for event in events],
        [event.app_id for event in events],
    )


def _batch_user(
    user: Any, index: int, cohort_id: str, in_cohort: bool, time_ms: int, batch_app_id: int | None
) -> MembershipEvent:
    """A user the inline check did not take (its own app id, or a bad field): field by
    field, so that an error names the field."""
    where = f"users[{index}]"
    if not isinstance(user, dict):
        raise InvalidEvent(f"{where}: must be an object, got {_type_name(user)}")
    app_id = _app_id(user, "app_id", where)
    return MembershipEvent(
        cohort_id=cohort_id,
        amplitude_id=_amplitude_id(user, "amplitude_id", where),
        user_id=_user_id(user, "user_id", where),
        enter=in_cohort,
        time_ms=time_ms,
        user_properties=_properties(user, "user_properties", where),
        app_id=batch_app_id if app_id is None else app_id,
    )


def _cohort_id(doc: dict[str, Any]) -> str:
    raw = doc.get("cohort_id")
    if isinstance(raw, int) and not isinstance(raw, bool):
        return str(raw)
    if not isinstance(raw, str):
        raise InvalidEvent(f"cohort_id: must be a string or an integer, got {_type_name(raw)}")
    if not raw or len(raw) > MAX_COHORT_ID_LENGTH:
        raise InvalidEvent(f"cohort_id: must have 1 to {MAX_COHORT_ID_LENGTH} characters")
    if raw in (".", "..") or "/" in raw or "\\" in raw or not raw.isprintable():
        raise InvalidEvent(
            f"cohort_id: {raw[:64]!r} contains '/', '\\' or an unprintable character, "
            "or is a dot path"
        )
    return raw


def _amplitude_id(doc: dict[str, Any], field: str, where: str = "") -> int:
    value = doc.get(field)
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidEvent(f"{_at(where, field)}: must be an integer, got {_type_name(value)}")
    if not 0 <= value <= _INT64_MAX:
        raise InvalidEvent(f"{_at(where, field)}: out of range: {value}")
    return value


def _user_id(doc: dict[str, Any], field: str, where: str = "") -> str | None:
    value = doc.get(field)
    if value is not None and not isinstance(value, str):
        raise InvalidEvent(
            f"{_at(where, field)}: must be a string or null, got {_type_name(value)}"
        )
    return value


def _properties(doc: dict[str, Any], field: str, where: str = "") -> dict[str, Any] | None:
    value = doc.get(field)
    if value is not None and not isinstance(value, dict):
        raise InvalidEvent(f"{_at(where, field)}: must be an object, got {_type_name(value)}")
    return value or None


def _app_id(doc: dict[str, Any], field: str, where: str = "") -> int | None:
    value = doc.get(field)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidEvent(f"{_at(where, field)}: must be an integer, got {_type_name(value)}")
    return value


def _computed_time(value: Any) -> int:
    seconds: float
    if isinstance(value, str):
        try:
            seconds = float(value)
        except ValueError:
            raise InvalidEvent(f"computed_time: not a number of seconds: {value[:64]!r}") from None
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = value
    else:
        raise InvalidEvent(f"computed_time: must be epoch seconds, got {_type_name(value)}")
    if not math.isfinite(seconds):
        raise InvalidEvent("computed_time: must be a finite number")
    return _checked_time(round(seconds * 1000), "computed_time", value)


def _checked_time(time_ms: int, field: str, sent: object) -> int:
    """`time_ms` if it is in range; the error quotes the value as it was sent."""
    if not MIN_TIME_MS <= time_ms < MAX_TIME_MS:
        shown = repr(sent[:64]) if isinstance(sent, str) else sent
        hint = ""
        if isinstance(sent, int) and MIN_TIME_MS <= sent * 1000 < MAX_TIME_MS:
            hint = f" (epoch times are in milliseconds; {sent} seconds is {sent * 1000})"
        raise InvalidEvent(f"{field}: {shown} is outside the years 2000 to 2099{hint}")
    return time_ms


def _at(where: str, field: str) -> str:
    return f"{where}.{field}" if where else field


def _short(value: Any) -> str:
    return repr(value)[:64]


def _type_name(value: Any) -> str:
    return {dict: "object", list: "list", str: "string", bool: "bool", type(None): "null"}.get(
        type(value), "number"
    )
