"""`[[destinations]]`: where syncs are written (an S3 bucket and path, or a folder)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from stream.config.values import no_unknown_keys, read_boolean, read_string
from stream.errors import ConfigError

__all__ = ["Destination", "parse_destinations"]

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


def parse_destinations(raw: Any) -> dict[str, Destination]:
    if not isinstance(raw, list):
        raise ConfigError("destinations", "must be an array of tables ([[destinations]])")
    result: dict[str, Destination] = {}
    for index, entry in enumerate(raw):
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
        }
        no_unknown_keys(entry, keys, f"{where}.")
        name = read_string(entry, "name", f"{where}.name")
        if name in result:
            raise ConfigError(f"{where}.name", f"destination {name!r} is defined twice")
        scheme, bucket, path = _destination_url(read_string(entry, "url", f"{where}.url"), where)
        naming = read_string(entry, "naming", f"{where}.naming", default="amplitude")
        if naming not in ("amplitude", "no-colon"):
            raise ConfigError(
                f"{where}.naming", f'must be "amplitude" or "no-colon", got {naming!r}'
            )
        endpoint = read_string(entry, "endpoint_url", f"{where}.endpoint_url", default=None)
        if endpoint is not None and urlsplit(endpoint).scheme not in ("http", "https"):
            raise ConfigError(f"{where}.endpoint_url", f"must be an http(s) URL, got {endpoint!r}")
        result[name] = Destination(
            name=name,
            url=entry["url"],
            scheme=scheme,
            bucket=bucket,
            path=path,
            region=read_string(entry, "region", f"{where}.region", default=None),
            endpoint_url=endpoint,
            naming=naming,
            require_suffix=read_boolean(entry, "require_suffix", f"{where}.require_suffix", False),
            user_property=read_string(
                entry, "user_property", f"{where}.user_property", default=None
            ),
            csv_formula_guard=read_boolean(
                entry, "csv_formula_guard", f"{where}.csv_formula_guard", False
            ),
        )
    return result


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
