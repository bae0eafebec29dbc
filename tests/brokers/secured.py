"""A single-node Apache Kafka with secured listeners, for the security tests.

Beside the plaintext listener (the broker's own, and the fixture's readiness probe) it has:
- `SSL`: TLS with client certificates required (mutual TLS, as Aiven and MSK offer);
- `SASL_SSL`: TLS with SASL PLAIN (Confluent Cloud's API keys) and SCRAM-SHA-512 (MSK,
  Redpanda), one user each;
- `OAUTH`: TLS with SASL OAUTHBEARER, whose tokens Kafka's unsecured validator (meant for
  tests) checks: a token endpoint of the test's (`oauth.py`) issues them.
The test makes the CA and the certificates (`tls.py`); SCRAM's user is added when the
storage is formatted, PLAIN's is in the listener's JAAS config.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from .apache import DEFAULT_VERSION, ApacheKafka
from .tls import Certificates, make_certificates

__all__ = ["SecuredKafka", "Login", "PLAIN_LOGIN", "SCRAM_LOGIN"]


@dataclass(frozen=True)
class Login:
    mechanism: str
    username: str
    password: str


PLAIN_LOGIN = Login("PLAIN", "plain-user", "plain-Pa55-7f3a9e61")
SCRAM_LOGIN = Login("SCRAM-SHA-512", "scram-user", "scram-Pa55-c41e2b07")


class SecuredKafka:
    """`with SecuredKafka(folder) as kafka: kafka.bootstrap_of("SASL_SSL")`."""

    def __init__(
        self, folder: Path, *, version: str = DEFAULT_VERSION, authorizer: bool = False
    ) -> None:
        """`authorizer`: Kafka's standard authorizer with `allow.everyone.if.no.acl.found`
        off, so a principal may do only what an ACL allows; the plaintext listener's
        anonymous principal is a super user (the fixture's probe, the test's admin)."""
        self.certificates: Certificates = make_certificates(folder / "certificates")
        stores = {
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(self.certificates.broker),
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(self.certificates.ca),
        }
        config = {
            f"listener.name.{listener}.{key}": value
            for listener in ("ssl", "sasl_ssl", "oauth")
            for key, value in stores.items()
        }
        plain = PLAIN_LOGIN
        config |= {
            "listener.name.ssl.ssl.client.auth": "required",
            "sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-512,OAUTHBEARER",
            "listener.name.sasl_ssl.sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-512",
            "listener.name.sasl_ssl.plain.sasl.jaas.config": (
                "org.apache.kafka.common.security.plain.PlainLoginModule required "
                f'user_{plain.username}="{plain.password}";'
            ),
            "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": (
                "org.apache.kafka.common.security.scram.ScramLoginModule required;"
            ),
            "listener.name.oauth.sasl.enabled.mechanisms": "OAUTHBEARER",
            "listener.name.oauth.oauthbearer.sasl.jaas.config": (
                "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required "
                'unsecuredLoginStringClaim_sub="broker";'
            ),
        }
        if authorizer:
            config |= {
                "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
                "allow.everyone.if.no.acl.found": "false",
                "super.users": "User:ANONYMOUS",
            }
        scram = SCRAM_LOGIN
        self.cluster = ApacheKafka(
            version=version,
            config=config,
            listeners={"SSL": "SSL", "SASL_SSL": "SASL_SSL", "OAUTH": "SASL_SSL"},
            format_args=[
                "--add-scram",
                f"{scram.mechanism}=[name={scram.username},password={scram.password}]",
            ],
        )

    def bootstrap_of(self, listener: str) -> str:
        return self.cluster.bootstrap_of(listener)

    @property
    def description(self) -> str:
        return self.cluster.description + " with SSL and SASL_SSL listeners"

    def __enter__(self) -> SecuredKafka:
        self.cluster.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.cluster.stop()
