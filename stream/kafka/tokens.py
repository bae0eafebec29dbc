"""The tokens of SASL OAUTHBEARER: an OAuth client-credentials grant, or an Amazon MSK IAM
token signed from the AWS credential chain (MSK takes those over OAUTHBEARER too).

`CachedToken` fetches a token once and again only when most of its lifetime has passed, so
every connection of every client gets an unexpired token and a refresh never leaves a gap.
Fetching blocks (HTTP, or AWS's signer): kafka-python calls it from its own threads, the
aiokafka clients (the worker's, the replay's) through an executor (`stream/kafka/security.py`).
Its errors name the endpoint and the key, never the secret.
"""

from __future__ import annotations

import base64
import functools
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable

from stream.config.security import KafkaSecurity
from stream.errors import BrokerError

__all__ = ["CachedToken", "Fetch", "REFRESH_AT", "token_source"]

Fetch = Callable[[], tuple[str, float]]
"""Fetches a token: (the token, seconds it stays valid)."""

#: A token is fetched again once this share of its lifetime has passed.
REFRESH_AT = 0.8
#: OAuth's `expires_in` is optional; without it a token is kept this long.
DEFAULT_LIFETIME_S = 300.0
#: How long a token endpoint may take to answer.
HTTP_TIMEOUT_S = 10.0


class CachedToken:
    """One token shared by every client of the process, fetched again before it expires."""

    def __init__(self, fetch: Fetch, clock: Callable[[], float] = time.monotonic) -> None:
        self._fetch = fetch
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._refresh_after = 0.0
        self.fetches = 0
        self.failure: str | None = None
        """Why the last fetch failed (None: it did not), for the line a user sees."""

    def token(self) -> str:
        with self._lock:
            now = self._clock()
            if self._token is None or now >= self._refresh_after:
                try:
                    token, lifetime_s = self._fetch()
                except BrokerError as exc:
                    self.failure = str(exc)
                    raise
                self.failure = None
                self._token = token
                self._refresh_after = now + max(lifetime_s, 0.0) * REFRESH_AT
                self.fetches += 1
            return self._token


@functools.cache
def token_source(security: KafkaSecurity) -> CachedToken | None:
    """The token source of `security`'s mechanism, one per process for all its clients
    (None: the mechanism logs in without tokens)."""
    if security.sasl_mechanism == "OAUTHBEARER":
        return CachedToken(client_credentials(security))
    if security.sasl_mechanism == "AWS_MSK_IAM":
        return CachedToken(msk_iam(security))
    return None


def client_credentials(security: KafkaSecurity) -> Fetch:
    """OAuth 2.0's client-credentials grant at `oauth_token_url` (RFC 6749, 4.4)."""
    url = security.oauth_token_url
    client_id = security.oauth_client_id
    secret = security.oauth_client_secret
    assert url is not None and client_id is not None and secret is not None  # config load

    def fetch() -> tuple[str, float]:
        form = {"grant_type": "client_credentials"}
        if security.oauth_scope:
            form["scope"] = security.oauth_scope
        login = f"{urllib.parse.quote(client_id)}:{urllib.parse.quote(secret.reveal())}"
        request = urllib.request.Request(
            url,
            data=urllib.parse.urlencode(form).encode(),
            headers={
                "Authorization": "Basic " + base64.b64encode(login.encode()).decode(),
                "Content-Type": "application/x-www-form-urlencoded",
                "Accept": "application/json",
            },
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:
                answer = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise BrokerError(
                f"the OAuth token endpoint {url} refused client {client_id!r}: HTTP {exc.code} "
                f"(check kafka.oauth_client_id and the secret in the {secret.source})"
            ) from None
        except (OSError, ValueError) as exc:
            raise BrokerError(f"the OAuth token endpoint {url} did not answer: {exc}") from None
        token = answer.get("access_token") if isinstance(answer, dict) else None
        if not isinstance(token, str) or not token:
            raise BrokerError(f"the OAuth token endpoint {url} answered without an access_token")
        lifetime = answer.get("expires_in", DEFAULT_LIFETIME_S)
        if not isinstance(lifetime, int | float) or isinstance(lifetime, bool):
            lifetime = DEFAULT_LIFETIME_S
        return token, float(lifetime)

    return fetch


def msk_iam(security: KafkaSecurity, wall_clock: Callable[[], float] = time.time) -> Fetch:
    """An Amazon MSK IAM token from AWS's signer, as the role `aws_role_arn` when given."""

    def fetch() -> tuple[str, float]:
        from aws_msk_iam_sasl_signer import MSKAuthTokenProvider

        region = security.aws_region or _chain_region()
        try:
            if security.aws_role_arn:
                token, expiry_ms = MSKAuthTokenProvider.generate_auth_token_from_role_arn(
                    region, security.aws_role_arn
                )
            else:
                token, expiry_ms = MSKAuthTokenProvider.generate_auth_token(region)
        except Exception as exc:  # botocore's many errors: no credentials, role refused
            raise BrokerError(f"cannot sign an MSK IAM token in {region}: {exc}") from None
        return token, expiry_ms / 1000 - wall_clock()

    return fetch


def _chain_region() -> str:
    from stream.sinks.s3 import chain_region  # the AWS SDK's one home

    region = chain_region()
    if not region:
        raise BrokerError("kafka.aws_region: not set, and the AWS configuration names no region")
    return region
