"""The policy document: statements per destination, KMS and the role, the principal."""

from __future__ import annotations

import pytest

from stream.config import Settings, settings_from_mapping
from stream.errors import ConfigError, OptionError
from stream.ops.policy import policy_document

ROLE = "arn:aws:iam::123456789012:role/cohort-writer"
KEY = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd"


def settings() -> Settings:
    return settings_from_mapping(
        {
            "destinations": [
                {
                    "name": "lake",
                    "url": "s3://data-lake/cohorts",
                    "sse": "aws:kms",
                    "kms_key_id": KEY,
                    "acl": "bucket-owner-full-control",
                    "role_arn": ROLE,
                },
                {"name": "disk", "url": "file:///tmp/x"},
            ],
        }
    )


def test_the_identity_policy_grants_the_path_the_bucket_the_key_and_the_role() -> None:
    document = policy_document(settings())
    assert document["Statement"] == [
        {
            "Sid": "WriteSyncFiles",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject", "s3:PutObjectAcl"],
            "Resource": "arn:aws:s3:::data-lake/cohorts/*",
        },
        {
            "Sid": "ReachTheBucket",
            "Effect": "Allow",
            "Action": ["s3:ListBucket"],
            "Resource": "arn:aws:s3:::data-lake",
        },
        {
            "Sid": "UseTheKmsKey",
            "Effect": "Allow",
            "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
            "Resource": KEY,
        },
        {
            "Sid": "AssumeTheWriterRole",
            "Effect": "Allow",
            "Action": ["sts:AssumeRole"],
            "Resource": ROLE,
        },
    ]


def test_a_bucket_policy_names_the_principal_and_only_s3() -> None:
    document = policy_document(settings(), principal=ROLE)
    statements = document["Statement"]
    assert isinstance(statements, list) and len(statements) == 2
    assert all(s["Principal"] == {"AWS": ROLE} for s in statements)


def test_a_folder_or_a_bad_principal_is_an_option_error() -> None:
    with pytest.raises(OptionError, match="--destination: 'disk' is not an s3:// destination"):
        policy_document(settings(), destination="disk")
    with pytest.raises(OptionError, match="--principal"):
        policy_document(settings(), principal="bob")


@pytest.mark.parametrize(
    "key", ["alias/mykey", "1234abcd-12ab", f"{KEY[: KEY.index(':key/')]}:alias/k"]
)
def test_a_kms_key_that_is_not_a_key_arn_is_refused_naming_the_key(key: str) -> None:
    lake = {"name": "lake", "url": "s3://data-lake/cohorts", "region": "eu-west-1"}
    config = {"destinations": [{**lake, "sse": "aws:kms", "kms_key_id": key}]}
    with pytest.raises(ConfigError) as refused:
        policy_document(settings_from_mapping(config))
    assert str(refused.value) == (
        f"config error: destinations[0].kms_key_id: {key!r} is not a key ARN; the policy "
        "needs one, like arn:aws:kms:eu-west-1:ACCOUNT:key/KEY-ID "
        f"(`aws kms describe-key --key-id {key}` prints it)"
    )
