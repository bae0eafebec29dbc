"""`s3://` destinations through boto3 (AWS S3, MinIO, any S3-compatible endpoint).

Credentials come from the standard AWS chain. botocore's "standard" retry mode retries
throttling, 5xx answers and connection errors with exponential backoff and jitter; what
still fails is classified as transient or permanent for the caller. Objects are written
with `If-None-Match: *`, so an existing object is never replaced (see `Sink`); a server that
ignores the header (older S3-compatible stores) simply overwrites. The only module that
imports boto3.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from stream.errors import PermanentSinkError, TransientSinkError
from stream.sinks import Put

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
        max_attempts: int = 6,
        overwrite: bool = False,
    ) -> None:
        self.bucket = bucket
        self.overwrite = overwrite
        config = Config(
            retries={"mode": "standard", "max_attempts": max_attempts},
            connect_timeout=5,
            read_timeout=60,
        )
        self._client = boto3.session.Session().client(
            "s3", region_name=region, endpoint_url=endpoint_url, config=config
        )

    def put(self, key: str, data: bytes) -> Put:
        with _classified(f"s3://{self.bucket}/{key}"):
            if self.overwrite:
                self._client.put_object(Bucket=self.bucket, Key=key, Body=data)
                return Put.WRITTEN
            try:
                self._client.put_object(Bucket=self.bucket, Key=key, Body=data, IfNoneMatch="*")
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

    def location(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"


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
