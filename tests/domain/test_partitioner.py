"""The pure partitioner places keys where Kafka's default partitioner does."""

from hypothesis import given, settings
from hypothesis import strategies as st

from stream.domain.partitioner import cohort_key_of, murmur2, partition_for

#: murmur2 of each key as kafka-python's `kafka.partitioner.default.murmur2` gives it (the
#: Java client's `Utils.murmur2`, unsigned): every tail length, and a non-ASCII key.
KNOWN = {
    b"": 275646681,
    b"a": 2731586172,
    b"ab": 316155434,
    b"abc": 479470107,
    b"abcd": 2971317748,
    b"c1": 2069367011,
    b"cohort-42": 3170047136,
    "ünï".encode(): 3724512787,
}


def test_murmur2_matches_the_java_client_on_known_keys() -> None:
    assert {key: murmur2(key) for key in KNOWN} == KNOWN


@settings(max_examples=300)
@given(st.binary(max_size=64), st.integers(1, 64))
def test_murmur2_and_the_partition_match_kafka_python(key: bytes, partitions: int) -> None:
    from kafka.partitioner.default import murmur2 as kafka_murmur2  # the reference

    assert murmur2(key) == kafka_murmur2(key) & 0xFFFFFFFF
    assert partition_for(key, partitions) == (kafka_murmur2(key) & 0x7FFFFFFF) % partitions


def test_a_line_is_keyed_by_its_cohort_id_or_not_at_all() -> None:
    assert cohort_key_of(b'{"cohort_id": "c1"}') == b"c1"
    assert cohort_key_of(b'{"cohort_id": 42}') == b"42"
    assert cohort_key_of(b'{"cohort_id": true}') is None
    assert cohort_key_of(b"not json") is None
    assert cohort_key_of(b"[1]") is None
