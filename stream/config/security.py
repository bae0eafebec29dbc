"""`[kafka]`'s security keys, read into `KafkaSecurity`: how every client authenticates.

Secrets (a SASL password, an OAuth client secret, a key's password) are never written in
the config file: each is read at load from the environment variable, or the file, that the
config names, and kept in a `Secret`, whose `repr` and `str` never show it. A variable that
is not set, or a file that cannot be read, is a config error naming the key, like any other.
The TLS context (`ssl_context`) is made here once, for kafka-python and Faust alike.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from stream.config.values import Problems, read_boolean, read_string
from stream.errors import ConfigError

__all__ = [
    "KafkaSecurity",
    "PASSWORD_MECHANISMS",
    "PROTOCOLS",
    "MECHANISMS",
    "SECRET_KEYS",
    "SECURITY_KEYS",
    "Secret",
    "read_security",
]

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER", "AWS_MSK_IAM")
#: The mechanisms that log in with `sasl_username` and a password.
PASSWORD_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
PASSWORD_ENV_DEFAULT = "COHORT_SYNC_KAFKA_PASSWORD"
OAUTH_SECRET_ENV_DEFAULT = "COHORT_SYNC_OAUTH_SECRET"

SECURITY_KEYS = {
    "security_protocol",
    "ssl_cafile",
    "ssl_certfile",
    "ssl_keyfile",
    "ssl_key_password_env",
    "ssl_check_hostname",
    "sasl_mechanism",
    "sasl_username",
    "sasl_password_env",
    "sasl_password_file",
    "oauth_token_url",
    "oauth_client_id",
    "oauth_client_secret_env",
    "oauth_scope",
    "aws_region",
    "aws_role_arn",
}
#: Keys a user might write a secret under: refused without echoing the value.
SECRET_KEYS = {
    "sasl_password": "sasl_password_env (default COHORT_SYNC_KAFKA_PASSWORD) or sasl_password_file",
    "password": "sasl_password_env (default COHORT_SYNC_KAFKA_PASSWORD) or sasl_password_file",
    "ssl_key_password": "ssl_key_password_env",
    "ssl_password": "ssl_key_password_env",
    "oauth_client_secret": "oauth_client_secret_env (default COHORT_SYNC_OAUTH_SECRET)",
}


@dataclass(frozen=True)
class Secret:
    """A password or client secret: shown nowhere (`repr`, `str`), read with `reveal`."""

    _value: str = field(repr=False)
    source: str
    """Where it came from, safe to show: `environment variable X` or `file F`."""

    def reveal(self) -> str:
        return self._value

    def __str__(self) -> str:
        return "***"

    def __repr__(self) -> str:
        return f"Secret(from {self.source})"


@dataclass(frozen=True, kw_only=True)
class KafkaSecurity:
    """How the clients reach a secured cluster (the defaults: plaintext, no login)."""

    protocol: str = "PLAINTEXT"
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_key_password: Secret | None = None
    ssl_check_hostname: bool = True
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: Secret | None = None
    oauth_token_url: str | None = None
    oauth_client_id: str | None = None
    oauth_client_secret: Secret | None = None
    oauth_scope: str | None = None
    aws_region: str | None = None
    aws_role_arn: str | None = None

    @property
    def uses_tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    @property
    def uses_sasl(self) -> bool:
        return self.protocol in ("SASL_PLAINTEXT", "SASL_SSL")

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context every client uses (None: no TLS). The CA file replaces the
        system's CAs; without it the system's are trusted (managed clusters' public CAs)."""
        if not self.uses_tls:
            return None
        context = ssl.create_default_context(cafile=self.ssl_cafile)
        context.check_hostname = self.ssl_check_hostname
        if not self.ssl_check_hostname:
            context.verify_mode = ssl.CERT_REQUIRED  # the chain is still checked
        if self.ssl_certfile is not None:
            # "" rather than None: OpenSSL would ask for an encrypted key's password on the tty
            password = self.ssl_key_password.reveal() if self.ssl_key_password else ""
            context.load_cert_chain(self.ssl_certfile, self.ssl_keyfile, password)
        return context

    @property
    def principal(self) -> str | None:
        """The Kafka principal the clients log in as, when the config names it: its SASL
        user or OAuth client (None: a certificate's subject, anonymous, or MSK IAM)."""
        if self.sasl_mechanism in PASSWORD_MECHANISMS and self.sasl_username:
            return f"User:{self.sasl_username}"
        if self.sasl_mechanism == "OAUTHBEARER" and self.oauth_client_id:
            return f"User:{self.oauth_client_id}"
        return None

    def identity(self) -> str:
        """Who the clients log in as, safe to show (`check` prints it)."""
        if self.sasl_mechanism in PASSWORD_MECHANISMS:
            return f"user {self.sasl_username!r} ({self.sasl_mechanism} over {self.protocol})"
        if self.sasl_mechanism == "OAUTHBEARER":
            return f"OAuth client {self.oauth_client_id!r} (OAUTHBEARER over {self.protocol})"
        if self.sasl_mechanism == "AWS_MSK_IAM":
            who = self.aws_role_arn or "the AWS credential chain's identity"
            return f"{who} (AWS_MSK_IAM over {self.protocol})"
        if self.ssl_certfile is not None:
            return f"the client certificate in {self.ssl_certfile} ({self.protocol})"
        return f"anonymous ({self.protocol})"


