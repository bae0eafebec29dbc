"""The S3 sink against moto's server: write-once objects, error classes, injected 5xx."""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from stream.config.destinations import Placement, Role
from stream.errors import PermanentSinkError, TransientSinkError
from stream.sinks import Body, Put
from stream.sinks.s3 import MAX_ATTEMPTS, MIB, S3Sink
from tests.brokers import Broker
from tests.scenario import C1, C2, expected_csvs

from .conftest import AWS_ENV
from .faults import INTERNAL_ERROR, SLOW_DOWN, Fault, FaultyS3Proxy
from .support import HOURLY_ALL, csvs_in, produce, s3_destination, wait_for_objects, write_config


def test_objects_are_written_once_and_never_replaced(
    s3: Any, bucket: str, s3_endpoint: str
) -> None:
    sink = S3Sink(bucket=bucket, region="us-east-1", endpoint_url=s3_endpoint)
    assert sink.put("a/b.csv", Body.of(b"first")) is Put.WRITTEN
    assert sink.put("a/b.csv", Body.of(b"first")) is Put.UNCHANGED
    assert sink.put("a/b.csv", Body.of(b"other")) is Put.KEPT
    assert s3.get_object(Bucket=bucket, Key="a/b.csv")["Body"].read() == b"first"
    replacing = S3Sink(bucket=bucket, region="us-east-1", endpoint_url=s3_endpoint, overwrite=True)
    assert replacing.put("a/b.csv", Body.of(b"other")) is Put.WRITTEN
    assert s3.get_object(Bucket=bucket, Key="a/b.csv")["Body"].read() == b"other"


def test_a_missing_bucket_is_a_permanent_error_naming_it(s3_endpoint: str) -> None:
    sink = S3Sink(bucket="no-such-bucket-here", region="us-east-1", endpoint_url=s3_endpoint)
    with pytest.raises(PermanentSinkError, match="s3://no-such-bucket-here/k.csv: NoSuchBucket"):
        sink.put("k.csv", Body.of(b"x"))


def test_injected_slowdowns_and_internal_errors_are_retried(
    bucket: str, s3: Any, s3_endpoint: str
) -> None:
    attempts: Counter[str] = Counter()

    def two_failures_per_put(method: str, path: str) -> Fault | None:
        if method != "PUT":
            return None
        attempts[path] += 1
        return {1: SLOW_DOWN, 2: INTERNAL_ERROR}.get(attempts[path])

    with FaultyS3Proxy(s3_endpoint, two_failures_per_put) as proxy:
        sink = S3Sink(bucket=bucket, region="us-east-1", endpoint_url=proxy.url)
        for index in range(3):
            assert sink.put(f"k{index}.csv", Body.of(b"data")) is Put.WRITTEN
    assert proxy.injected == {"SlowDown": 3, "InternalError": 3}
    assert s3.get_object(Bucket=bucket, Key="k2.csv")["Body"].read() == b"data"


def test_worker_lands_every_sync_through_bursts_of_5xx(
    tmp_path: Path,
    broker: Broker,
    names: dict[str, str],
    s3: Any,
    bucket: str,
    s3_endpoint: str,
    workers: Any,
) -> None:
    requests = Counter[str]()
    first_put: list[str] = []

    def bursts(method: str, path: str) -> Fault | None:
        # The first object put fails more often than botocore retries it, so the writer's
        # own backoff must retry it. It is counted by path: a sync's files are put at once,
        # so a burst counted over all requests would be shared out among them.
        requests["all"] += 1
        if method == "PUT":
            first_put[:] = first_put or [path]
            if path == first_put[0]:
                requests[path] += 1
                if requests[path] <= MAX_ATTEMPTS:
                    return SLOW_DOWN
        return INTERNAL_ERROR if requests["all"] % 7 == 0 else None

    with FaultyS3Proxy(s3_endpoint, bursts) as proxy:
        destination = s3_destination("s3", bucket, proxy.url)
        config = write_config(tmp_path, broker, names, destination, HOURLY_ALL)
        produce(config, C1 + C2)
        worker = workers(config)
        objects = wait_for_objects(s3, bucket, 32, worker)
        worker.stop()
    assert csvs_in(objects) == expected_csvs("exports/hourly")
    assert proxy.injected["SlowDown"] == MAX_ATTEMPTS and proxy.injected["InternalError"] > 0
    assert "not written, retrying" in worker.log()


