"""Amazon MSK IAM as an assumed role: the signer assumes `aws_role_arn` through STS (moto's
server here) and signs the token with the role's temporary credentials, not the caller's."""

from __future__ import annotations

import base64
import urllib.parse

import pytest

from stream.config import settings_from_mapping
from stream.kafka.security import security_options


def test_an_msk_iam_token_is_signed_as_the_assumed_role(
    s3_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", s3_endpoint)  # moto's server answers STS too
    section = {
        "broker": "b-1.msk.example:9098",
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "AWS_MSK_IAM",
        "aws_region": "us-east-1",
        "aws_role_arn": "arn:aws:iam::123456789012:role/cohort-sync-kafka",
    }
    security = settings_from_mapping({"kafka": section}, {}).kafka.security
    token = security_options(security)["sasl_oauth_token_provider"].token()
    url = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    credential = query["X-Amz-Credential"][0]
    assert not credential.startswith("testing/")  # the caller's own key is not used
    assert "X-Amz-Security-Token" in query  # a role's temporary credentials carry one
    assert query["Action"] == ["kafka-cluster:Connect"]
