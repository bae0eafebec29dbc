"""Why a kafka-python client could not reach the cluster, in one line a user can act on.

kafka-python retries a failing bootstrap until its timeout and then says only "Unable to
bootstrap"; the cause (a refused login, a certificate the client does not trust, a TLS
listener spoken to in plaintext) is in the log lines it wrote meanwhile. `explained` keeps
those lines while a client is made, printing none of them, and turns the failure into a
`BrokerError` that names the cause and the config key to fix. No secret is in any line:
kafka-python's messages hold none, and ours name only where a secret comes from.
"""

from __future__ import annotations

import contextlib
import logging
import re
import socket
import ssl
from collections.abc import Iterator, Sequence

from stream.config import KafkaSettings
from stream.errors import BrokerError
from stream.kafka.tokens import token_source

__all__ = ["denied", "explained", "explain", "not_authorized"]


class _Keep(logging.Handler):
    """Keeps the messages of kafka-python's warnings and errors."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):
            self.messages.append(record.getMessage())


@contextlib.contextmanager
def explained(kafka: KafkaSettings, doing: str = "reach") -> Iterator[None]:
    """Make or use a kafka-python client inside: a `KafkaError` leaves as one `BrokerError`
    line saying why (`doing`: what could not be done, "reach" or "describe the topics on")."""
    from kafka.errors import KafkaError  # kafka-python only where it is used (see `denied`)

    logger = logging.getLogger("kafka")
    keep = _Keep()
    quiet = logger.getEffectiveLevel() > logging.WARNING
    level, propagate = logger.level, logger.propagate
    if quiet:  # see the warnings, and let none of them reach the log's handlers
        logger.setLevel(logging.WARNING)
        logger.propagate = False
    logger.addHandler(keep)
    try:
        yield
    except KafkaError as exc:
        raise BrokerError(explain(kafka, str(exc), keep.messages, doing)) from None
    finally:
        logger.removeHandler(keep)
        if quiet:
            logger.setLevel(level)
            logger.propagate = propagate


def explain(kafka: KafkaSettings, error: str, messages: Sequence[str], doing: str = "reach") -> str:
    """The line for a failed client: `error` is its exception, `messages` what kafka-python
    logged meanwhile."""
    security = kafka.security
    where = f"Kafka at {', '.join(kafka.bootstrap_servers())}"
    seen = "\n".join([*messages, error])
    tokens = token_source(security)
    if tokens is not None and tokens.failure:
        return tokens.failure
    if "SaslAuthenticationFailed" in seen or "Authentication failed" in seen:
        return _login_refused(kafka, where)
    mismatch = re.search(
        r"(?:Hostname|IP address) mismatch, certificate is not valid for '([^']+)'", seen
    )
    if mismatch:
        return (
            f"TLS: the certificate of {where} is not valid for the host {mismatch.group(1)!r}: "
            "write a host name the certificate holds in kafka.broker (or set "
            "kafka.ssl_check_hostname = false)"
        )
    unverified = re.search(r"certificate verify failed: ([^(]+)", seen)
    if unverified:
        trusted = (
            f"kafka.ssl_cafile ({security.ssl_cafile})"
            if security.ssl_cafile
            else "this system's CAs (set kafka.ssl_cafile to the cluster's CA)"
        )
        return (
            f"TLS: the certificate of {where} is not signed by a CA in {trusted}: "
            f"{unverified.group(1).strip()}"
        )
    if re.search(r"ALERT_(BAD_CERTIFICATE|CERTIFICATE_REQUIRED)|alert certificate required", seen):
        if security.ssl_certfile is None:
            return (
                f"TLS: {where} asks for a client certificate: set kafka.ssl_certfile and "
                "kafka.ssl_keyfile"
            )
        return f"TLS: {where} refused the client certificate in kafka.ssl_certfile"
    if not security.uses_tls and "socket disconnected" in seen and _speaks_tls(kafka):
        return (
            f"{where} speaks TLS, and this client does not: set kafka.security_protocol = "
            '"SSL" (or "SASL_SSL" with a login)'
        )
    if security.uses_sasl and "socket disconnected" in seen:
        # The broker closes the connection after a refused login; kafka-python sometimes
        # sees only the close, not the answer that said why.
        return _login_refused(kafka, where) + "; the broker closed the connection at login"
    return f"cannot {doing} Kafka at {kafka.broker}: {error}"  # as written, as before


def _login_refused(kafka: KafkaSettings, where: str) -> str:
    security = kafka.security
    source = security.sasl_password.source if security.sasl_password else "the config"
    return (
        f"authentication failed at {where}: {security.sasl_mechanism} login of user "
        f"{security.sasl_username!r} refused (check kafka.sasl_username and the password "
        f"in the {source})"
    )


def _speaks_tls(kafka: KafkaSettings, timeout_s: float = 3.0) -> bool:
    """Whether the first broker completes a TLS handshake (its certificate unchecked)."""
    host, _, port = kafka.bootstrap_servers()[0].rpartition(":")
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    address = host.strip("[]")
    try:
        with (
            socket.create_connection((address, int(port)), timeout=timeout_s) as raw,
            context.wrap_socket(raw, server_hostname=address),
        ):
            return True
    except (OSError, ssl.SSLError):
        return False


def denied(kafka: KafkaSettings, error: BaseException, operation: str, resource: str) -> str | None:
    """The line for a kafka-python authorization error while doing `operation` on
    `resource` (`topic X`, `group G`), naming the missing permission; None for any other
    error."""
    # Imported here: `replay` and the worker read with aiokafka and need only
    # `not_authorized`, without kafka-python's import (0.15 s)
    from kafka.errors import (
        ClusterAuthorizationFailedError,
        GroupAuthorizationFailedError,
        TopicAuthorizationFailedError,
    )

    denials = (
        TopicAuthorizationFailedError,
        GroupAuthorizationFailedError,
        ClusterAuthorizationFailedError,
    )
    if not isinstance(error, denials):
        return None
    return not_authorized(kafka, operation, resource)


def not_authorized(kafka: KafkaSettings, operation: str, resource: str) -> str:
    """The line for a denial, whichever client met it."""
    who = kafka.security.principal or "this client"
    return (
        f"not authorized: {who} may not {operation} {resource} on "
        f"{', '.join(kafka.bootstrap_servers())} (the ACLs it needs: cohort-sync policy --kafka)"
    )
