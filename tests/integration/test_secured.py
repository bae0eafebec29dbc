"""Secured clusters: the worker, `check`, `lag` and `replay` over TLS with client certificates,
SASL_SSL PLAIN, SASL_SSL SCRAM-SHA-512 and SASL_SSL OAUTHBEARER (a token endpoint of the
test's), on one Apache Kafka with those listeners; the files are a plaintext run's, and no
secret shows in any output."""

from __future__ import annotations

import re
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stream.kafka.embedded import free_port
from tests.brokers import Broker, broker_kind, kafka_version
from tests.brokers.oauth import TokenEndpoint
from tests.brokers.secured import PLAIN_LOGIN, SCRAM_LOGIN, Login, SecuredKafka
from tests.scenario import C1, C2, expected_csvs

from .conftest import read_bucket
from .support import (
    HOURLY_ALL,
    cli,
    csvs_in,
    produce,
    replay,
    s3_destination,
    wait_for_objects,
    write_config,
)

OAUTH_CLIENT = Login("OAUTHBEARER", "cohort-sync-client", "oauth-Secret-5d0c71aa")

#: name -> (listener, login): None logs in with the client certificate.
CASES: dict[str, tuple[str, Login | None]] = {
    "scram": ("SASL_SSL", SCRAM_LOGIN),
    "plain": ("SASL_SSL", PLAIN_LOGIN),
    "client-certificate": ("SSL", None),
    "oauth": ("OAUTH", OAUTH_CLIENT),
}


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredKafka]:
    if broker_kind() != "apache":
        pytest.skip("the secured listeners are Apache Kafka's (Tansu has none)")
    with SecuredKafka(tmp_path_factory.mktemp("secured"), version=kafka_version()) as kafka:
        yield kafka


@pytest.fixture(scope="module")
def token_endpoint() -> Iterator[TokenEndpoint]:
    with TokenEndpoint(OAUTH_CLIENT.username, OAUTH_CLIENT.password) as endpoint:
        yield endpoint


def secured_broker(secured: SecuredKafka, listener: str, **faust: Any) -> Broker:
    bootstrap = secured.bootstrap_of(listener)
    return Broker(f"kafka://{bootstrap}", bootstrap, secured.description, faust)


def security_toml(secured: SecuredKafka, case: str, token_url: str = "", **overrides: str) -> str:
    listener, login = CASES[case]
    certificates = secured.certificates
    keys = {"security_protocol": "SASL_SSL" if login else "SSL", "ssl_cafile": str(certificates.ca)}
    if login is OAUTH_CLIENT:
        keys |= {
            "sasl_mechanism": "OAUTHBEARER",
            "oauth_token_url": token_url,
            "oauth_client_id": login.username,
        }
    elif login is None:
        keys |= {
            "ssl_certfile": str(certificates.client_cert),
            "ssl_keyfile": str(certificates.client_key),
        }
    else:
        keys |= {"sasl_mechanism": login.mechanism, "sasl_username": login.username}
    keys |= overrides
    return "\n".join(f'{key} = "{value}"' for key, value in keys.items())


def identity_of(login: Login | None) -> str:
    """How `check` starts naming who it logged in as."""
    if login is None:
        return "the client certificate"
    if login is OAUTH_CLIENT:
        return f"OAuth client '{login.username}' (OAUTHBEARER"
    return f"user '{login.username}' ({login.mechanism}"