def test_a_missing_bucket_holds_up_only_its_destination_until_it_exists(
    tmp_path: Path,
    broker: Broker,
    names: dict[str, str],
    s3: Any,
    bucket: str,
    s3_endpoint: str,
    workers: Any,
) -> None:
    missing = f"late-{names['app_id'][-8:]}"
    destinations = s3_destination("s3", bucket, s3_endpoint) + s3_destination(
        "late", missing, s3_endpoint
    )
    syncs = HOURLY_ALL + '[[syncs]]\ncohort = "*"\ndestination = "late"\ncadence = "hourly"\n'
    config = write_config(tmp_path, broker, names, destinations, syncs)
    produce(config, C1 + C2)
    worker = workers(config)
    objects = wait_for_objects(s3, bucket, 32, worker)  # while "late" fails, "s3" goes on
    assert csvs_in(objects) == expected_csvs("exports/hourly")
    assert "destination late: sync exports/hourly/7_c" in worker.log()
    assert f"s3://{missing}/exports/hourly/" in worker.log() and "NoSuchBucket" in worker.log()
    s3.create_bucket(Bucket=missing)  # the operator fixes it: every held sync lands, in order
    landed = wait_for_objects(s3, missing, 32, worker)
    assert csvs_in(landed) == expected_csvs("exports/hourly")
    worker.stop()


def test_every_object_carries_its_destination_s_encryption_acl_and_storage_class(
    s3: Any, bucket: str, s3_endpoint: str
) -> None:
    placement = Placement(
        sse="aws:kms",
        kms_key_id="alias/cohorts",
        bucket_key=True,
        acl="bucket-owner-full-control",
        storage_class="STANDARD_IA",
    )
    sink = S3Sink(
        bucket=bucket,
        region="us-east-1",
        endpoint_url=s3_endpoint,
        put_arguments=placement.put_arguments(),
    )
    assert sink.put("k.csv", Body.of(b"x")) is Put.WRITTEN
    assert (
        sink.put("k.csv", Body.of(b"x")) is Put.UNCHANGED
    )  # the check for identical bytes still works
    head = s3.head_object(Bucket=bucket, Key="k.csv")
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"].endswith("alias/cohorts")
    assert head["BucketKeyEnabled"] is True and head["StorageClass"] == "STANDARD_IA"
    grants = s3.get_object_acl(Bucket=bucket, Key="k.csv")["Grants"]
    assert {grant["Permission"] for grant in grants} == {"FULL_CONTROL"}
    plain = S3Sink(
        bucket=bucket,
        region="us-east-1",
        endpoint_url=s3_endpoint,
        put_arguments=Placement(sse="AES256").put_arguments(),
    )
    plain.put("p.csv", Body.of(b"y"))
    assert s3.head_object(Bucket=bucket, Key="p.csv")["ServerSideEncryption"] == "AES256"


def test_every_put_carries_the_md5_of_its_body_for_the_server_to_check(
    s3: Any, bucket: str, s3_endpoint: str
) -> None:
    """S3 refuses a body that does not match its Content-MD5 (BadDigest: retried as a
    transient error). moto's server does not check it, so this checks what is sent."""
    sink = S3Sink(bucket=bucket, region="us-east-1", endpoint_url=s3_endpoint)
    sent: list[tuple[bytes, str]] = []

    def record(request: Any, **_: Any) -> None:
        body = request.body.getvalue() if hasattr(request.body, "getvalue") else request.body
        sent.append((body, request.headers["Content-MD5"].decode()))

    sink._client.meta.events.register("before-send.s3.PutObject", record)
    sink.put("k.csv", Body.of(b"exact bytes"))
    [(body, md5)] = sent
    assert body == b"exact bytes"
    assert md5 == base64.b64encode(hashlib.md5(b"exact bytes").digest()).decode()


