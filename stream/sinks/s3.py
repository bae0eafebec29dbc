"""`s3://` destinations through boto3 (AWS S3, MinIO, any S3-compatible endpoint).

Credentials come from the standard AWS chain. botocore's "standard" retry mode retries
throttling, 5xx answers and connection errors with exponential backoff and jitter; what
still fails is classified as transient or permanent for the caller. The only module that
imports boto3.
"""

from __future__ import annotations

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
        try:
            self._client.put_object(Bucket=self.bucket, Key=key, Body=data)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "Unknown")
            message = f"s3://{self.bucket}/{key}: {code}: {exc}"
            if code in _PERMANENT_CODES:
                raise PermanentSinkError(message) from exc
            raise TransientSinkError(message) from exc
        except BotoCoreError as exc:
            raise TransientSinkError(f"s3://{self.bucket}/{key}: {exc}") from exc

    def location(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"
