"""The client side of `KafkaSecurity`: the options that make a kafka-python or an aiokafka
client use TLS and SASL. Both take the same option names; only their token providers differ
(kafka-python asks for a token in its own thread, aiokafka on its event loop)."""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from aiokafka.abc import AbstractTokenProvider as AsyncTokenProvider

from stream.config.security import PASSWORD_MECHANISMS, KafkaSecurity
from stream.kafka.tokens import CachedToken, token_source

__all__ = ["AsyncTokens", "aiokafka_options", "security_options"]


def security_options(security: KafkaSecurity) -> dict[str, Any]:
    """kafka-python client options for `security` (none for a plaintext cluster)."""
    return _options(security, _token_provider())


def aiokafka_options(security: KafkaSecurity) -> dict[str, Any]:
    """aiokafka client options for `security` (none for a plaintext cluster)."""
    return _options(security, AsyncTokens)


def _options(security: KafkaSecurity, provider: type[Any]) -> dict[str, Any]:
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
        options.update(sasl_mechanism="OAUTHBEARER", sasl_oauth_token_provider=provider(source))
    return options


@functools.cache
def _token_provider() -> type[Any]:
    """kafka-python's token provider over the process's `CachedToken`. Made at first use:
    `replay` and the worker connect with aiokafka alone, without kafka-python's import."""
    from kafka.net.sasl.oauth import AbstractTokenProvider

    class TokenProvider(AbstractTokenProvider):
        def __init__(self, source: CachedToken) -> None:
            super().__init__()
            self.source = source

        def token(self) -> str:
            return self.source.token()

    return TokenProvider


class AsyncTokens(AsyncTokenProvider):
    """aiokafka's token provider over the process's `CachedToken`: a fetch blocks, so it
    runs in a thread, never on the event loop."""

    def __init__(self, source: CachedToken) -> None:
        self.source = source

    async def token(self) -> str:
        return await asyncio.get_running_loop().run_in_executor(None, self.source.token)
