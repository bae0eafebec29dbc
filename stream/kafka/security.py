"""kafka-python's side of `KafkaSecurity`: the options that make a client use TLS and SASL."""

from __future__ import annotations

from typing import Any

from kafka.net.sasl.oauth import AbstractTokenProvider

from stream.config.security import PASSWORD_MECHANISMS, KafkaSecurity
from stream.kafka.tokens import CachedToken, token_source

__all__ = ["security_options"]


def security_options(security: KafkaSecurity) -> dict[str, Any]:
    """kafka-python client options for `security` (none for a plaintext cluster)."""
    if security.protocol == "PLAINTEXT":
        return {}
    options: dict[str, Any] = {"security_protocol": security.protocol}
    context = security.ssl_context()
    if context is not None:
        options["ssl_context"] = context
    mechanism = security.sasl_mechanism
    if mechanism in PASSWORD_MECHANISMS:
        assert security.sasl_password is not None  # read at config load
        options.update(
            sasl_mechanism=mechanism,
            sasl_plain_username=security.sasl_username,
            sasl_plain_password=security.sasl_password.reveal(),
        )
    source = token_source(security)
    if source is not None:  # OAUTHBEARER, and MSK IAM's tokens over it
        options.update(
            sasl_mechanism="OAUTHBEARER", sasl_oauth_token_provider=_TokenProvider(source)
        )
    return options


class _TokenProvider(AbstractTokenProvider):
    """kafka-python's token provider over the process's `CachedToken`."""

    def __init__(self, source: CachedToken) -> None:
        super().__init__()
        self.source = source

    def token(self) -> str:
        return self.source.token()
