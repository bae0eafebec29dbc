"""`cohort-sync policy --kafka` on a cluster that allows nothing without an ACL: given exactly
the printed ACLs, the worker, `check`, `lag`, `replay` and `dead-letters` all work; without
one of them, a command that needs it fails with one line naming what is missing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaAdminClient
from kafka.admin import (
    ACL,
    ACLFilter,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    ResourcePattern,
    ResourcePatternFilter,
    ResourceType,
)

from stream.config import settings_from_mapping
from stream.domain.deadletter import dead_letter_record
from stream.kafka.scan import send_records
from tests.brokers import Broker, broker_kind, kafka_version
from tests.brokers.secured import SCRAM_LOGIN, SecuredKafka
from tests.scenario import C1, C2, expected_csvs

from .conftest import WAIT, read_bucket
from .support import (
    HOURLY_ALL,
    cli,
    csvs_in,
    produce,
    replay,
    s3_destination,
    toml_of,
    wait_for_objects,
    write_config,
)

PRINCIPAL = f"User:{SCRAM_LOGIN.username}"


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredKafka]:
    if broker_kind() != "apache":
        pytest.skip("ACLs are Apache Kafka's (Tansu has none)")
    folder = tmp_path_factory.mktemp("acls")
    with SecuredKafka(folder, version=kafka_version(), authorizer=True) as kafka:
        yield kafka


@pytest.fixture
def admin(guarded: SecuredKafka) -> Iterator[KafkaAdminClient]:
    client = KafkaAdminClient(bootstrap_servers=guarded.cluster.bootstrap)  # a super user
    yield client
    client.close()


def binding(entry: dict[str, Any]) -> ACL:
    return ACL(
        principal=entry.get("principal", PRINCIPAL),
        host=entry["host"],
        operation=ACLOperation[_snake(entry["operation"])],
        permission_type=ACLPermissionType.ALLOW,
        resource_pattern=ResourcePattern(
            ResourceType[entry["resource_type"].upper()],
            entry["resource_name"],
            ACLResourcePatternType[entry["pattern_type"].upper()],
        ),
    )


def _snake(operation: str) -> str:
    return "".join(f"_{c}" if c.isupper() and i else c for i, c in enumerate(operation)).upper()


def configs(
    guarded: SecuredKafka,
    tmp_path: Path,
    names: dict[str, str],
    destination: str,
    name: str = "config.toml",
) -> tuple[Path, Path]:
    """The principal's config (SCRAM) and a super user's (plaintext) for the same topics."""
    bootstrap = guarded.bootstrap_of("SASL_SSL")
    broker = Broker(f"kafka://{bootstrap}", bootstrap, guarded.description, {})
    security = "\n".join(
        [
            'security_protocol = "SASL_SSL"',
            f'ssl_cafile = "{guarded.certificates.ca}"',
            f'sasl_mechanism = "{SCRAM_LOGIN.mechanism}"',
            f'sasl_username = "{SCRAM_LOGIN.username}"',
        ]
    )
    mine = write_config(tmp_path, broker, names, destination, HOURLY_ALL, security, name)
    plain = guarded.cluster
    admin_broker = Broker(plain.url, plain.bootstrap, plain.description, {})
    theirs = write_config(
        tmp_path, admin_broker, names, destination, HOURLY_ALL, "", f"admin-{name}"
    )
    return mine, theirs


def test_exactly_the_printed_acls_let_every_command_work(
    guarded: SecuredKafka,
    admin: KafkaAdminClient,
    tmp_path: Path,
    names: dict[str, str],
    s3: Any,
    bucket: str,
    s3_endpoint: str,
    workers: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COHORT_SYNC_KAFKA_PASSWORD", SCRAM_LOGIN.password)
    config, as_admin = configs(guarded, tmp_path, names, s3_destination("s3", bucket, s3_endpoint))
    printed = cli("policy", config, "--kafka", "--json")
    assert printed.returncode == 0, printed.stderr
    document = json.loads(printed.stdout)
    assert document["principal"] == PRINCIPAL
    admin.create_acls([binding(entry) for entry in document["acls"]])

    produce(as_admin, C1 + C2 + [b"not json"])  # the test's input, as a super user
    worker = workers(config)
    live = wait_for_objects(s3, bucket, 32, worker)
    assert csvs_in(live) == expected_csvs("exports/hourly")
    for command in (["check"], ["lag"], ["dead-letters"]):
        result = cli(command[0], config, *command[1:])
        assert result.returncode == 0, (command, result.stdout, result.stderr)
    requeued = cli("dead-letters", config, "--requeue")
    assert requeued.returncode == 0, requeued.stdout + requeued.stderr
    worker.stop_cleanly()

    other = f"{bucket}-replay"
    s3.create_bucket(Bucket=other)
    replay_config, _ = configs(
        guarded, tmp_path, names, s3_destination("s3", other, s3_endpoint), "replay.toml"
    )
    replayed = replay(replay_config)
    assert replayed.returncode == 0, replayed.stderr
    assert read_bucket(s3, other) == live
    admin.delete_acls([_everything_of(PRINCIPAL)])


def _everything_of(principal: str) -> ACLFilter:
    return ACLFilter(
        principal=principal,
        host="*",
        operation=ACLOperation.ANY,
        permission_type=ACLPermissionType.ANY,
        resource_pattern=ResourcePatternFilter(ResourceType.ANY, None, ACLResourcePatternType.ANY),
    )


#: The commands whose denials are checked one ACL at a time: each runs against the printed
#: ACLs less one; the worker for what only it needs.
COMMANDS = {
    "check": ["check"],
    "lag": ["lag"],
    "replay": ["replay"],
    "dead-letters": ["dead-letters"],
    "dead-letters --requeue": ["dead-letters", "--requeue"],
    "worker": ["worker"],
}


def test_without_any_one_printed_acl_a_command_that_needs_it_says_what_is_missing(
    guarded: SecuredKafka,
    admin: KafkaAdminClient,
    tmp_path: Path,
    names: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    workers: Any,
) -> None:
    monkeypatch.setenv("COHORT_SYNC_KAFKA_PASSWORD", SCRAM_LOGIN.password)
    folder = f'[[destinations]]\nname = "s3"\nurl = "file://{tmp_path}/out"\n'
    config, as_admin = configs(guarded, tmp_path, names, folder)
    produce(as_admin, C1 + [b"not json"])  # the worker writes a dead letter and its state
    letter = dead_letter_record(
        key=b"c1",
        value=b"not json",
        reason="not valid JSON",
        source=f"{names['topic']}/0/9",
        limit=1_000_000,
    )
    admin_kafka = settings_from_mapping(toml_of(as_admin), {}).kafka
    send_records(admin_kafka, admin_kafka.dlq_topic, [(letter.key, letter.value, letter.headers)])
    document = json.loads(cli("policy", config, "--kafka", "--json").stdout)
    bindings = [binding(entry) for entry in document["acls"]]
    admin.create_acls(bindings)
    checked = []
    try:
        for entry, acl in zip(document["acls"], bindings, strict=True):
            what = f"{entry['operation']} {entry['resource_type']} {entry['resource_name']}"
            commands = [c for c in entry["needed_by"] if c in COMMANDS and c != "worker"]
            commands.append("worker")
            command = commands[0]
            admin.delete_acls([_filter_of(acl)])
            try:
                if command == "worker":
                    code, lines = _worker_stops(workers(config))
                else:
                    result = cli(COMMANDS[command][0], config, *COMMANDS[command][1:])
                    code, lines = result.returncode, result.stderr.splitlines()
            finally:
                admin.create_acls([acl])
            # the worker stops itself (1: it ran) with its log before the line; a command at once
            assert code == (1 if command == "worker" and entry["operation"] != "Create" else 2), (
                what,
                command,
                lines,
            )
            assert command == "worker" or len(lines) == 1, (what, command, lines)
            line = lines[-1]
            expected = f"not authorized: {PRINCIPAL} may not "
            assert expected in line, (what, command, lines)
            assert entry["operation"] in line and entry["resource_name"] in line, lines
            checked.append((what, command))
    finally:
        admin.delete_acls([_everything_of(PRINCIPAL)])
    assert len(checked) == len(document["acls"]) == 10


def _worker_stops(worker: Any) -> tuple[int, list[str]]:
    """The worker's exit code and its output's lines, once it stopped itself."""
    code = worker.wait_exit(WAIT)
    return code, worker.log().strip().splitlines()


def _filter_of(acl: ACL) -> ACLFilter:
    pattern = acl.resource_pattern
    return ACLFilter(
        principal=acl.principal,
        host=acl.host,
        operation=acl.operation,
        permission_type=acl.permission_type,
        resource_pattern=ResourcePatternFilter(
            pattern.resource_type, pattern.resource_name, pattern.pattern_type
        ),
    )
