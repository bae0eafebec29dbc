"""The README's lines that load the files: run on files the worker's own code writes, with
a header-only file and two rules with different columns, they give every column with its
type (docs/output.md says why each option is there)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from stream.config import settings_from_mapping
from stream.engine.offline import expected_outputs
from stream.output.sync import write_sync
from stream.sinks import open_sink
from tests.scenario import event

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
H = 3_600_000


def loading_block() -> str:
    found = re.search(r"Loading them:.*?```python\n(.*?)```", README, flags=re.S)
    assert found is not None, "the README's loading lines"
    return found.group(1)


def write_files(folder: Path) -> None:
    """Hourly syncs of two rules per format: `*` with `plan`, and routing key `crm` with
    `country` as well; cohort c9 is empty at 02:00, so its existing files are header-only."""
    destinations = [
        {"name": fmt, "url": folder.as_uri(), "user_property": "plan", "format": fmt}
        for fmt in ("csv", "parquet")
    ]
    syncs = [
        {"cohort": "*", "destination": fmt, "cadence": "hourly", **extra}
        for fmt in ("csv", "parquet")
        for extra in ({}, {"routing_key": "crm", "user_properties": ["country"]})
    ]
    settings = settings_from_mapping(
        {"project_id": 7, "kafka": {"partitions": 1}, "destinations": destinations, "syncs": syncs}
    )
    lines = [
        event("c1", 1, "enter", 10 * 60_000, plan="pro", country="DE"),
        event("c9", 2, "enter", 20 * 60_000, plan="free"),
        event("c9", 2, "exit", H + 10 * 60_000),
        event("c1", 3, "enter", 2 * H + 30 * 60_000, plan="a,b"),
    ]
    for output in expected_outputs(settings, lines):
        write_sync(open_sink(settings.destinations[output.destination]), output)
    assert (folder / "7_c9_2026-01-05T02:00_existing.csv").read_text() == (
        "amplitudeID,userID,plan\n"
    )


@pytest.fixture
def loaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    write_files(tmp_path / "out")
    monkeypatch.chdir(tmp_path)  # the README's lines read out/ (DuckDB when it is queried)
    names: dict[str, Any] = {}
    exec(loading_block(), names)  # noqa: S102 - the README's own lines
    return names


def test_duckdb_keeps_every_rule_s_columns_and_types_them(loaded: dict[str, Any]) -> None:
    relation = loaded["relation"]
    assert dict(zip(relation.columns, map(str, relation.types), strict=True)) == {
        "amplitudeID": "BIGINT",
        "userID": "VARCHAR",
        "plan": "VARCHAR",
        "country": "VARCHAR",
    }
    assert len(relation.fetchall()) == 6  # c1 at 01:00 and 02:00 in two rules, c9 at 01:00


def test_pandas_keeps_every_rule_s_columns_and_types_them(loaded: dict[str, Any]) -> None:
    frame = loaded["frame"]
    assert list(frame.columns) == ["amplitudeID", "userID", "plan", "country"]
    assert str(frame.dtypes["amplitudeID"]) == "int64"
    assert all(frame[c].dropna().map(type).eq(str).all() for c in ["userID", "plan", "country"])
    assert len(frame) == 6


def test_pyarrow_on_parquet_keeps_every_rule_s_columns_and_types_them(
    loaded: dict[str, Any],
) -> None:
    table = loaded["table"]
    assert {f.name: str(f.type) for f in table.schema} == {
        "amplitudeID": "int64",
        "userID": "string",
        "plan": "string",
        "country": "string",
    }
    assert table.num_rows == 6
