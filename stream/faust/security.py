"""Faust's side of `KafkaSecurity`: the credentials its aiokafka clients log in with."""

from __future__ import annotations

import faust
from faust.types.auth import CredentialsT

from stream.config.security import PASSWORD_MECHANISMS, KafkaSecurity

__all__ = ["faust_credentials"]


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
    if context is not None:
        return faust.SSLCredentials(context)
    return None
