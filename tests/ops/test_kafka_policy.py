"""`policy --kafka`: the ACLs of each resource, their commands, the principal, both forms."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from stream.config import Settings, settings_from_mapping
from stream.errors import OptionError
from stream.ops.kafka_policy import (
    kafka_acls,
    kafka_principal,
    render_acl_commands,
    render_acls_json,
)


def settings(**kafka: Any) -> Settings:
    section = {"broker": "b1:9093", "topic": "events", "app_id": "cs", **kafka}
    return settings_from_mapping({"kafka": section}, {"COHORT_SYNC_KAFKA_PASSWORD": "p"})


SCRAM = {"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512", "sasl_username": "u"}


def test_each_resource_gets_only_what_a_command_needs_and_never_an_implied_describe() -> None:
    acls = {(a.name, a.pattern, a.operation): a.needed_by for a in kafka_acls(settings())}
    assert set(acls) == {
        ("events", "literal", "Read"),
        ("events", "literal", "Write"),
        ("events", "literal", "Create"),
        ("events-dlq", "literal", "Read"),
        ("events-dlq", "literal", "Write"),
        ("events-dlq", "literal", "Create"),
        ("cs-", "prefixed", "Read"),
        ("cs-", "prefixed", "Write"),
        ("cs-", "prefixed", "Create"),
        ("cs", "literal", "Read"),  # the group
    }
    assert acls[("events", "literal", "Write")] == ("dead-letters --requeue",)
    assert "replay" in acls[("events", "literal", "Read")]


def test_the_principal_is_the_configs_login_unless_given() -> None:
    assert kafka_principal(settings(**SCRAM), None) == "User:u"
    assert kafka_principal(settings(**SCRAM), "User:other") == "User:other"
    with pytest.raises(OptionError, match="--principal: needed"):
        kafka_principal(settings(), None)
    with pytest.raises(OptionError, match="is not a Kafka principal"):
        kafka_principal(settings(), "arn:aws:iam::123456789012:role/x")
    msk = {"security_protocol": "SASL_SSL", "sasl_mechanism": "AWS_MSK_IAM", "aws_region": "x"}
    with pytest.raises(OptionError, match="IAM policies, not Kafka ACLs"):
        kafka_principal(settings(**msk), None)


def test_the_commands_and_the_json_hold_the_same_bindings() -> None:
    acls = kafka_acls(settings())
    lines = render_acl_commands(acls, "User:u", "b1:9093").splitlines()
    commands = [line for line in lines if not line.startswith("#")]
    assert commands[-1] == (
        "kafka-acls.sh --bootstrap-server b1:9093 --add --allow-principal User:u "
        "--operation Read --group cs --resource-pattern-type literal"
    )
    from_lines = {
        (words[words.index(f"--{kind}") + 1], operation)
        for line in commands
        for words in [line.split()]
        for kind in ("topic", "group")
        if f"--{kind}" in words
        for i, operation in enumerate(words)
        if i and words[i - 1] == "--operation"
    }
    document = json.loads(render_acls_json(acls, "User:u"))
    from_json = {(a["resource_name"], a["operation"]) for a in document["acls"]}
    assert from_lines == from_json and len(from_json) == 10


def test_the_acls_are_printed_without_the_secrets_of_the_config(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        '[kafka]\nbroker = "b1:9093"\nsecurity_protocol = "SASL_SSL"\n'
        'sasl_mechanism = "SCRAM-SHA-512"\nsasl_username = "u"\n'
        f'sasl_password_file = "{tmp_path}/not-on-this-machine"\n'
    )
    result = subprocess.run(
        [sys.executable, "-m", "stream.commands.cli", "policy", "--kafka", "--config", str(config)],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "COHORT_SYNC_KAFKA_PASSWORD"},
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "--allow-principal User:u" in result.stdout
