"""`[[destinations]]`: where syncs are written (an S3 bucket and path, or a folder)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any
from urllib.parse import urlsplit

from stream.config.values import Problems, no_unknown_keys, read_boolean, read_string
from stream.errors import ConfigError

__all__ = [
    "CANNED_ACLS",
    "STORAGE_CLASSES",
    "Destination",
    "Placement",
    "Role",
    "parse_destinations",
]

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")


@dataclass(frozen=True, kw_only=True)
class Destination:
    name: str
    url: str
    scheme: str
    bucket: str
    path: str
    region: str | None = None
    endpoint_url: str | None = None
    naming: str = "amplitude"
    require_suffix: bool = False
    user_property: str | None = None
    csv_formula_guard: bool = False
    format: str = "csv"
    """The files' format: `csv`, `csv.gz` or `parquet`."""
    placement: Placement = field(default_factory=lambda: Placement())
    """How S3 stores every object written (encryption, ACL, storage class)."""
    role: Role | None = None
    """The role to write as (STS AssumeRole); None: the default credential chain."""
    multipart_threshold: int = 64 * 1024 * 1024
    """Objects larger than this (bytes) go up as multipart uploads."""


@dataclass(frozen=True, kw_only=True)
class Role:
    """An IAM role the worker assumes to write (`role_arn`, `external_id`,
    `role_session_name`)."""

    arn: str
    external_id: str | None = None
    session_name: str = "cohort-sync"


@dataclass(frozen=True, kw_only=True)
class Placement:
    """What every object written to an S3 destination carries (None: the bucket's default)."""

    sse: str | None = None
    """`AES256` (S3-managed keys) or `aws:kms`."""
    kms_key_id: str | None = None
    bucket_key: bool | None = None
    acl: str | None = None
    storage_class: str | None = None

    def put_arguments(self) -> dict[str, object]:
        """The PutObject parameters (boto3's names) that say so."""
        arguments: dict[str, object] = {
            "ServerSideEncryption": self.sse,
            "SSEKMSKeyId": self.kms_key_id,
            "BucketKeyEnabled": self.bucket_key,
            "ACL": self.acl,
            "StorageClass": self.storage_class,
        }
        return {key: value for key, value in arguments.items() if value is not None}


CANNED_ACLS = (
    "private",
    "public-read",
    "public-read-write",
    "authenticated-read",
    "aws-exec-read",
    "bucket-owner-read",
    "bucket-owner-full-control",
)
STORAGE_CLASSES = (
    "STANDARD",
    "REDUCED_REDUNDANCY",
    "STANDARD_IA",
    "ONEZONE_IA",
    "INTELLIGENT_TIERING",
    "GLACIER",
    "GLACIER_IR",
    "DEEP_ARCHIVE",
    "OUTPOSTS",
    "EXPRESS_ONEZONE",
)
FILE_FORMATS = ("csv", "csv.gz", "parquet")
_PLACEMENT_KEYS = {"sse", "kms_key_id", "bucket_key", "acl", "storage_class"}
_ROLE_KEYS = {"role_arn", "external_id", "role_session_name"}
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$")
_SESSION_NAME = re.compile(r"^[\w+=,.@-]{2,64}$")


def parse_destinations(raw: Any, problems: Problems | None = None) -> dict[str, Destination]:
    """The destinations that read without a problem. An entry's problem goes to `problems`
    when given (the others are still returned), else it is raised."""
    if not isinstance(raw, list):
        raise ConfigError("destinations", "must be an array of tables ([[destinations]])")
    found = Problems() if problems is None else problems
    result: dict[str, Destination] = {}
    for index, entry in enumerate(raw):
        destination = found.attempt(partial(_destination, index, entry, result), None)
        if destination is not None:
            result[destination.name] = destination
    if problems is None:
        found.raise_found()
    return result


def _destination(index: int, entry: Any, result: Mapping[str, Destination]) -> Destination:
    where = f"destinations[{index}]"
    if not isinstance(entry, dict):
        raise ConfigError(where, "must be a table")
    keys = {
        "name",
        "url",
        "region",
        "endpoint_url",
        "naming",
        "require_suffix",
        "user_property",
        "csv_formula_guard",
        "format",
        "multipart_threshold",
        *_PLACEMENT_KEYS,
        *_ROLE_KEYS,
    }
    no_unknown_keys(entry, keys, f"{where}.")
    name = read_string(entry, "name", f"{where}.name")
    if name in result:
        raise ConfigError(f"{where}.name", f"destination {name!r} is defined twice")
    scheme, bucket, path = _destination_url(read_string(entry, "url", f"{where}.url"), where)
    naming = read_string(entry, "naming", f"{where}.naming", default="amplitude")
    if naming not in ("amplitude", "no-colon"):
        raise ConfigError(f"{where}.naming", f'must be "amplitude" or "no-colon", got {naming!r}')
    endpoint = read_string(entry, "endpoint_url", f"{where}.endpoint_url", default=None)
    if endpoint is not None and urlsplit(endpoint).scheme not in ("http", "https"):
        raise ConfigError(f"{where}.endpoint_url", f"must be an http(s) URL, got {endpoint!r}")
    return Destination(
        name=name,
        url=entry["url"],
        scheme=scheme,
        bucket=bucket,
        path=path,
        region=read_string(entry, "region", f"{where}.region", default=None),
        endpoint_url=endpoint,
        naming=naming,
        require_suffix=read_boolean(entry, "require_suffix", f"{where}.require_suffix", False),
        user_property=read_string(entry, "user_property", f"{where}.user_property", default=None),
        csv_formula_guard=read_boolean(
            entry, "csv_formula_guard", f"{where}.csv_formula_guard", False
        ),
        format=_one_of(entry, "format", where, FILE_FORMATS) or "csv",
        placement=_placement(entry, where, scheme),
        role=_role(entry, where, scheme),
        multipart_threshold=_size(entry, "multipart_threshold", where, scheme, "64MiB"),
    )


