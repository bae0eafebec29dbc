"""`s3://` destinations through boto3 (AWS S3, MinIO, any S3-compatible endpoint).

Credentials come from the standard AWS chain. botocore's "standard" retry mode retries
throttling, 5xx answers and connection errors with exponential backoff and jitter; what
still fails is classified as transient or permanent for the caller. The only module that
imports boto3.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from ..errors import PermanentSinkError, TransientSinkError

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
    ) -> None:
        self.bucket = bucket
        config = Config(
            retries={"mode": "standard", "max_attempts": max_attempts},
            connect_timeout=5,
            read_timeout=60,
        )
        self._client = boto3.session.Session().client(
            "s3", region_name=region, endpoint_url=endpoint_url, config=config
        )

    def put(self, key: str, data: bytes) -> None:
        with _classified(f"s3://{self.bucket}/{key}"):
            self._client.put_object(Bucket=self.bucket, Key=key, Body=data)

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
        code = exc.response.get("Error", {}).get("Code", "Unknown")
        if code == "404":  # head_bucket answers a bare status code
            code = "NoSuchBucket"
        message = f"{where}: {code}: {exc}"
        if code in _PERMANENT_CODES or code == "403":
            raise PermanentSinkError(message) from exc
        raise TransientSinkError(message) from exc
    except BotoCoreError as exc:
        raise TransientSinkError(f"{where}: {exc}") from exc
