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
import hashlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from stream.errors import PermanentSinkError, SinkError, TransientSinkError
from stream.sinks import Inspection, Put

__all__ = ["S3Sink"]

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


class S3Sink:
    def __init__(
        self,
        *,
        bucket: str,
        region: str | None = None,
        endpoint_url: str | None = None,
        path: str = "",
        put_arguments: Mapping[str, object] | None = None,
        max_attempts: int = 6,
        overwrite: bool = False,
    ) -> None:
        """`path`: the destination's folder in the bucket (keys passed in include it).
        `put_arguments`: PutObject parameters every object carries (encryption, ACL,
        storage class: `config.Placement`)."""
        self.bucket = bucket
        self.path = path
        self.put_arguments = dict(put_arguments or {})
        self.overwrite = overwrite
        self._session = boto3.session.Session()
        self._where = {"region_name": region, "endpoint_url": endpoint_url}
        self._client = self._session.client("s3", **self._where, config=_config(max_attempts))

    def put(self, key: str, data: bytes) -> Put:
        """The server checks the body against its MD5 (`ContentMD5`): a corrupted upload is
        refused (`BadDigest`, retried as transient), never stored."""
        arguments = {
            "Bucket": self.bucket,
            "Key": key,
            "Body": data,
            "ContentMD5": base64.b64encode(
                hashlib.md5(data, usedforsecurity=False).digest()
            ).decode(),
            **self.put_arguments,
        }
        with _classified(f"s3://{self.bucket}/{key}"):
            if self.overwrite:
                self._client.put_object(**arguments)
                return Put.WRITTEN
            try:
                self._client.put_object(**arguments, IfNoneMatch="*")
                return Put.WRITTEN
            except ClientError as exc:
                if _code(exc) not in ("PreconditionFailed", "412"):
                    raise
            return Put.UNCHANGED if self._holds(key, data) else Put.KEPT

    def _holds(self, key: str, data: bytes) -> bool:
        """Whether the object under `key` has exactly these bytes (its ETag is the MD5 of a
        single-part upload; other ETags mean reading it)."""
        head = self._client.head_object(Bucket=self.bucket, Key=key)
        if head.get("ContentLength") != len(data):
            return False
        if head.get("ETag", "").strip('"') == hashlib.md5(data, usedforsecurity=False).hexdigest():
            return True
        stored = self._client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        return bool(stored == data)

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
            return f"identity unknown ({type(exc).__name__}: {exc})"

    def location(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"


def _config(max_attempts: int, *, connect_timeout: float = 5) -> Config:
    return Config(
        retries={"mode": "standard", "max_attempts": max_attempts},
        connect_timeout=connect_timeout,
        read_timeout=60,
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