def _placement(entry: Mapping[str, Any], where: str, scheme: str) -> Placement:
    """`sse`, `kms_key_id`, `bucket_key`, `acl`, `storage_class`: S3 only, consistent."""
    given = sorted(_PLACEMENT_KEYS & entry.keys())
    if scheme != "s3":
        if given:
            raise ConfigError(f"{where}.{given[0]}", "only for s3:// destinations")
        return Placement()
    sse = _one_of(entry, "sse", where, ("AES256", "aws:kms"))
    kms_key_id = read_string(entry, "kms_key_id", f"{where}.kms_key_id", default=None)
    bucket_key = entry.get("bucket_key")
    if bucket_key is not None:
        bucket_key = read_boolean(entry, "bucket_key", f"{where}.bucket_key", False)
    for key, value in (("kms_key_id", kms_key_id), ("bucket_key", bucket_key)):
        if value is not None and sse != "aws:kms":
            raise ConfigError(f"{where}.{key}", 'only with sse = "aws:kms"')
    return Placement(
        sse=sse,
        kms_key_id=kms_key_id,
        bucket_key=bucket_key,
        acl=_one_of(entry, "acl", where, CANNED_ACLS),
        storage_class=_one_of(entry, "storage_class", where, STORAGE_CLASSES),
    )


def _role(entry: Mapping[str, Any], where: str, scheme: str) -> Role | None:
    """`role_arn`, `external_id`, `role_session_name`: S3 only, the last two with a role."""
    given = sorted(_ROLE_KEYS & entry.keys())
    if given and scheme != "s3":
        raise ConfigError(f"{where}.{given[0]}", "only for s3:// destinations")
    arn = read_string(entry, "role_arn", f"{where}.role_arn", default=None)
    if arn is None:
        if given:
            raise ConfigError(f"{where}.{given[0]}", "only with role_arn")
        return None
    if not _ROLE_ARN.match(arn):
        raise ConfigError(
            f"{where}.role_arn", f"{arn!r} is not a role ARN (arn:aws:iam::<account>:role/<name>)"
        )
    external_id = read_string(entry, "external_id", f"{where}.external_id", default=None)
    if external_id is not None and not 2 <= len(external_id) <= 1224:
        raise ConfigError(f"{where}.external_id", "must be 2 to 1224 characters")
    session_name = read_string(
        entry, "role_session_name", f"{where}.role_session_name", default="cohort-sync"
    )
    if not _SESSION_NAME.match(session_name):
        raise ConfigError(
            f"{where}.role_session_name", "must be 2 to 64 letters, digits or +=,.@_-"
        )
    return Role(arn=arn, external_id=external_id, session_name=session_name)


_SIZE = re.compile(r"^\s*(\d+)\s*(B|KiB|MiB|GiB)\s*$")
_SIZE_UNITS = {"B": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3}


def _size(entry: Mapping[str, Any], key: str, where: str, scheme: str, default: str) -> int:
    """A positive size like `"64MiB"` (units B, KiB, MiB, GiB), S3 destinations only."""
    if key in entry and scheme != "s3":
        raise ConfigError(f"{where}.{key}", "only for s3:// destinations")
    text = read_string(entry, key, f"{where}.{key}", default=default)
    match = _SIZE.match(text)
    if not match or int(match.group(1)) == 0:
        raise ConfigError(f"{where}.{key}", f"{text!r} is not a size like '64MiB' or '500KiB'")
    return int(match.group(1)) * _SIZE_UNITS[match.group(2)]


def _one_of(entry: Mapping[str, Any], key: str, where: str, allowed: tuple[str, ...]) -> Any:
    value = read_string(entry, key, f"{where}.{key}", default=None)
    if value is not None and value not in allowed:
        raise ConfigError(
            f"{where}.{key}", f"{value!r} is not one of {', '.join(map(repr, allowed))}"
        )
    return value


def _destination_url(url: str, where: str) -> tuple[str, str, str]:
    parts = urlsplit(url)
    if parts.scheme in ("s3", "file") and not url.startswith(f"{parts.scheme}://"):
        raise ConfigError(f"{where}.url", f"{url!r} is malformed: write {parts.scheme}://...")
    if parts.scheme == "s3":
        if not _BUCKET.match(parts.netloc):
            raise ConfigError(f"{where}.url", f"{parts.netloc!r} is not a valid S3 bucket name")
        return "s3", parts.netloc, parts.path.strip("/")
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise ConfigError(f"{where}.url", f"must be file:///absolute/dir, got {url!r}")
        return "file", "", parts.path.rstrip("/") or "/"
    raise ConfigError(f"{where}.url", f"must start with s3:// or file://, got {url!r}")
