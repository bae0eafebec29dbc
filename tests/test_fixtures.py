"""The test fixtures' own logic that a rare draw would otherwise break."""

from __future__ import annotations

from tests.brokers.apache import _cluster_id


def test_a_test_clusters_id_never_starts_with_a_dash() -> None:
    """`kafka-storage format -t -T6S...` reads such an id as an option: the three-node
    cluster failed to start one time in 64 (a whole CI run lost to it)."""
    assert not any(_cluster_id().startswith("-") for _ in range(2000))