def read_security(
    section: Mapping[str, Any],
    environ: Mapping[str, str],
    problems: Problems,
    *,
    secrets: bool = True,
) -> KafkaSecurity:
    """The security keys of `[kafka]`; each problem is added to `problems`. `secrets=False`:
    the secrets are not read (nor the TLS files opened with them): no client is made."""
    if not secrets:
        environ = _NOT_READ
    for key, instead in SECRET_KEYS.items():
        if key in section:  # the value is not shown: it is a secret
            problems.found.append(
                ConfigError(
                    f"kafka.{key}",
                    f"secrets are never written in the config file: name them with {instead}",
                )
            )
    protocol = problems.attempt(lambda: _choice(section, "security_protocol", PROTOCOLS), None)
    mechanism = problems.attempt(lambda: _choice(section, "sasl_mechanism", MECHANISMS), None)
    if protocol is None and "security_protocol" in section:
        return KafkaSecurity()  # what the other keys mean depends on it: its line is enough
    protocol = protocol or "PLAINTEXT"

    def text(key: str) -> str | None:
        return problems.attempt(lambda: read_string(section, key, f"kafka.{key}", None), None)

    def path(key: str) -> str | None:
        return problems.attempt(lambda: _readable_file(section, key), None)

    tls_keys = ["ssl_cafile", "ssl_certfile", "ssl_keyfile", "ssl_key_password_env"]
    if protocol not in ("SSL", "SASL_SSL"):
        for key in [*tls_keys, "ssl_check_hostname"]:
            if key in section:
                problems.found.append(
                    ConfigError(
                        f"kafka.{key}",
                        f'is used only with security_protocol "SSL" or "SASL_SSL" '
                        f'(it is "{protocol}")',
                    )
                )
        files: dict[str, str | None] = dict.fromkeys(("ssl_cafile", "ssl_certfile", "ssl_keyfile"))
    else:
        files = {key: path(key) for key in ("ssl_cafile", "ssl_certfile", "ssl_keyfile")}
    if files["ssl_keyfile"] and not files["ssl_certfile"]:
        problems.found.append(
            ConfigError("kafka.ssl_keyfile", "needs ssl_certfile: the certificate of this key")
        )
    key_password = None
    if "ssl_key_password_env" in section and protocol in ("SSL", "SASL_SSL"):
        key_password = problems.attempt(
            lambda: _from_env(section, "ssl_key_password_env", None, environ), None
        )
    check_hostname = problems.attempt(
        lambda: read_boolean(section, "ssl_check_hostname", "kafka.ssl_check_hostname", True), True
    )
    security = KafkaSecurity(
        protocol=protocol,
        ssl_cafile=files["ssl_cafile"],
        ssl_certfile=files["ssl_certfile"],
        ssl_keyfile=files["ssl_keyfile"],
        ssl_key_password=key_password,
        ssl_check_hostname=check_hostname,
        sasl_mechanism=mechanism,
        sasl_username=text("sasl_username"),
        oauth_token_url=text("oauth_token_url"),
        oauth_client_id=text("oauth_client_id"),
        oauth_scope=text("oauth_scope"),
        aws_region=text("aws_region"),
        aws_role_arn=text("aws_role_arn"),
    )
    if security.uses_tls and secrets and not problems.found:
        problems.attempt(lambda: _opens(security), None)
    return _with_login(security, section, environ, problems)


class _NotRead(dict[str, str]):
    """An environment in which every variable holds a placeholder, for reading a config
    without its secrets (`read_security(secrets=False)`)."""

    def get(self, key: str, default: Any = None) -> str:
        return "(not read)"


_NOT_READ = _NotRead()


