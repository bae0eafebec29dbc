"""`cohort-sync policy --kafka`: the least-privilege Kafka ACLs of a config's principal.

Exactly what the worker, `replay`, `lag`, `check` and `dead-letters` do, on exactly their
resources: the input topic, the dead-letter topic, the worker's own topics (a prefixed pattern
on `app_id-`: ticks, repartition, changelog, Faust's leader topic) and the consumer group
(`app_id`). No cluster ACL is needed: topics are created with topic-level Create, and
idempotent writes come with Write (Kafka 2.8 and later). Describe is implied by Read and
Write, so it is never listed. Every binding says which command needs it, so a user who runs
fewer commands can grant less. Pure: it reads the settings.

Output as `kafka-acls.sh` lines (one per resource, with every operation on it) or as JSON
(one entry per resource and operation).
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass

from stream.config import Settings
from stream.errors import OptionError

__all__ = ["Acl", "kafka_acls", "kafka_principal", "render_acl_commands", "render_acls_json"]


@dataclass(frozen=True)
class Acl:
    """Allow `operation` on one resource (`pattern`: "literal" or "prefixed")."""

    resource: str
    """"topic" or "group"."""
    name: str
    pattern: str
    operation: str
    """Kafka's name: Read, Write, Create."""
    needed_by: tuple[str, ...]


#: (operation, the commands that need it), per resource of the config. Describe is never
#: listed: Read and Write imply it, and every resource here has one of them (an ACL that
#: another implies could be removed with nothing failing: the set would not be least).
#: DescribeConfigs is not either: without it `check` shows `min.insync.replicas` as unknown.
_INPUT: list[tuple[str, tuple[str, ...]]] = [
    ("Read", ("worker", "replay", "lag", "check", "dead-letters --requeue")),
    ("Write", ("dead-letters --requeue",)),
    ("Create", ("worker",)),  # the worker creates its input when it is missing
]
#: `check` describes the dead-letter and own topics: the Read or Write below grants it.
_DEAD_LETTERS: list[tuple[str, tuple[str, ...]]] = [
    ("Read", ("dead-letters",)),
    ("Write", ("worker",)),
    ("Create", ("worker",)),
]
_OWN_TOPICS: list[tuple[str, tuple[str, ...]]] = [
    ("Read", ("worker",)),
    ("Write", ("worker",)),
    ("Create", ("worker",)),
]
_GROUP: list[tuple[str, tuple[str, ...]]] = [
    ("Read", ("worker", "lag", "check")),  # lag and check: its Describe (offsets)
]


def kafka_acls(settings: Settings) -> list[Acl]:
    kafka = settings.kafka
    resources = [
        ("topic", kafka.topic, "literal", _INPUT),
        ("topic", kafka.dlq_topic, "literal", _DEAD_LETTERS),
        ("topic", f"{kafka.app_id}-", "prefixed", _OWN_TOPICS),
        ("group", kafka.app_id, "literal", _GROUP),
    ]
    return [
        Acl(resource, name, pattern, operation, needed_by)
        for resource, name, pattern, grants in resources
        for operation, needed_by in grants
    ]


def kafka_principal(settings: Settings, given: str | None) -> str:
    """`--principal`, or the one the config logs in as (a SASL user, an OAuth client)."""
    if given is not None:
        if not re.fullmatch(r"(User|Group):\S.*", given):
            raise OptionError("--principal", f"{given!r} is not a Kafka principal (User:NAME)")
        return given
    security = settings.kafka.security
    if security.sasl_mechanism == "AWS_MSK_IAM":
        raise OptionError(
            "--kafka",
            "MSK IAM is authorized by IAM policies, not Kafka ACLs: grant the role the "
            "kafka-cluster actions of the same names (docs/kafka.md)",
        )
    if security.principal is not None:
        return security.principal
    raise OptionError(
        "--principal",
        "needed: the config logs in without a user name (a client certificate's principal "
        "is its subject, User:CN=...; plaintext is User:ANONYMOUS)",
    )


def render_acl_commands(acls: Sequence[Acl], principal: str, bootstrap: str) -> str:
    """One `kafka-acls.sh --add` line per resource, every operation on it."""
    lines = [
        f"# Kafka ACLs for {principal}: cohort-sync worker, replay, lag, check and dead-letters",
        "# (each operation's commands: cohort-sync policy --kafka --json)",
    ]
    grouped: dict[tuple[str, str, str], list[str]] = {}
    for acl in acls:
        grouped.setdefault((acl.resource, acl.name, acl.pattern), []).append(acl.operation)
    for (resource, name, pattern), operations in grouped.items():
        words = [
            "kafka-acls.sh",
            "--bootstrap-server",
            bootstrap,
            "--add",
            "--allow-principal",
            principal,
            *(word for operation in operations for word in ("--operation", operation)),
            f"--{resource}",
            name,
            "--resource-pattern-type",
            pattern,
        ]
        lines.append(" ".join(shlex.quote(word) for word in words))
    return "\n".join(lines) + "\n"


def render_acls_json(acls: Sequence[Acl], principal: str) -> str:
    document = {
        "principal": principal,
        "acls": [
            {
                "resource_type": acl.resource,
                "resource_name": acl.name,
                "pattern_type": acl.pattern,
                "operation": acl.operation,
                "permission": "allow",
                "host": "*",
                "needed_by": list(acl.needed_by),
            }
            for acl in acls
        ],
    }
    return json.dumps(document, indent=2) + "\n"