def test_a_put_is_checked_by_its_md5_alone_with_no_other_hash_of_its_body(
    s3: Any, bucket: str, s3_endpoint: str
) -> None:
    """No CRC32 header (botocore's default since 1.36) and no SHA-256 of the body in the
    signature, even over plain HTTP: the MD5, which the signature covers, is the check."""
    sink = S3Sink(bucket=bucket, region="us-east-1", endpoint_url=s3_endpoint)
    sent: list[dict[str, str]] = []

    def record(request: Any, **_: Any) -> None:
        sent.append({name.lower(): _text(value) for name, value in request.headers.items()})

    sink._client.meta.events.register("before-send.s3.PutObject", record)
    assert sink.put("k.csv", Body.of(b"exact bytes")) is Put.WRITTEN
    [headers] = sent
    assert not [name for name in headers if name.startswith("x-amz-checksum")]
    assert "x-amz-sdk-checksum-algorithm" not in headers
    assert headers["x-amz-content-sha256"] == "UNSIGNED-PAYLOAD"
    assert "content-md5" in headers["authorization"].split("SignedHeaders=")[1]
    assert s3.get_object(Bucket=bucket, Key="k.csv")["Body"].read() == b"exact bytes"


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def test_an_assumed_role_writes_with_its_external_id_and_is_refreshed_before_it_expires(
    s3: Any, bucket: str, s3_endpoint: str
) -> None:
    role = Role(arn="arn:aws:iam::123456789012:role/cohort-writer", external_id="ext-4242")
    with FaultyS3Proxy(s3_endpoint) as proxy:
        # 900 s, STS's shortest: inside botocore's 15-minute refresh window from the start,
        # so every use refreshes them, as credentials about to expire would be
        sink = S3Sink(
            bucket=bucket, region="us-east-1", endpoint_url=proxy.url, role=role, role_seconds=900
        )
        for index in range(3):
            assert sink.put(f"k{index}.csv", Body.of(b"x")) is Put.WRITTEN
        requests = list(proxy.requests)
    assume = [body.decode() for method, _, _, body in requests if b"Action=AssumeRole" in body]
    assert len(assume) >= 2  # fetched, then refreshed
    for body in assume:
        assert "ExternalId=ext-4242" in body and "RoleSessionName=cohort-sync" in body
        assert "RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fcohort-writer" in body
    puts = [headers for method, _, headers, _ in requests if method == "PUT"]
    assert len(puts) == 3
    for headers in puts:  # signed with the role's temporary keys, not the base ones
        assert "Credential=ASIA" in headers["Authorization"]
        assert "X-Amz-Security-Token" in headers or "x-amz-security-token" in headers
    assert sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]) == [
        "k0.csv",
        "k1.csv",
        "k2.csv",
    ]


def test_a_body_damaged_on_the_way_is_refused_and_the_retry_stores_the_right_bytes(
    s3: Any, bucket: str, s3_endpoint: str
) -> None:
    damaged: list[str] = []

    def first_put(method: str, path: str) -> bool:
        if method == "PUT" and not damaged:
            damaged.append(path)
            return True
        return False

    with FaultyS3Proxy(s3_endpoint, corrupt=first_put) as proxy:
        once = S3Sink(bucket=bucket, region="us-east-1", endpoint_url=proxy.url, max_attempts=1)
        with pytest.raises(TransientSinkError, match="BadDigest"):
            once.put("k.csv", Body.of(b"exact bytes"))
        assert "Contents" not in s3.list_objects_v2(Bucket=bucket)  # refused, not stored
        retrying = S3Sink(bucket=bucket, region="us-east-1", endpoint_url=proxy.url)
        assert retrying.put("k.csv", Body.of(b"exact bytes")) is Put.WRITTEN
    assert s3.get_object(Bucket=bucket, Key="k.csv")["Body"].read() == b"exact bytes"


def test_a_big_object_goes_up_in_parts_still_written_once(
    s3: Any, bucket: str, s3_endpoint: str
) -> None:
    with FaultyS3Proxy(s3_endpoint) as proxy:
        sink = S3Sink(
            bucket=bucket,
            region="us-east-1",
            endpoint_url=proxy.url,
            multipart_threshold=1024 * 1024,
            put_arguments=Placement(storage_class="STANDARD_IA").put_arguments(),
        )
        data = bytes(range(256)) * (12 * 4096)  # 12 MiB: parts of 8 and 4 MiB
        assert sink.put("big.csv", Body.of(data)) is Put.WRITTEN
        assert sink.put("big.csv", Body.of(data)) is Put.UNCHANGED  # the completion is conditional
        assert sink.put("big.csv", Body.of(data[:-1] + b"!")) is Put.KEPT
        parts = [path for method, path, _, _ in proxy.requests if "partNumber=" in path]
    assert len(parts) == 2 * 3  # three uploads of two parts
    assert s3.get_object(Bucket=bucket, Key="big.csv")["Body"].read() == data
    assert s3.head_object(Bucket=bucket, Key="big.csv")["StorageClass"] == "STANDARD_IA"
    assert "Uploads" not in s3.list_multipart_uploads(Bucket=bucket)  # the refused ones too
    small = S3Sink(bucket=bucket, region="us-east-1", endpoint_url=s3_endpoint)
    assert small.put("small.csv", Body.of(b"x" * 1024)) is Put.WRITTEN  # under 64 MiB: one put


