"""A dead letter carries the reason and the source, and always fits the size limit: a record
too large is cut to a prefix, with the original's size and SHA-256 beside it."""

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from stream.domain.deadletter import (
    ORIGINAL_SHA256_HEADER,
    ORIGINAL_SIZE_HEADER,
    REASON_HEADER,
    RECORD_OVERHEAD,
    SOURCE_HEADER,
    DeadLetter,
    dead_letter_record,
)


def size_of(record: DeadLetter) -> int:
    headers = sum(len(name) + len(data) for name, data in record.headers)
    size = RECORD_OVERHEAD + len(record.key or b"") + len(record.value) + headers
    assert record.size == size
    return size


def test_a_record_that_fits_is_sent_whole_with_reason_and_source() -> None:
    record = dead_letter_record(
        key=b"c1", value=b"not json", reason="not valid JSON", source="t/0/5", limit=10_000
    )
    assert record == DeadLetter(
        b"c1",
        b"not json",
        ((REASON_HEADER, b"not valid JSON"), (SOURCE_HEADER, b"t/0/5")),
        truncated=False,
    )


def test_a_record_too_large_is_sent_as_a_prefix_with_its_size_and_hash() -> None:
    value = bytes(range(256)) * 8192  # 2 MiB
    record = dead_letter_record(key=b"c1", value=value, reason="r", source="t/1/2", limit=1_000_000)
    headers = dict(record.headers)
    assert record.truncated
    assert value.startswith(record.value) and len(record.value) > 900_000
    assert headers[ORIGINAL_SIZE_HEADER] == str(len(value)).encode()
    assert headers[ORIGINAL_SHA256_HEADER] == hashlib.sha256(value).hexdigest().encode()
    assert size_of(record) == 1_000_000


def test_a_long_reason_and_a_long_key_are_cut() -> None:
    record = dead_letter_record(
        key=b"k" * 10_000, value=b"v" * 10_000, reason="x" * 5000, source="t/0/0", limit=5000
    )
    assert len(dict(record.headers)[REASON_HEADER]) == 1000
    assert record.key == b"k" * 1024
    assert size_of(record) <= 5000


@settings(max_examples=200)
@given(
    key=st.one_of(st.none(), st.binary(max_size=3000)),
    value=st.one_of(st.none(), st.binary(max_size=20_000)),
    reason=st.text(max_size=2000),
    limit=st.integers(4096, 30_000),
)
def test_every_dead_letter_fits_and_keeps_a_prefix_of_the_value(
    key: bytes | None, value: bytes | None, reason: str, limit: int
) -> None:
    record = dead_letter_record(key=key, value=value, reason=reason, source="t/0/1", limit=limit)
    body = value or b""
    assert size_of(record) <= limit
    assert body.startswith(record.value)
    assert record.truncated == (record.value != body or record.key != key)
    headers = dict(record.headers)
    if record.truncated:
        assert headers[ORIGINAL_SHA256_HEADER] == hashlib.sha256(body).hexdigest().encode()
    else:
        assert ORIGINAL_SIZE_HEADER not in headers