def _opens(security: KafkaSecurity) -> None:
    """The TLS files make a context: a bad CA file, certificate, key or key password is a
    config error at start, not a traceback at the first connection."""
    try:
        ssl.create_default_context(cafile=security.ssl_cafile)
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError("kafka.ssl_cafile", f"holds no CA certificate: {exc}") from None
    if security.ssl_certfile is None:
        return
    try:
        security.ssl_context()
    except (ssl.SSLError, OSError) as exc:
        if security.ssl_key_password is not None:
            raise ConfigError(
                "kafka.ssl_key_password_env",
                f"the key and certificate do not open with the password in the "
                f"{security.ssl_key_password.source}: {exc}",
            ) from None
        raise ConfigError(
            "kafka.ssl_certfile",
            f"the certificate and key do not load (an encrypted key needs "
            f"ssl_key_password_env): {exc}",
        ) from None


def _with_login(
    security: KafkaSecurity,
    section: Mapping[str, Any],
    environ: Mapping[str, str],
    problems: Problems,
) -> KafkaSecurity:
    """Check the SASL keys against the protocol and mechanism, and read the secret."""
    mechanism = security.sasl_mechanism
    if not security.uses_sasl:
        if mechanism is not None:
            problems.found.append(
                ConfigError(
                    "kafka.sasl_mechanism",
                    f'needs security_protocol "SASL_SSL" (or "SASL_PLAINTEXT"), '
                    f'not "{security.protocol}"',
                )
            )
        return security
    if mechanism is None:
        if "sasl_mechanism" not in section:
            problems.found.append(
                ConfigError(
                    "kafka.sasl_mechanism",
                    f"is required with security_protocol {security.protocol!r}: "
                    f"one of {', '.join(MECHANISMS)}",
                )
            )
        return security
    if mechanism in PASSWORD_MECHANISMS:
        if security.sasl_username is None and "sasl_username" not in section:
            problems.found.append(
                ConfigError("kafka.sasl_username", f"is required with sasl_mechanism {mechanism}")
            )
        password = problems.attempt(lambda: _password(section, environ), None)
        return replace(security, sasl_password=password)
    if mechanism == "OAUTHBEARER":
        for key in ("oauth_token_url", "oauth_client_id"):
            if key not in section:
                problems.found.append(
                    ConfigError(f"kafka.{key}", "is required with sasl_mechanism OAUTHBEARER")
                )
        secret = problems.attempt(
            lambda: _from_env(
                section, "oauth_client_secret_env", OAUTH_SECRET_ENV_DEFAULT, environ
            ),
            None,
        )
        return replace(security, oauth_client_secret=secret)
    if security.protocol != "SASL_SSL":  # AWS_MSK_IAM
        problems.found.append(
            ConfigError("kafka.security_protocol", 'must be "SASL_SSL" with AWS_MSK_IAM')
        )
    return security


def _choice(section: Mapping[str, Any], key: str, choices: tuple[str, ...]) -> str | None:
    value = read_string(section, key, f"kafka.{key}", None)
    if value is None:
        return None
    if value.upper() not in choices:
        raise ConfigError(
            f"kafka.{key}", f"{value!r} is not one of {', '.join(repr(c) for c in choices)}"
        )
    return value.upper()


def _readable_file(section: Mapping[str, Any], key: str) -> str | None:
    value = read_string(section, key, f"kafka.{key}", None)
    if value is None:
        return None
    path = os.path.expanduser(value)
    if not os.path.isfile(path):
        raise ConfigError(f"kafka.{key}", f"no such file: {value}")
    if not os.access(path, os.R_OK):
        raise ConfigError(f"kafka.{key}", f"{value} cannot be read by this user")
    return path


def _password(section: Mapping[str, Any], environ: Mapping[str, str]) -> Secret:
    """The SASL password: from `sasl_password_file` when given, else the variable."""
    file = read_string(section, "sasl_password_file", "kafka.sasl_password_file", None)
    if file is not None and environ is _NOT_READ:
        return Secret("(not read)", f"file {file}")
    if file is None:
        return _from_env(section, "sasl_password_env", PASSWORD_ENV_DEFAULT, environ)
    if "sasl_password_env" in section:
        raise ConfigError(
            "kafka.sasl_password_file", "give the password one way: sasl_password_env or this"
        )
    path = _readable_file(section, "sasl_password_file")
    assert path is not None
    with open(path, encoding="utf-8") as lines:
        password = lines.read().rstrip("\r\n")
    if not password:
        raise ConfigError("kafka.sasl_password_file", f"{file} is empty")
    return Secret(password, f"file {file}")


def _from_env(
    section: Mapping[str, Any], key: str, default: str | None, environ: Mapping[str, str]
) -> Secret:
    name = read_string(section, key, f"kafka.{key}", default)
    value = environ.get(name)
    if not value:
        raise ConfigError(f"kafka.{key}", f"the environment variable {name} is not set")
    return Secret(value, f"environment variable {name}")
