"""The kafka-python helpers' own logic, with a stand-in admin client (no broker)."""

from __future__ import annotations

from typing import Any

import pytest
from kafka import TopicPartition
from kafka.errors import CoordinatorNotAvailableError, GroupAuthorizationFailedError
from kafka.structs import OffsetAndMetadata

from stream.kafka.client import group_offsets


class _Admin:
    """Fails `failures` times with `error`, then answers with committed offsets."""

    def __init__(self, failures: int, error: type[Exception]) -> None:
        self.failures = failures
        self.error = error
        self.calls = 0

    def list_group_offsets(self, group: str) -> dict[str, Any]:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error()
        return {
            group: {
                TopicPartition("in", 0): OffsetAndMetadata(7, "", -1),
                TopicPartition("in", 1): OffsetAndMetadata(-1, "", -1),
                TopicPartition("other", 0): OffsetAndMetadata(3, "", -1),
            }
        }


def test_a_coordinator_not_yet_available_is_asked_again() -> None:
    admin = _Admin(failures=2, error=CoordinatorNotAvailableError)
    assert group_offsets(admin, "g", "in") == {0: 7, 1: None}
    assert admin.calls == 3


def test_a_lasting_retriable_error_is_raised_at_the_deadline() -> None:
    admin = _Admin(failures=10**6, error=CoordinatorNotAvailableError)
    with pytest.raises(CoordinatorNotAvailableError):
        group_offsets(admin, "g", "in", timeout_s=0.3)
    assert admin.calls >= 2


def test_an_error_that_asking_again_cannot_fix_is_raised_at_once() -> None:
    admin = _Admin(failures=1, error=GroupAuthorizationFailedError)
    with pytest.raises(GroupAuthorizationFailedError):
        group_offsets(admin, "g", "in")
    assert admin.calls == 1
