"""`s3://` destinations through boto3 (AWS S3, MinIO, any S3-compatible endpoint).

Credentials come from the standard AWS chain. botocore's "standard" retry mode retries
throttling, 5xx answers and connection errors with exponential backoff and jitter; what
still fails is classified as transient or permanent for the caller. Objects are written
with `If-None-Match: *`, so an existing object is never replaced (see `Sink`); a server that
ignores the header (older S3-compatible stores) simply overwrites. The only module that
imports boto3.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import boto3
import botocore.session
from botocore.config import Config
from botocore.credentials import AssumeRoleCredentialFetcher, DeferredRefreshableCredentials
from botocore.exceptions import BotoCoreError, ClientError

from stream.config.destinations import Role
from stream.errors import PermanentSinkError, SinkError, TransientSinkError, describe
from stream.sinks import PUTS_AT_ONCE, Body, Inspection, Put

__all__ = ["MAX_ATTEMPTS", "MIB", "S3Sink", "chain_region"]

MIB = 1024 * 1024

_PERMANENT_CODES = {
    "NoSuchBucket",
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "PermanentRedirect",
    "AuthorizationHeaderMalformed",
    "InvalidBucketName",
    "AllAccessDisabled",
    "AccountProblem",
}


#: Tries of each S3 request, the first included, before a put fails to the writer (which
#: then retries the whole sync with its own backoff).
MAX_ATTEMPTS = 6


class S3Sink:
    def __init__(
        self,
        *,
        bucket: str,
        region: str | None = None,
        endpoint_url: str | None = None,
        path: str = "",
        put_arguments: Mapping[str, object] | None = None,
        role: Role | None = None,
        role_seconds: int = 3600,
        multipart_threshold: int = 64 * MIB,
        part_size: int = 8 * MIB,
        max_attempts: int = MAX_ATTEMPTS,
        overwrite: bool = False,
    ) -> None:
        """`path`: the destination's folder in the bucket (keys passed in include it).
        `put_arguments`: PutObject parameters every object carries (encryption, ACL,
        storage class: `config.Placement`). `role`: write with the credentials of an
        assumed role, refreshed by botocore before they expire (`role_seconds` each).
        `max_attempts`: tries of each request, the first included, before it fails."""
        self.bucket = bucket
        self.path = path
        self.put_arguments = dict(put_arguments or {})
        self.multipart_threshold = multipart_threshold
        self.part_size = max(part_size, 5 * MIB)  # S3's smallest part but the last
        self.overwrite = overwrite
        self._where = {"region_name": region, "endpoint_url": endpoint_url}
        self._session = boto3.session.Session()
        if role is not None:
            self._session = _assuming(self._session, role, role_seconds, self._where)
        self._client = self._session.client("s3", **self._where, config=_config(max_attempts))

    def put(self, key: str, body: Body) -> Put:
        """One PutObject, or above `multipart_threshold` a multipart upload; write-once
        either way (`If-None-Match: *` on the put, or on the completion). The server checks
        every body against its MD5 (`ContentMD5`): a corrupted upload is refused
        (`BadDigest`, retried as transient), never stored. Memory holds at most the
        threshold of the body (a single put) or one part (a multipart upload)."""
        with _classified(f"s3://{self.bucket}/{key}"):
            try:
                if body.size > self.multipart_threshold:
                    self._put_in_parts(key, body)
                else:
                    arguments = {"Body": body.read(), "ContentMD5": _b64(body.md5)}
                    self._client.put_object(
                        Bucket=self.bucket,
                        Key=key,
                        **arguments,
                        **self._conditional,
                        **self.put_arguments,
                    )
                return Put.WRITTEN
            except ClientError as exc:
                if self.overwrite or _code(exc) not in ("PreconditionFailed", "412"):
                    raise
            return Put.UNCHANGED if self._holds(key, body) else Put.KEPT

    @property
    def _conditional(self) -> dict[str, str]:
        return {} if self.overwrite else {"IfNoneMatch": "*"}

    def _put_in_parts(self, key: str, body: Body) -> None:
        """A multipart upload of `body` in parts of `part_size`, made from its chunks one
        part at a time. Nothing is visible before the completion; an upload that fails is
        aborted, so no part is left to be billed."""
        where = {"Bucket": self.bucket, "Key": key}
        upload = self._client.create_multipart_upload(**where, **self.put_arguments)["UploadId"]
        try:
            parts = []
            for number, part in enumerate(_in_parts(body, self.part_size), start=1):
                answer = self._client.upload_part(
                    **where,
                    UploadId=upload,
                    PartNumber=number,
                    Body=part,
                    ContentMD5=_b64(hashlib.md5(part, usedforsecurity=False).digest()),
                )
                del part  # not held while the next one is joined
                parts.append({"ETag": answer["ETag"], "PartNumber": number})
            self._client.complete_multipart_upload(
                **where, UploadId=upload, MultipartUpload={"Parts": parts}, **self._conditional
            )
        except BaseException:
            with contextlib.suppress(ClientError, BotoCoreError):
                self._client.abort_multipart_upload(**where, UploadId=upload)
            raise

    def _holds(self, key: str, body: Body) -> bool:
        """Whether the object under `key` has exactly these bytes (its ETag is the MD5 of a
        single-part upload; other ETags mean reading it, a chunk at a time)."""
        head = self._client.head_object(Bucket=self.bucket, Key=key)
        if head.get("ContentLength") != body.size:
            return False
        if head.get("ETag", "").strip('"') == body.md5.hex():
            return True
        stored = self._client.get_object(Bucket=self.bucket, Key=key)["Body"]
        return body.matches(stored.iter_chunks(MIB))

    def probe(self) -> None:
        with _classified(f"s3://{self.bucket}"):
            self._client.head_bucket(Bucket=self.bucket)

    def inspect(self) -> Inspection:
        found = Inspection()
        if self._session.get_credentials() is None:
            found.problems.append(
                f"s3://{self.bucket}: no AWS credentials found (environment, ~/.aws, or the "
                "instance's or container's role)"
            )
            return found
        found.facts.append(self._identity())
        quick = self._session.client("s3", **self._where, config=_config(2, connect_timeout=3))
        folder = f"{self.path}/" if self.path else ""
        try:
            with _classified(f"s3://{self.bucket}"):
                quick.head_bucket(Bucket=self.bucket)
            found.facts.append(f"bucket {self.bucket} reachable")
            with _classified(f"s3://{self.bucket}/{folder}"):
                listed = quick.list_objects_v2(Bucket=self.bucket, Prefix=folder, MaxKeys=1)
            holds = "holds objects" if listed.get("KeyCount") else "empty"
            found.facts.append(f"path /{folder} reachable ({holds})")
        except SinkError as exc:
            found.problems.append(str(exc))
        return found

    def _identity(self) -> str:
        """Whom the credentials resolve to (STS GetCallerIdentity), or why that is unknown."""
        sts = self._session.client("sts", **self._where, config=_config(2, connect_timeout=3))
        try:
            return f"as {sts.get_caller_identity()['Arn']}"
        except (ClientError, BotoCoreError) as exc:
            return f"identity unknown ({describe(exc)})"

    def location(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"


def chain_region() -> str | None:
    """The region the AWS configuration names (environment, profile), if any."""
    region = botocore.session.get_session().get_config_variable("region")
    return str(region) if region else None


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


def _in_parts(body: Body, part_size: int) -> Iterator[bytes]:
    """`body`'s bytes in parts of `part_size` (the last one shorter), each joined from the
    views of its chunks, which are let go before it is handed over: memory holds the part
    being sent and the chunks of the next."""
    pending: list[memoryview] = []
    held = 0
    for chunk in body.chunks():
        while held + len(chunk) >= part_size:
            cut = part_size - held
            pending.append(chunk[:cut])
            held, chunk = 0, chunk[cut:]
            yield _joined(pending)
        if len(chunk):
            pending.append(chunk)
            held += len(chunk)
    if pending:
        yield _joined(pending)


def _joined(pending: list[memoryview]) -> bytes:
    """The views end to end; `pending` is emptied."""
    part = b"".join(pending)
    pending.clear()
    return part


def _assuming(
    base: boto3.session.Session, role: Role, seconds: int, where: Mapping[str, Any]
) -> boto3.session.Session:
    """A session whose credentials come from STS AssumeRole with `base`'s, fetched when
    first needed and again before they expire (botocore's refreshable credentials). STS is
    asked at `endpoint_url` when one is set (MinIO and test servers serve both)."""
    source = base.get_credentials()
    if source is None:
        raise PermanentSinkError(f"no AWS credentials to assume {role.arn} with")
    extra: dict[str, Any] = {"RoleSessionName": role.session_name, "DurationSeconds": seconds}
    if role.external_id is not None:
        extra["ExternalId"] = role.external_id
    fetcher = AssumeRoleCredentialFetcher(
        client_creator=functools.partial(base.client, **where),
        source_credentials=source,
        role_arn=role.arn,
        extra_args=extra,
    )
    credentials = DeferredRefreshableCredentials(
        refresh_using=fetcher.fetch_credentials, method="assume-role"
    )
    botocore_session = botocore.session.get_session()
    botocore_session._credentials = credentials  # botocore's way to give a session these
    return boto3.session.Session(botocore_session=botocore_session)


def _config(max_attempts: int, *, connect_timeout: float = 5) -> Config:
    return Config(
        # botocore's `max_attempts` counts retries after the first; `total_max_attempts`
        # counts every attempt, as our `max_attempts` does.
        retries={"mode": "standard", "total_max_attempts": max_attempts},
        connect_timeout=connect_timeout,
        read_timeout=60,
        # one connection per put that may run at once (botocore keeps 10, and warns when
        # more puts than that share a client)
        max_pool_connections=PUTS_AT_ONCE,
        # Every put and part carries the MD5 of its body (`ContentMD5`), which the server
        # checks and the signature covers. botocore's own CRC32 of the body (its default
        # since 1.36) and, over plain HTTP, the body's SHA-256 in the signature add nothing
        # to that, and each is a pass over every body (about 7% of a put's CPU on 300 KB
        # files). Over HTTPS botocore already leaves a body with an MD5 out of the signature.
        request_checksum_calculation="when_required",
        s3={"payload_signing_enabled": False},
    )


@contextmanager
def _classified(where: str) -> Iterator[None]:
    """boto3's errors as `PermanentSinkError` (needs an operator) or `TransientSinkError`."""
    try:
        yield
    except ClientError as exc:
        code = _code(exc)
        if code == "404":  # head_bucket answers a bare status code
            code = "NoSuchBucket"
        message = f"{where}: {code}: {exc}"
        if code in _PERMANENT_CODES or code == "403":
            raise PermanentSinkError(message) from exc
        raise TransientSinkError(message) from exc
    except BotoCoreError as exc:
        raise TransientSinkError(f"{where}: {exc}") from exc


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", "Unknown"))
