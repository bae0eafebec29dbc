"""`cohort-sync policy` proven, not claimed: every S3 request a worker run, the health probe
and a replay make (recorded by a proxy in front of moto) is allowed by the printed policy,
and the policy grants no action that none of them used."""

from __future__ import annotations

import fnmatch
import json
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.brokers import Broker
from tests.scenario import C1, C2

from .conftest import WAIT, wait_until
from .faults import FaultyS3Proxy
from .support import HOURLY_ALL, produce, s3_destination, wait_for_objects, write_config
from .test_monitoring import get, with_web_port


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stream.commands.cli", *args],
        capture_output=True,
        text=True,
        timeout=WAIT,
    )


def iam_request(method: str, path: str, headers: dict[str, str]) -> list[tuple[str, str]]:
    """The IAM actions and resources one path-style S3 request needs."""
    parts = urlsplit(path)
    bucket, _, key = parts.path.lstrip("/").partition("/")
    if not key:
        listing = method == "HEAD" or "list-type" in parse_qs(parts.query)
        assert listing, (method, path)
        return [("s3:ListBucket", f"arn:aws:s3:::{bucket}")]
    resource = f"arn:aws:s3:::{bucket}/{key}"
    if method == "PUT":
        needed = [("s3:PutObject", resource)]
        if any(name.lower() == "x-amz-acl" for name in headers):
            needed.append(("s3:PutObjectAcl", resource))
        return needed
    assert method in ("GET", "HEAD"), (method, path)
    return [("s3:GetObject", resource)]


def allows(policy: dict[str, Any], action: str, resource: str) -> bool:
    for statement in policy["Statement"]:
        resources = statement["Resource"]
        resources = [resources] if isinstance(resources, str) else resources
        matches = any(fnmatch.fnmatchcase(resource, pattern) for pattern in resources)
        if statement["Effect"] == "Allow" and action in statement["Action"] and matches:
            return True
    return False


def test_the_policy_allows_every_request_of_worker_health_and_replay_and_nothing_more(
    tmp_path: Path,
    broker: Broker,
    names: dict[str, str],
    s3: Any,
    bucket: str,
    s3_endpoint: str,
    workers: Any,
) -> None:
    with FaultyS3Proxy(s3_endpoint) as proxy:
        config = write_config(
            tmp_path, broker, names, s3_destination("s3", bucket, proxy.url), HOURLY_ALL
        )
        port = with_web_port(config)
        produce(config, C1 + C2)
        worker = workers(config)
        wait_for_objects(s3, bucket, 32, worker)
        wait_until(lambda: get(f"http://127.0.0.1:{port}/health")[0] == 200, WAIT, "health")
        worker.stop()
        replayed = cli("replay", "--config", str(config))  # every file there already
        assert replayed.returncode == 0, replayed.stderr
        assert "0 new, 32 identical already" in replayed.stdout
        requests = list(proxy.requests)
    printed = cli("policy", "--config", str(config))
    assert printed.returncode == 0, printed.stderr
    policy = json.loads(printed.stdout)
    needed = {
        pair for method, path, headers, _ in requests for pair in iam_request(method, path, headers)
    }
    assert {action for action, _ in needed} == {"s3:PutObject", "s3:GetObject", "s3:ListBucket"}
    refused = sorted(pair for pair in needed if not allows(policy, *pair))
    assert refused == []
    granted = {action for statement in policy["Statement"] for action in statement["Action"]}
    assert granted == {action for action, _ in needed}  # nothing that none of them used
    for statement in policy["Statement"]:
        assert "*" not in "".join(statement["Action"])
        assert statement["Resource"] in (
            f"arn:aws:s3:::{bucket}/exports/hourly/*",
            f"arn:aws:s3:::{bucket}",
        )
    assert not allows(policy, "s3:PutObject", f"arn:aws:s3:::{bucket}/elsewhere/k.csv")
