"""What the worker learns of its cluster before it starts (`topics.ensure_topics`), in a
module of its own without kafka-python: the worker gets it from the process that checked
the topics (`commands/forked.py`), and unpickling it must not import kafka-python there."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BrokerInfo", "TANSU_CLUSTER_ID"]

#: Tansu's cluster id: it takes replication factor 1 only, and needs Faust settings of its own.
TANSU_CLUSTER_ID = "tansu_cluster"


@dataclass(frozen=True)
class BrokerInfo:
    """What the worker needs to know of the cluster before it starts."""

    partitions: int
    """How many partitions the input topic really has."""
    cluster_id: str | None
    replication_factor: int
    """The replication factor the worker's own topics have (Faust is told it too)."""

    @property
    def is_tansu(self) -> bool:
        return self.cluster_id == TANSU_CLUSTER_ID
