"""`[kafka]`'s security keys: secrets only from the environment or a file and never shown,
one line per mistake naming the key, and the options each client gets."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import pytest

from stream.config import settings_from_mapping
from stream.config.kafka import KafkaSettings
from stream.errors import ConfigError, ConfigErrors
from stream.faust.security import faust_credentials
from stream.kafka.diagnosis import explain
from stream.kafka.security import security_options

BROKER = "b1:9093"


def kafka(environ: dict[str, str] | None = None, /, **section: Any) -> KafkaSettings:
    return settings_from_mapping({"kafka": {"broker": BROKER, **section}}, environ or {}).kafka


def problems(environ: dict[str, str] | None = None, /, **section: Any) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        kafka(environ, **section)
    error = caught.value
    return [str(e) for e in (error.errors if isinstance(error, ConfigErrors) else [error])]


SCRAM = {"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512", "sasl_username": "u"}


def test_a_password_comes_from_the_environment_and_is_never_shown() -> None:
    settings = kafka({"COHORT_SYNC_KAFKA_PASSWORD": "hunter2-secret"}, **SCRAM)
    security = settings.security
    assert security.sasl_password is not None
    assert security.sasl_password.reveal() == "hunter2-secret"
    for shown in (repr(settings), str(settings), repr(security), str(security.sasl_password)):
        assert "hunter2-secret" not in shown
    assert "environment variable COHORT_SYNC_KAFKA_PASSWORD" in repr(security.sasl_password)
    options = security_options(security)
    assert options["sasl_plain_password"] == "hunter2-secret"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert isinstance(options["ssl_context"], ssl.SSLContext)
    credentials = faust_credentials(security)
    assert credentials is not None and "hunter2-secret" not in repr(credentials)


def test_a_password_file_and_a_variable_of_ones_own_naming(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("from-a-file\n")
    from_file = kafka(**SCRAM, sasl_password_file=str(secret)).security.sasl_password
    assert from_file is not None and from_file.reveal() == "from-a-file"
    named = kafka({"MY_PW": "x"}, **SCRAM, sasl_password_env="MY_PW").security.sasl_password
    assert named is not None and named.reveal() == "x"


def test_a_password_variable_that_is_not_set_is_named() -> None:
    assert problems(**SCRAM) == [
        "config error: kafka.sasl_password_env: the environment variable "
        "COHORT_SYNC_KAFKA_PASSWORD is not set"
    ]


def test_a_password_in_the_config_file_is_refused_without_showing_it() -> None:
    found = problems({"COHORT_SYNC_KAFKA_PASSWORD": "p"}, **SCRAM, sasl_password="in-the-file")
    assert len(found) == 1 and found[0].startswith("config error: kafka.sasl_password: secrets")
    assert "in-the-file" not in found[0]


def test_every_security_mistake_of_a_file_is_one_line_naming_its_key(tmp_path: Path) -> None:
    found = problems(security_protocol="TLS", sasl_mechanism="GSSAPI")
    assert [line.split(":")[1].strip() for line in found] == [
        "kafka.security_protocol",
        "kafka.sasl_mechanism",
    ]
    assert "'TLS' is not one of 'PLAINTEXT', 'SSL', 'SASL_PLAINTEXT', 'SASL_SSL'" in found[0]
    missing = str(tmp_path / "missing.pem")
    assert problems(security_protocol="SSL", ssl_cafile=missing) == [
        f"config error: kafka.ssl_cafile: no such file: {missing}"
    ]
    assert problems(ssl_cafile=missing, ssl_check_hostname=False) == [
        f'config error: kafka.{key}: is used only with security_protocol "SSL" or "SASL_SSL" '
        '(it is "PLAINTEXT")'
        for key in ("ssl_cafile", "ssl_check_hostname")
    ]


def test_sasl_needs_a_mechanism_and_a_user_and_a_mechanism_needs_sasl() -> None:
    assert problems(security_protocol="SASL_SSL") == [
        "config error: kafka.sasl_mechanism: is required with security_protocol 'SASL_SSL': "
        "one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER, AWS_MSK_IAM"
    ]
    assert problems(sasl_mechanism="PLAIN") == [
        'config error: kafka.sasl_mechanism: needs security_protocol "SASL_SSL" (or '
        '"SASL_PLAINTEXT"), not "PLAINTEXT"'
    ]
    found = problems(
        {"COHORT_SYNC_KAFKA_PASSWORD": "p"}, security_protocol="SASL_SSL", sasl_mechanism="PLAIN"
    )
    assert found == ["config error: kafka.sasl_username: is required with sasl_mechanism PLAIN"]


def test_the_embedded_broker_takes_no_security_keys() -> None:
    with pytest.raises(ConfigError, match="the embedded broker is plaintext"):
        settings_from_mapping({"kafka": {"security_protocol": "SSL"}}, {})


def test_plaintext_gives_the_clients_nothing_to_change() -> None:
    security = kafka().security
    assert security_options(security) == {}
    assert faust_credentials(security) is None


def test_kafka_pythons_log_lines_become_one_line_saying_why() -> None:
    settings = kafka({"COHORT_SYNC_KAFKA_PASSWORD": "p"}, **SCRAM)
    refused = [
        "Bootstrap connection to bootstrap-0 failed: [Error 58] SaslAuthenticationFailedError: "
        "Authentication failed during authentication due to invalid credentials with SASL "
        "mechanism SCRAM-SHA-512 (backoff 0.08 secs)"
    ]
    unbootstrapped = "KafkaTimeoutError: Unable to bootstrap from ['b1:9093']"
    assert explain(settings, unbootstrapped, refused) == (
        "authentication failed at Kafka at b1:9093: SCRAM-SHA-512 login of user 'u' refused "
        "(check kafka.sasl_username and the password in the environment variable "
        "COHORT_SYNC_KAFKA_PASSWORD)"
    )
    mismatch = [
        "Connection failed: KafkaConnectionError: Handshake failed: [SSL: "
        "CERTIFICATE_VERIFY_FAILED] certificate verify failed: Hostname mismatch, certificate "
        "is not valid for 'b1'. (_ssl.c:1006)"
    ]
    assert "is not valid for the host 'b1'" in explain(settings, unbootstrapped, mismatch)
    untrusted = [
        "Connection failed: KafkaConnectionError: Handshake failed: [SSL: "
        "CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed certificate in "
        "certificate chain (_ssl.c:1006)"
    ]
    assert explain(settings, unbootstrapped, untrusted) == (
        "TLS: the certificate of Kafka at b1:9093 is not signed by a CA in this system's CAs "
        "(set kafka.ssl_cafile to the cluster's CA): self-signed certificate in certificate "
        "chain"
    )
    assert explain(settings, unbootstrapped, ["ECONNREFUSED"]) == (
        "cannot reach Kafka at b1:9093: " + unbootstrapped
    )


def test_an_encrypted_client_key_is_opened_with_the_password_its_variable_holds(
    tmp_path: Path,
) -> None:
    from cryptography.hazmat.primitives import serialization

    from tests.brokers.tls import make_certificates

    made = make_certificates(tmp_path)
    key = serialization.load_pem_private_key(made.client_key.read_bytes(), password=None)
    locked = tmp_path / "locked.key"
    locked.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"key-Pa55"),
        )
    )
    section = {
        "security_protocol": "SSL",
        "ssl_cafile": str(made.ca),
        "ssl_certfile": str(made.client_cert),
        "ssl_keyfile": str(locked),
        "ssl_key_password_env": "CLIENT_KEY_PASSWORD",
    }
    security = kafka({"CLIENT_KEY_PASSWORD": "key-Pa55"}, **section).security
    assert isinstance(security.ssl_context(), ssl.SSLContext)
    assert "key-Pa55" not in repr(security)
    assert problems(**section) == [
        "config error: kafka.ssl_key_password_env: the environment variable "
        "CLIENT_KEY_PASSWORD is not set"
    ]
    wrong = problems({"CLIENT_KEY_PASSWORD": "nope"}, **section)
    assert len(wrong) == 1 and wrong[0].startswith(
        "config error: kafka.ssl_key_password_env: the key and certificate do not open"
    )
    no_password = {key: value for key, value in section.items() if "password" not in key}
    assert problems(**no_password)[0].startswith(
        "config error: kafka.ssl_certfile: the certificate and key do not load"
    )
    (tmp_path / "not-a-ca.pem").write_text("hello")
    not_a_ca = {**section, "ssl_cafile": str(tmp_path / "not-a-ca.pem")}
    assert problems({"CLIENT_KEY_PASSWORD": "key-Pa55"}, **not_a_ca)[0].startswith(
        "config error: kafka.ssl_cafile: holds no CA certificate"
    )