#: Run in a process of its own: moto's server, in this one, keeps the parts it receives.
MEASURED_PUT = """
import sys, tracemalloc
from stream.sinks import Body
from stream.sinks.s3 import MIB, S3Sink
endpoint, bucket, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
chunks = lambda: (bytes([index % 251]) * MIB for index in range(size // MIB))
sink = S3Sink(bucket=bucket, region="us-east-1", endpoint_url=endpoint,
              multipart_threshold=5 * MIB, part_size=5 * MIB)
body = Body(chunks)
body.size
tracemalloc.start()
assert sink.put("big.csv", body).value == "written"
print(tracemalloc.get_traced_memory()[1])
"""


def test_a_multipart_upload_holds_about_a_part_of_the_file_in_memory(
    s3: Any, bucket: str, s3_endpoint: str
) -> None:
    """A 60 MiB body made in 1 MiB chunks goes up in twelve 5 MiB parts with a Python heap
    peak of under four parts: the part being sent, http.client's copy of it behind the
    headers, and the chunks of the next; never the file."""
    size = 60 * MIB
    measured = subprocess.run(
        [sys.executable, "-c", MEASURED_PUT, s3_endpoint, bucket, str(size)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **AWS_ENV},
    )
    assert measured.returncode == 0, measured.stderr
    peak = int(measured.stdout)
    assert peak < 4 * 5 * MIB, f"{peak / MIB:.1f} MiB at the peak for a {size // MIB} MiB file"
    body = Body(lambda: (bytes([index % 251]) * MIB for index in range(size // MIB)))
    stored = s3.get_object(Bucket=bucket, Key="big.csv")["Body"]
    assert body.matches(stored.iter_chunks(MIB))
    assert s3.head_object(Bucket=bucket, Key="big.csv")["ETag"].endswith('-12"')


def test_an_interrupted_multipart_upload_leaves_no_object_and_is_aborted(
    s3: Any, bucket: str, s3_endpoint: str
) -> None:
    def second_part_fails(method: str, path: str) -> Fault | None:
        return INTERNAL_ERROR if "partNumber=2" in path else None

    with FaultyS3Proxy(s3_endpoint, fail=second_part_fails) as proxy:
        sink = S3Sink(
            bucket=bucket,
            region="us-east-1",
            endpoint_url=proxy.url,
            multipart_threshold=1024 * 1024,
            max_attempts=1,
        )
        with pytest.raises(TransientSinkError, match="InternalError"):
            sink.put("big.csv", Body.of(b"y" * (9 * 1024 * 1024)))
        aborted = [m for m, path, _, _ in proxy.requests if m == "DELETE" and "uploadId=" in path]
    assert len(aborted) == 1
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)
    assert "Uploads" not in s3.list_multipart_uploads(Bucket=bucket)


def test_a_worker_writing_as_an_assumed_role_keeps_writing_across_refreshes(
    tmp_path: Path,
    broker: Broker,
    names: dict[str, str],
    s3: Any,
    bucket: str,
    s3_endpoint: str,
    workers: Any,
) -> None:
    with FaultyS3Proxy(s3_endpoint) as proxy:
        destination = s3_destination("s3", bucket, proxy.url) + (
            'role_arn = "arn:aws:iam::123456789012:role/cohort-writer"\nexternal_id = "ext-4242"\n'
        )
        config = write_config(tmp_path, broker, names, destination, HOURLY_ALL)
        produce(config, C1 + C2)
        program = [str(Path(__file__).with_name("short_role_worker.py"))]
        objects = wait_for_objects(s3, bucket, 32, workers(config, program))
        requests = list(proxy.requests)
    assert csvs_in(objects) == expected_csvs("exports/hourly")
    assume = [body for _, _, _, body in requests if b"Action=AssumeRole" in body]
    assert len(assume) >= 2 and all(b"ExternalId=ext-4242" in body for body in assume)
    puts = [headers["Authorization"] for method, _, headers, _ in requests if method == "PUT"]
    assert len(puts) >= 32 and all("Credential=ASIA" in auth for auth in puts)
