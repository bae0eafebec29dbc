"""`cohort-sync check` against the broker and moto's S3 server: all reachable, and one line for
each thing that is not (a missing bucket, a wrong endpoint, an unreachable broker)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from stream.kafka.embedded import free_port
from tests.brokers import Broker
from tests.scenario import C1

from .conftest import AWS_ENV, WAIT, read_bucket
from .support import HOURLY_ALL, produce, s3_destination, write_config


def check(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stream.commands.cli", "check", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=WAIT,
        env={**os.environ, **AWS_ENV},
    )


def labelled(output: str, label: str) -> list[str]:
    return [line.split(None, 1)[1] for line in output.splitlines() if line.split()[0] == label]


def test_everything_reachable_is_exit_0_with_the_plan_and_nothing_written(
    s3: Any, bucket: str, broker: Broker, names: dict[str, str], s3_config: Callable[..., Path]
) -> None:
    config = s3_config()
    produce(config, C1)
    result = check(config)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert labelled(out, "problem") == []
    [reached] = labelled(out, "broker")
    cluster = "tansu_cluster" if broker.cluster is None else ""
    assert re.search(rf"reachable \(cluster {cluster}[^ ]*\)$", reached), reached
    topic, app = names["topic"], names["app_id"]
    own = [topic, f"{topic}-dlq", f"{app}-ticks", f"{app}-by-cohort", f"{app}-membership-changelog"]
    described = [line.split(", min.insync.replicas ")[0] for line in labelled(out, "topic")]
    assert described == [f"{name}: 4 partitions, replication factor 1" for name in own]
    if broker.cluster is not None:  # Apache Kafka answers DescribeConfigs
        assert all(line.endswith(", min.insync.replicas 1") for line in labelled(out, "topic"))
    assert labelled(out, "warning") == []
    assert labelled(out, "group") == [
        f"{names['app_id']}: committed on 0 of 4 partitions, lag {len(C1)} records"
    ]
    [destination] = labelled(out, "destination")
    assert destination == (
        f"s3 (s3://{bucket}/exports/hourly): as arn:aws:sts::123456789012:user/moto; "
        f"bucket {bucket} reachable; path /exports/hourly/ reachable (empty)"
    )
    [plan] = labelled(out, "plan")
    assert plan.startswith("syncs[0]: every cohort -> s3, hourly, next ")
    assert f"for example s3://{bucket}/exports/hourly/7_{{cohort_id}}_" in plan
    assert out.splitlines()[-1].split(None, 1)[1] == "everything is reachable"
    assert read_bucket(s3, bucket) == {}


def test_a_missing_bucket_is_one_problem_and_exit_1(
    tmp_path: Path, broker: Broker, names: dict[str, str], s3_endpoint: str
) -> None:
    config = write_config(
        tmp_path,
        broker,
        names,
        s3_destination("s3", "no-such-bucket-here", s3_endpoint),
        HOURLY_ALL,
    )
    result = check(config)
    assert result.returncode == 1, result.stdout + result.stderr
    [problem] = labelled(result.stdout, "problem")
    assert problem.startswith("destination s3: s3://no-such-bucket-here: NoSuchBucket")
    assert "\n" not in problem and "Traceback" not in result.stderr


def test_a_wrong_endpoint_is_one_problem_and_exit_1(
    tmp_path: Path, broker: Broker, names: dict[str, str], bucket: str
) -> None:
    wrong = f"http://127.0.0.1:{free_port()}"
    config = write_config(tmp_path, broker, names, s3_destination("s3", bucket, wrong), HOURLY_ALL)
    result = check(config)
    assert result.returncode == 1, result.stdout + result.stderr
    [problem] = labelled(result.stdout, "problem")
    assert problem.startswith(f"destination s3: s3://{bucket}: Could not connect")
    assert wrong in problem


def test_an_unreachable_broker_is_one_problem_and_exit_1(
    tmp_path: Path, names: dict[str, str], bucket: str, s3_endpoint: str
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        f'[kafka]\nbroker = "kafka://127.0.0.1:{free_port()}"\n'
        + s3_destination("s3", bucket, s3_endpoint)
        + HOURLY_ALL
    )
    result = check(config)
    assert result.returncode == 1, result.stdout + result.stderr
    [problem] = labelled(result.stdout, "problem")
    assert problem.startswith("broker: cannot reach Kafka at kafka://127.0.0.1:")
    assert labelled(result.stdout, "destination") != []  # the rest is still checked
