"""`cohort-sync policy`: the least-privilege IAM policy for a config's S3 destinations.

Without a principal it is an identity policy for the worker's own role; with one, a bucket
policy granting that principal (the seed's "Copy Bucket Policy"). It grants exactly what the
worker, `replay` and `/health` do: PutObject (every file; PutObjectAcl with `acl`), GetObject
(HeadObject and GetObject, to compare a key that exists with a sync's bytes) on the
destination's path, and ListBucket (HeadBucket, the health probe) on its bucket; with
`kms_key_id`, kms:GenerateDataKey and kms:Decrypt on the key, and with `role_arn`,
sts:AssumeRole on the role (both in the identity policy only: a bucket policy cannot grant
them). Pure: it reads the settings.
"""

from __future__ import annotations

import json
import re

from stream.config import Destination, Settings
from stream.errors import ConfigError, OptionError

__all__ = ["policy_document", "render_policy"]


def policy_document(
    settings: Settings, *, destination: str | None = None, principal: str | None = None
) -> dict[str, object]:
    """The policy for `destination` (default: every S3 destination)."""
    if principal is not None and not re.fullmatch(
        r"arn:aws[a-z-]*:iam::\d{12}:\S+|\d{12}", principal
    ):
        raise OptionError("--principal", f"{principal!r} is not an IAM ARN or an account id")
    chosen = _s3_destinations(settings, destination)
    statements: list[dict[str, object]] = []
    for dest in chosen:
        statements.extend(_s3_statements(dest, principal, len(chosen) > 1))
    if principal is None:
        for dest in chosen:
            where = f"destinations[{list(settings.destinations).index(dest.name)}]"
            statements.extend(_identity_statements(dest, len(chosen) > 1, where))
    return {"Version": "2012-10-17", "Statement": statements}


def render_policy(document: dict[str, object]) -> str:
    return json.dumps(document, indent=2) + "\n"


def _s3_destinations(settings: Settings, name: str | None) -> list[Destination]:
    if name is not None:
        if name not in settings.destinations:
            known = ", ".join(sorted(settings.destinations)) or "none defined"
            raise OptionError("--destination", f"unknown destination {name!r} ({known})")
        if settings.destinations[name].scheme != "s3":
            raise OptionError("--destination", f"{name!r} is not an s3:// destination")
        return [settings.destinations[name]]
    chosen = [dest for dest in settings.destinations.values() if dest.scheme == "s3"]
    if not chosen:
        raise OptionError("--config", "no s3:// destination: a folder needs no IAM policy")
    return chosen


def _s3_statements(
    dest: Destination, principal: str | None, named: bool
) -> list[dict[str, object]]:
    suffix = _sid_suffix(dest) if named else ""
    objects = f"arn:aws:s3:::{dest.bucket}/{dest.path + '/' if dest.path else ''}*"
    object_actions = ["s3:GetObject", "s3:PutObject"]
    if dest.placement.acl is not None:
        object_actions.append("s3:PutObjectAcl")
    statements: list[dict[str, object]] = [
        {
            "Sid": f"WriteSyncFiles{suffix}",
            "Effect": "Allow",
            "Action": object_actions,
            "Resource": objects,
        },
        {
            "Sid": f"ReachTheBucket{suffix}",
            "Effect": "Allow",
            "Action": ["s3:ListBucket"],
            "Resource": f"arn:aws:s3:::{dest.bucket}",
        },
    ]
    if principal is not None:
        for statement in statements:
            statement["Principal"] = {"AWS": principal}
    return statements


def _identity_statements(dest: Destination, named: bool, where: str) -> list[dict[str, object]]:
    suffix = _sid_suffix(dest) if named else ""
    statements: list[dict[str, object]] = []
    if dest.placement.kms_key_id is not None:
        statements.append(
            {
                "Sid": f"UseTheKmsKey{suffix}",
                "Effect": "Allow",
                "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
                "Resource": _key_arn(dest, where),
            }
        )
    if dest.role is not None:
        statements.append(
            {
                "Sid": f"AssumeTheWriterRole{suffix}",
                "Effect": "Allow",
                "Action": ["sts:AssumeRole"],
                "Resource": dest.role.arn,
            }
        )
    return statements


def _sid_suffix(dest: Destination) -> str:
    """A statement id may hold only letters and digits."""
    return "".join(
        part.capitalize() for part in "".join(c if c.isalnum() else " " for c in dest.name).split()
    )


_KEY_ARN = re.compile(r"arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/\S+")


def _key_arn(dest: Destination, where: str) -> str:
    """`kms_key_id` as an IAM policy may name it: a key ARN. S3 takes a key id or an alias
    too, but a policy's Resource must be the key's ARN (IAM refuses a bare id, and an alias
    ARN grants nothing on the key), and neither the account nor the key behind an alias can
    be known without calling KMS."""
    key = dest.placement.kms_key_id or ""
    if _KEY_ARN.fullmatch(key):
        return key
    region = dest.region or "REGION"
    raise ConfigError(
        f"{where}.kms_key_id",
        f"{key!r} is not a key ARN; the policy needs one, like "
        f"arn:aws:kms:{region}:ACCOUNT:key/KEY-ID (`aws kms describe-key --key-id {key}` "
        "prints it)",
    )