@pytest.mark.parametrize("case", CASES)
def test_the_worker_check_lag_and_replay_work_on_a_secured_listener(
    case: str,
    secured: SecuredKafka,
    tmp_path: Path,
    names: dict[str, str],
    s3: Any,
    bucket: str,
    s3_endpoint: str,
    workers: Any,
    monkeypatch: pytest.MonkeyPatch,
    token_endpoint: TokenEndpoint,
) -> None:
    listener, login = CASES[case]
    if login is not None:
        variable = (
            "COHORT_SYNC_OAUTH_SECRET" if login is OAUTH_CLIENT else "COHORT_SYNC_KAFKA_PASSWORD"
        )
        monkeypatch.setenv(variable, login.password)
    issued = token_endpoint.issued
    port = free_port()
    broker = secured_broker(secured, listener, web_port=port)
    security = security_toml(secured, case, token_endpoint.url)
    destination = s3_destination("s3", bucket, s3_endpoint)
    config = write_config(tmp_path, broker, names, destination, HOURLY_ALL, kafka_extra=security)
    produce(config, C1 + C2)
    worker = workers(config)
    live = wait_for_objects(s3, bucket, 32, worker)
    assert csvs_in(live) == expected_csvs("exports/hourly")  # a plaintext run's files

    pages = [
        urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10).read().decode()
        for path in ("/", "/status.json", "/metrics", "/health")
    ]
    checked = cli("check", config)
    who = re.escape(identity_of(login))
    assert re.search(rf"^login +as {who}", checked.stdout, re.M), checked.stdout
    lag = cli("lag", config)
    assert lag.returncode == 0, lag.stderr
    assert names["topic"] in lag.stdout
    worker.stop_cleanly()

    other = f"{bucket}-replay"
    s3.create_bucket(Bucket=other)
    replay_config = write_config(
        tmp_path,
        broker,
        names,
        s3_destination("s3", other, s3_endpoint),
        HOURLY_ALL,
        kafka_extra=security,
        name="replay.toml",
    )
    replayed = replay(replay_config)
    assert replayed.returncode == 0, replayed.stderr
    assert read_bucket(s3, other) == live

    if login is OAUTH_CLIENT:  # each process fetched its token: worker, produce, check, lag, replay
        assert token_endpoint.issued - issued >= 4 and token_endpoint.refused == 0
    if login is not None:  # no output of the run shows the secret
        outputs = [worker.log(), checked.stdout, checked.stderr, lag.stdout, lag.stderr]
        outputs += [replayed.stdout, replayed.stderr, *pages]
        assert not [text for text in outputs if login.password in text]


#: name -> (case, key overrides, host, password, what the line says)
MISTAKES = {
    "wrong password": (
        "scram",
        {},
        "127.0.0.1",
        "not-the-password",
        r"authentication failed at Kafka at \S+: SCRAM-SHA-512 login of user 'scram-user' "
        r"refused \(check kafka.sasl_username and the password in the environment variable "
        r"COHORT_SYNC_KAFKA_PASSWORD\)",
    ),
    "unknown CA": (
        "scram",
        {"ssl_cafile": "OTHER_CA"},
        "127.0.0.1",
        SCRAM_LOGIN.password,
        r"TLS: the certificate of Kafka at \S+ is not signed by a CA in kafka.ssl_cafile \(",
    ),
    "hostname mismatch": (
        "scram",
        {},
        "localhost",
        SCRAM_LOGIN.password,
        r"TLS: the certificate of Kafka at localhost:\d+ is not valid for the host 'localhost'",
    ),
    "plaintext client on a TLS listener": (
        None,
        {},
        "127.0.0.1",
        "",
        r'Kafka at \S+ speaks TLS, and this client does not: set kafka.security_protocol = "SSL"',
    ),
}


@pytest.mark.parametrize("mistake", MISTAKES)
def test_a_security_mistake_is_one_line_naming_what_to_fix_and_exit_2_within_20_seconds(
    mistake: str,
    secured: SecuredKafka,
    tmp_path: Path,
    names: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    case, overrides, host, password, says = MISTAKES[mistake]
    monkeypatch.setenv("COHORT_SYNC_KAFKA_PASSWORD", password)
    overrides = {
        key: str(secured.certificates.other_ca) if value == "OTHER_CA" else value
        for key, value in overrides.items()
    }
    bootstrap = secured.bootstrap_of("SASL_SSL").replace("127.0.0.1", host)
    broker = Broker(f"kafka://{bootstrap}", bootstrap, secured.description, {})
    security = security_toml(secured, case, **overrides) if case else ""
    folder = f'[[destinations]]\nname = "s3"\nurl = "file://{tmp_path}/out"\n'
    config = write_config(tmp_path, broker, names, folder, HOURLY_ALL, kafka_extra=security)
    started = time.monotonic()
    result = cli("worker", config)
    assert time.monotonic() - started < 20
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and re.match(rf"cohort-sync: {says}", lines[0]), result.stderr
    assert not password or password not in result.stdout + result.stderr
