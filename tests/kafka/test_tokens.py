"""OAUTHBEARER's tokens: fetched once, again before they expire; the client-credentials grant
against a token endpoint of the test's; Amazon MSK IAM tokens signed by AWS's signer and
handed to both clients. No broker: the listeners' tests are tests/integration/test_secured.py."""

from __future__ import annotations

import asyncio
import base64
import urllib.parse
from collections.abc import Iterator

import pytest

from stream.config import settings_from_mapping
from stream.config.security import KafkaSecurity
from stream.errors import BrokerError
from stream.faust.security import faust_credentials
from stream.kafka.security import security_options
from stream.kafka.tokens import CachedToken, client_credentials, msk_iam
from tests.brokers.oauth import TokenEndpoint


def test_a_token_is_fetched_once_and_again_before_it_expires() -> None:
    now = [0.0]
    fetched: list[float] = []

    def fetch() -> tuple[str, float]:
        fetched.append(now[0])
        return f"token-{len(fetched)}", 100.0

    cached = CachedToken(fetch, clock=lambda: now[0])
    assert [cached.token(), cached.token()] == ["token-1", "token-1"]
    now[0] = 79.9
    assert cached.token() == "token-1"
    now[0] = 80.0  # four fifths of its lifetime: fetched again, while it is still valid
    assert cached.token() == "token-2"
    assert fetched == [0.0, 80.0]


def test_a_failed_fetch_is_kept_for_the_users_line_until_one_succeeds() -> None:
    answers: list[BaseException | tuple[str, float]] = [
        BrokerError("endpoint said no"),
        ("t", 60.0),
    ]

    def fetch() -> tuple[str, float]:
        answer = answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    cached = CachedToken(fetch)
    with pytest.raises(BrokerError):
        cached.token()
    assert cached.failure == "endpoint said no"
    assert cached.token() == "t" and cached.failure is None


@pytest.fixture
def endpoint() -> Iterator[TokenEndpoint]:
    with TokenEndpoint("client-a", "s3cret-of-a", lifetime_s=600) as served:
        yield served


def oauth(endpoint: TokenEndpoint, secret: str) -> KafkaSecurity:
    section = {
        "broker": "b:9093",
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "OAUTHBEARER",
        "oauth_token_url": endpoint.url,
        "oauth_client_id": "client-a",
        "oauth_scope": "kafka",
    }
    return settings_from_mapping(
        {"kafka": section}, {"COHORT_SYNC_OAUTH_SECRET": secret}
    ).kafka.security


def test_the_client_credentials_grant_gets_a_token_and_its_lifetime(
    endpoint: TokenEndpoint,
) -> None:
    token, lifetime = client_credentials(oauth(endpoint, "s3cret-of-a"))()
    assert token.count(".") == 2 and lifetime == 600.0
    assert endpoint.issued == 1


def test_a_refused_client_is_one_line_naming_the_endpoint_and_not_the_secret(
    endpoint: TokenEndpoint,
) -> None:
    with pytest.raises(BrokerError) as refused:
        client_credentials(oauth(endpoint, "not-the-secret"))()
    assert str(refused.value) == (
        f"the OAuth token endpoint {endpoint.url} refused client 'client-a': HTTP 401 "
        "(check kafka.oauth_client_id and the secret in the environment variable "
        "COHORT_SYNC_OAUTH_SECRET)"
    )


def msk(region: str = "eu-west-1") -> KafkaSecurity:
    section = {
        "broker": "b-1.msk.example:9098",
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "AWS_MSK_IAM",
        "aws_region": region,
    }
    return settings_from_mapping({"kafka": section}, {}).kafka.security


def test_an_msk_iam_token_is_signed_from_the_credential_chain_and_handed_to_both_clients(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    security = msk()
    token, lifetime = msk_iam(security, wall_clock=lambda: 0.0)()
    url = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    assert url.startswith("https://kafka.eu-west-1.amazonaws.com/")
    assert query["Action"] == ["kafka-cluster:Connect"]
    assert query["X-Amz-Credential"][0].startswith("AKIDEXAMPLE/")
    assert "X-Amz-Signature" in query
    assert lifetime > 0  # the signer's expiry, seen from an epoch clock at 0

    options = security_options(security)
    assert options["sasl_mechanism"] == "OAUTHBEARER"  # MSK takes IAM tokens over it
    handed = options["sasl_oauth_token_provider"].token()
    assert "X-Amz-Signature" in base64.urlsafe_b64decode(handed + "==").decode()
    credentials = faust_credentials(security)
    assert credentials is not None
    from_faust = asyncio.run(credentials.oauth_cb.token())  # type: ignore[attr-defined]
    assert from_faust == handed  # one token per process, shared by both clients


def test_an_msk_iam_token_is_signed_again_before_it_expires(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    now = [0.0]
    signed = msk_iam(msk("us-east-2"), wall_clock=lambda: 0.0)
    calls: list[tuple[str, float]] = []

    def fetch() -> tuple[str, float]:
        calls.append(signed())
        return calls[-1]

    cached = CachedToken(fetch, clock=lambda: now[0])
    first = cached.token()
    lifetime = calls[0][1]
    now[0] = lifetime * 0.79
    assert cached.token() == first and len(calls) == 1
    now[0] = lifetime * 0.81
    cached.token()
    assert len(calls) == 2


def test_msk_iam_without_a_region_anywhere_says_which_key_to_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    section = {
        "broker": "b:9098",
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "AWS_MSK_IAM",
    }
    security = settings_from_mapping({"kafka": section}, {}).kafka.security
    with pytest.raises(BrokerError, match="kafka.aws_region: not set"):
        msk_iam(security)()
