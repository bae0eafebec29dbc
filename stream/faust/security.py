"""Faust's side of `KafkaSecurity`: the credentials its aiokafka clients log in with."""

from __future__ import annotations

import faust
from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    GroupAuthorizationFailedError,
    TopicAuthorizationFailedError,
)
from faust.types.auth import CredentialsT

from stream.config.security import PASSWORD_MECHANISMS, KafkaSecurity
from stream.kafka.security import AsyncTokens
from stream.kafka.tokens import token_source

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
        return faust.OAuthCredentials(oauth_cb=AsyncTokens(source), ssl_context=context)
    if context is not None:
        return faust.SSLCredentials(context)
    return None


def is_denial(error: BaseException) -> bool:
    """Whether aiokafka's `error` says the principal is not authorized."""
    return isinstance(
        error,
        TopicAuthorizationFailedError
        | GroupAuthorizationFailedError
        | ClusterAuthorizationFailedError,
    )
