"""Faust's side of `KafkaSecurity`: the credentials its aiokafka clients log in with."""

from __future__ import annotations

import asyncio

import faust
from aiokafka.abc import AbstractTokenProvider
from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    GroupAuthorizationFailedError,
    TopicAuthorizationFailedError,
)
from faust.types.auth import CredentialsT

from stream.config.security import PASSWORD_MECHANISMS, KafkaSecurity
from stream.kafka.tokens import CachedToken, token_source

__all__ = ["faust_credentials", "is_denial"]


def faust_credentials(security: KafkaSecurity) -> CredentialsT | None:
    """Faust's `broker_credentials` for `security` (None: a plaintext cluster)."""
    context = security.ssl_context()
    mechanism = security.sasl_mechanism
    if mechanism in PASSWORD_MECHANISMS:
        assert security.sasl_password is not None  # read at config load
        return faust.SASLCredentials(
            username=security.sasl_username,
            password=security.sasl_password.reveal(),
            mechanism=mechanism,
            ssl_context=context,
        )
    source = token_source(security)
    if source is not None:  # OAUTHBEARER, and MSK IAM's tokens over it
        return faust.OAuthCredentials(oauth_cb=_TokenProvider(source), ssl_context=context)
    if context is not None:
        return faust.SSLCredentials(context)
    return None


class _TokenProvider(AbstractTokenProvider):
    """aiokafka's token provider over the process's `CachedToken`: a fetch blocks, so it
    runs in a thread, never on the event loop."""

    def __init__(self, source: CachedToken) -> None:
        self.source = source

    async def token(self) -> str:
        return await asyncio.get_running_loop().run_in_executor(None, self.source.token)


def is_denial(error: BaseException) -> bool:
    """Whether aiokafka's `error` says the principal is not authorized."""
    return isinstance(
        error,
        TopicAuthorizationFailedError
        | GroupAuthorizationFailedError
        | ClusterAuthorizationFailedError,
    )
