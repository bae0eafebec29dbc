"""Config loading: defaults, the documented example, and one clear error per mistake."""

import textwrap
from pathlib import Path

import pytest

from stream.config import load_settings, settings_from_mapping
from stream.config.destinations import Role
from stream.domain.windows import Schedule
from stream.errors import ConfigError

EXAMPLE = """
project_id = 4242

[kafka]
broker = "kafka://127.0.0.1:9092"
topic = "cohort-membership"
app_id = "cohort-sync"
partitions = 8
allowed_lateness = "0s"
idle_timeout = "30s"

[faust]
broker_session_timeout = 10.0

[[destinations]]
name = "analytics"
url = "s3://my-bucket/cohorts/daily"
region = "us-east-1"
endpoint_url = "http://127.0.0.1:9000"
naming = "amplitude"
require_suffix = false
user_property = "plan"

[[syncs]]
cohort = "c1"
destination = "analytics"
cadence = "hourly"
routing_key = "crm"
user_properties = ["country"]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(textwrap.dedent(text))
    return path


def test_the_documented_example_loads(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, EXAMPLE))
    assert settings.project_id == 4242
    assert settings.kafka.bootstrap_servers() == ["127.0.0.1:9092"]
    assert settings.kafka.idle_timeout_ms == 30_000
    assert settings.faust == {"broker_session_timeout": 10.0}
    destination = settings.destinations["analytics"]
    assert (destination.bucket, destination.path) == ("my-bucket", "cohorts/daily")
    [rule] = settings.syncs
    assert rule.schedule == Schedule.every(3_600_000) and rule.routing_key == "crm"
    assert rule.properties(destination) == ("plan", "country")


def test_defaults() -> None:
    settings = settings_from_mapping({})
    kafka = settings.kafka
    assert (kafka.broker, kafka.topic, kafka.app_id, kafka.partitions) == (
        None,
        "cohort-membership",
        "cohort-sync",
        8,
    )
    assert (kafka.allowed_lateness_ms, kafka.idle_timeout_ms, kafka.dlq_topic) == (
        0,
        30_000,
        "cohort-membership-dlq",
    )


def test_broker_environment_variable_overrides_the_file() -> None:
    settings = settings_from_mapping(
        {"kafka": {"broker": "kafka://a:1"}}, environ={"COHORT_SYNC_BROKER": "b:2"}
    )
    assert settings.kafka.bootstrap_servers() == ["b:2"]


def test_idle_timeout_off() -> None:
    assert settings_from_mapping({"kafka": {"idle_timeout": "off"}}).kafka.idle_timeout_ms is None


def test_a_one_time_sync_takes_its_time_as_a_string_or_a_toml_date_time(tmp_path: Path) -> None:
    text = EXAMPLE.replace('cadence = "hourly"', 'cadence = "once"\nat = "2026-01-05T13:00+01:00"')
    [rule] = load_settings(write(tmp_path, text)).syncs
    assert rule.schedule == Schedule.once(1_767_614_400_000)  # 12:00Z
    assert rule.rule_id == "analytics|crm|c1|once@1767614400000"
    bare = EXAMPLE.replace('cadence = "hourly"', 'cadence = "once"\nat = 2026-01-05T12:00:00Z')
    assert load_settings(write(tmp_path, bare)).syncs == (rule,)


def test_an_s3_destination_s_placement_becomes_put_arguments() -> None:
    settings = settings_from_mapping(
        {
            "destinations": [
                {
                    **DEST,
                    "sse": "aws:kms",
                    "kms_key_id": "arn:aws:kms:eu-west-1:1:key/k",
                    "bucket_key": True,
                    "acl": "bucket-owner-full-control",
                    "storage_class": "STANDARD_IA",
                }
            ]
        }
    )
    assert settings.destinations["d"].placement.put_arguments() == {
        "ServerSideEncryption": "aws:kms",
        "SSEKMSKeyId": "arn:aws:kms:eu-west-1:1:key/k",
        "BucketKeyEnabled": True,
        "ACL": "bucket-owner-full-control",
        "StorageClass": "STANDARD_IA",
    }
    assert (
        settings_from_mapping({"destinations": [DEST]}).destinations["d"].placement.put_arguments()
        == {}
    )


def test_a_role_to_assume_with_its_external_id_and_session_name() -> None:
    entry = {**DEST, "role_arn": ROLE, "external_id": "ext-1"}
    role = settings_from_mapping({"destinations": [entry]}).destinations["d"].role
    assert role == Role(arn=ROLE, external_id="ext-1", session_name="cohort-sync")
    assert settings_from_mapping({"destinations": [DEST]}).destinations["d"].role is None


def test_the_multipart_threshold_is_a_size() -> None:
    def threshold(text: str | None) -> int:
        entry = DEST if text is None else {**DEST, "multipart_threshold": text}
        return (
            settings_from_mapping({"destinations": [entry]}).destinations["d"].multipart_threshold
        )

    assert threshold(None) == 64 * 1024 * 1024
    assert (threshold("500KiB"), threshold("1GiB"), threshold("100B")) == (512_000, 1024**3, 100)


def test_idle_catch_up_defaults_to_a_day_and_off_means_no_limit() -> None:
    assert settings_from_mapping({}).kafka.idle_catch_up_ms == 86_400_000
    assert settings_from_mapping({"kafka": {"idle_catch_up": "off"}}).kafka.idle_catch_up_ms is None
    assert settings_from_mapping({"kafka": {"idle_catch_up": "6h"}}).kafka.idle_catch_up_ms == (
        6 * 3_600_000
    )


def test_retain_exited_defaults_to_30_days_and_forever_keeps_everything() -> None:
    assert settings_from_mapping({}).kafka.retain_exited_ms == 30 * 86_400_000
    forever = settings_from_mapping({"kafka": {"retain_exited": "forever"}})
    assert forever.kafka.retain_exited_ms is None
    assert settings_from_mapping({"kafka": {"retain_exited": "2h"}}).kafka.retain_exited_ms == (
        7_200_000
    )


def test_duplicate_user_property_is_one_column() -> None:
    settings = settings_from_mapping(
        {
            "destinations": [{"name": "d", "url": "file:///tmp/x", "user_property": "plan"}],
            "syncs": [
                {
                    "cohort": "*",
                    "destination": "d",
                    "cadence": "daily",
                    "user_properties": ["plan", "country"],
                }
            ],
        }
    )
    assert settings.syncs[0].properties(settings.destinations["d"]) == ("plan", "country")


DEST = {"name": "d", "url": "s3://bucket-a/p"}
ROLE = "arn:aws:iam::123456789012:role/cohort-writer"
RULE = {"cohort": "c1", "destination": "d", "cadence": "hourly"}


@pytest.mark.parametrize(
    "document, key",
    [
        ({"unknown": 1}, "unknown"),
        ({"project_id": "x"}, "project_id"),
        ({"kafka": {"partitions": 0}}, "kafka.partitions"),
        ({"kafka": {"partitions": "8"}}, "kafka.partitions"),
        ({"kafka": {"allowed_lateness": "soon"}}, "kafka.allowed_lateness"),
        ({"kafka": {"idle_timeout": "0s"}}, "kafka.idle_timeout"),
        ({"kafka": {"retain_exited": "0d"}}, "kafka.retain_exited"),
        ({"kafka": {"idle_catch_up": "0s"}}, "kafka.idle_catch_up"),
        ({"destinations": [{**DEST, "sse": "aes"}]}, "destinations[0].sse"),
        ({"destinations": [{**DEST, "kms_key_id": "k"}]}, "destinations[0].kms_key_id"),
        (
            {"destinations": [{**DEST, "sse": "AES256", "bucket_key": True}]},
            "destinations[0].bucket_key",
        ),
        ({"destinations": [{**DEST, "acl": "everyone"}]}, "destinations[0].acl"),
        ({"destinations": [{**DEST, "format": "xlsx"}]}, "destinations[0].format"),
        (
            {"destinations": [{**DEST, "multipart_threshold": "big"}]},
            "destinations[0].multipart_threshold",
        ),
        (
            {"destinations": [{**DEST, "multipart_threshold": "0MiB"}]},
            "destinations[0].multipart_threshold",
        ),
        ({"destinations": [{**DEST, "external_id": "abc"}]}, "destinations[0].external_id"),
        ({"destinations": [{**DEST, "role_arn": "writer"}]}, "destinations[0].role_arn"),
        (
            {"destinations": [{**DEST, "role_arn": ROLE, "role_session_name": "a b"}]},
            "destinations[0].role_session_name",
        ),
        (
            {"destinations": [{"name": "d", "url": "file:///x", "role_arn": ROLE}]},
            "destinations[0].role_arn",
        ),
        ({"destinations": [{**DEST, "storage_class": "COLD"}]}, "destinations[0].storage_class"),
        (
            {"destinations": [{"name": "d", "url": "file:///x", "sse": "AES256"}]},
            "destinations[0].sse",
        ),
        ({"destinations": [DEST], "syncs": [{**RULE, "cadence": "once"}]}, "syncs[0].at"),
        ({"destinations": [DEST], "syncs": [{**RULE, "at": "2026-01-05T12:00Z"}]}, "syncs[0].at"),
        (
            {"destinations": [DEST], "syncs": [{**RULE, "cadence": "once", "at": "tomorrow"}]},
            "syncs[0].at",
        ),
        (
            {
                "destinations": [DEST],
                "syncs": [{**RULE, "cadence": "once", "at": "2026-01-05T12:00"}],
            },
            "syncs[0].at",
        ),
        (
            {
                "destinations": [DEST],
                "syncs": [{**RULE, "cadence": "once", "at": "2026-01-05T12:00:30Z"}],
            },
            "syncs[0].at",
        ),
        ({"kafka": {"idle_catch_up": "never"}}, "kafka.idle_catch_up"),
        ({"kafka": {"retain_exited": "never"}}, "kafka.retain_exited"),
        ({"kafka": {"retain_exited": 30}}, "kafka.retain_exited"),
        ({"kafka": {"topic": "a b"}}, "kafka.topic"),
        ({"kafka": {"colour": "blue"}}, "kafka.colour"),
        ({"faust": 3}, "faust"),
        ({"faust": {"producer_threaded": True}}, "faust.producer_threaded"),
        ({"faust": {"processing_guarantee": "exactly_once"}}, "faust.processing_guarantee"),
        ({"faust": {"producer_acks": 1}}, "faust.producer_acks"),
        ({"faust": {"producer_acks": 0}}, "faust.producer_acks"),
        ({"faust": {"stream_publish_on_commit": True}}, "faust.stream_publish_on_commit"),
        ({"faust": {"stream_wait_empty": False}}, "faust.stream_wait_empty"),
        ({"faust": {"broker": "kafka://x:9092"}}, "faust.broker"),
        ({"faust": {"topic_partitions": 4}}, "faust.topic_partitions"),
        ({"destinations": [{"name": "d", "url": "http://x"}]}, "destinations[0].url"),
        ({"destinations": [{"name": "d", "url": "s3://B_ad"}]}, "destinations[0].url"),
        ({"destinations": [{"name": "d", "url": "s3:/bucket"}]}, "destinations[0].url"),
        ({"destinations": [{"name": "d", "url": "file:/tmp/x"}]}, "destinations[0].url"),
        ({"destinations": [{"name": "d", "url": "file://relative/dir"}]}, "destinations[0].url"),
        ({"destinations": [{"url": "s3://bucket-a"}]}, "destinations[0].name"),
        ({"destinations": [DEST, DEST]}, "destinations[1].name"),
        ({"destinations": [{**DEST, "naming": "dots"}]}, "destinations[0].naming"),
        ({"destinations": [{**DEST, "require_suffix": "yes"}]}, "destinations[0].require_suffix"),
        ({"destinations": [{**DEST, "csv_formula_guard": 1}]}, "destinations[0].csv_formula_guard"),
        ({"destinations": [{**DEST, "endpoint_url": "ftp://x"}]}, "destinations[0].endpoint_url"),
        ({"destinations": [DEST], "syncs": [{**RULE, "destination": "e"}]}, "syncs[0].destination"),
        ({"destinations": [DEST], "syncs": [{**RULE, "cadence": "weekly"}]}, "syncs[0].cadence"),
        ({"destinations": [DEST], "syncs": [{**RULE, "cadence": "90s"}]}, "syncs[0].cadence"),
        (
            {"destinations": [{**DEST, "require_suffix": True}], "syncs": [RULE]},
            "syncs[0].routing_key",
        ),
        (
            {"destinations": [DEST], "syncs": [{**RULE, "routing_key": "a/b"}]},
            "syncs[0].routing_key",
        ),
        (
            {"destinations": [DEST], "syncs": [{**RULE, "user_properties": "plan"}]},
            "syncs[0].user_properties",
        ),
        (
            {"destinations": [DEST], "syncs": [{k: v for k, v in RULE.items() if k != "cohort"}]},
            "syncs[0].cohort",
        ),
        (
            {"destinations": [DEST], "syncs": [RULE, {**RULE, "cohort": "*", "cadence": "daily"}]},
            "syncs[1]",
        ),
    ],
)
def test_each_mistake_names_its_key(document: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        settings_from_mapping(document)
    assert caught.value.key == key
    assert "\n" not in str(caught.value)


def test_faust_settings_that_keep_the_guarantees_pass_through() -> None:
    kept = {
        "producer_threaded": False,
        "processing_guarantee": "at_least_once",
        "producer_acks": -1,
        "stream_publish_on_commit": False,
        "stream_wait_empty": True,
        "broker_session_timeout": 2.0,
    }
    assert settings_from_mapping({"faust": kept}).faust == kept


def test_missing_file_and_bad_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_settings(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(write(tmp_path, "project_id = ="))


def test_a_config_that_would_write_nothing_is_refused_where_it_must_write(tmp_path: Path) -> None:
    nothing = write(tmp_path, '[kafka]\nbroker = "kafka://h:9092"\n')
    assert load_settings(nothing).syncs == ()  # produce and lag need no syncs
    with pytest.raises(ConfigError, match=r"^config error: destinations: none defined"):
        load_settings(nothing, syncs_required=True)
    no_syncs = write(tmp_path, '[[destinations]]\nname = "d"\nurl = "file:///tmp/x"\n')
    with pytest.raises(ConfigError, match=r"^config error: syncs: none defined"):
        load_settings(no_syncs, syncs_required=True)


def test_every_problem_of_a_config_is_reported_at_once_one_line_each() -> None:
    data = {
        "kafka": {"idle_timeout": 30, "partitions": "x", "max_future": "soon"},
        "faust": {"producer_threaded": True},
        "destinations": [
            {"name": "d", "url": "ftp://x"},
            {"name": "ok", "url": "file:///tmp/x"},
        ],
        "syncs": [
            {"cohort": "*", "destination": "d", "cadence": "hourly"},  # d's own problem only
            {"cohort": "*", "destination": "nowhere", "cadence": "hourly"},
            {"cohort": "c", "destination": "ok", "cadence": "once", "at": 1767571200},
        ],
    }
    with pytest.raises(ConfigError) as refused:
        settings_from_mapping(data)
    assert [line.split(":")[1].strip() for line in str(refused.value).splitlines()] == [
        "kafka.partitions",
        "kafka.idle_timeout",
        "kafka.max_future",
        "faust.producer_threaded",
        "destinations[0].url",
        "syncs[1].destination",
        "syncs[2].at",
    ]
    lines = str(refused.value).splitlines()
    assert lines[1] == (
        'config error: kafka.idle_timeout: a duration is a string like "5m" or "90s", got 30'
    )
    assert lines[-1] == (
        "config error: syncs[2].at: 1767571200 is outside the years 2000 to 2099 (epoch times "
        "are in milliseconds; 1767571200 seconds is 1767571200000)"
    )


def test_a_config_with_several_problems_is_one_line_each_on_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from stream.commands.cli import main

    config = tmp_path / "c.toml"
    config.write_text("[kafka]\nidle_timeout = 30\npartitions = 0\n")
    assert main(["check", "--config", str(config)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "cohort-sync: config error: kafka.partitions: must be at least 1, got 0",
        'cohort-sync: config error: kafka.idle_timeout: a duration is a string like "5m" or '
        '"90s", got 30',
    ]
