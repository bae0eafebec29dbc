"""Object keys of a sync: `{path}/{project_id}_{cohort_id}_{T}_{difftype}[_{routing_key}].csv`
and the manifest `{path}/{project_id}_{cohort_id}_{T}_manifest[_{routing_key}].json`."""

from __future__ import annotations

from stream.domain.windows import format_sync_time

__all__ = ["DIFF_TYPES", "object_key"]

DIFF_TYPES = ("entering", "exiting", "existing")


def object_key(
    *,
    path: str,
    project_id: int,
    cohort_id: str,
    sync_time: int,
    kind: str,
    naming: str,
    routing_key: str | None,
    file_format: str = "csv",
) -> str:
    """`kind` is a diff type or `manifest`; `path` is the destination's folder ("" for none).
    A diff's file name ends in its `file_format` (`csv`, `csv.gz`, `parquet`)."""
    suffix = f"_{routing_key}" if routing_key else ""
    extension = "json" if kind == "manifest" else file_format
    stamp = format_sync_time(sync_time, naming)
    name = f"{project_id}_{cohort_id}_{stamp}_{kind}{suffix}.{extension}"
    return f"{path}/{name}" if path else name
