"""csv.gz and Parquet hold the CSV's rows, read back with pyarrow, pandas and DuckDB, and
the same input gives the same bytes."""

from __future__ import annotations

import csv
import gzip
import io
import json
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from stream.config import Settings, settings_from_mapping
from stream.engine.offline import expected_outputs
from stream.formats.csvfile import csv_lines
from stream.formats.encoding import PARQUET_ROW_GROUP, encode, encoder
from tests.scenario import C1, C2

Row = tuple[Any, ...]


def settings(file_format: str) -> Settings:
    return settings_from_mapping(
        {
            "project_id": 7,
            "kafka": {"partitions": 2, "idle_timeout": "off"},
            "destinations": [
                {
                    "name": "d",
                    "url": "s3://bucket-a/x",
                    "user_property": "plan",
                    "format": file_format,
                }
            ],
            "syncs": [{"cohort": "*", "destination": "d", "cadence": "hourly"}],
        }
    )


EVENTS = sorted(C1 + C2, key=lambda line: json.loads(line)["time"])


def files(file_format: str) -> dict[str, bytes]:
    outputs = expected_outputs(settings(file_format), EVENTS)
    return {f.key: f.data for o in outputs for f in o.csv_files}


def csv_rows(data: bytes) -> list[Row]:
    """The CSV's rows as the other formats must hold them: ids as ints, empty cells None."""
    rows = list(csv.reader(io.StringIO(data.decode(), newline="")))[1:]
    return [(int(row[0]), *(cell or None for cell in row[1:])) for row in rows]


def plain(rows: list[Any]) -> list[Row]:
    return [tuple(None if cell is None or cell != cell else cell for cell in row) for row in rows]


def test_the_file_names_end_in_their_format_and_the_manifest_records_it() -> None:
    outputs = expected_outputs(settings("parquet"), C1)
    assert outputs[0].csv_files[0].key == "x/7_c1_2026-01-05T01:00_entering.parquet"
    assert b'"file_format": "parquet"' in outputs[0].manifest.data
    assert b"file_format" not in expected_outputs(settings("csv"), C1)[0].manifest.data


def test_csv_gz_is_the_csv_compressed_deterministically() -> None:
    originals = files("csv")
    for key, data in files("csv.gz").items():
        assert data[4:8] == b"\0\0\0\0" and not data[3] & 0x08  # mtime 0, no file name
        assert gzip.decompress(data) == originals[key.removesuffix(".gz")]
        frame = pd.read_csv(io.BytesIO(data), compression="gzip", dtype=str, keep_default_na=False)
        assert list(frame.columns)[0] == "amplitudeID"


@pytest.mark.parametrize("reader", ["pyarrow", "pandas", "duckdb"])
def test_parquet_holds_the_csv_s_cells_in_its_order(reader: str, tmp_path: Path) -> None:
    originals = files("csv")
    parquet = files("parquet")
    assert len(parquet) == len(originals) == 24
    for key, data in parquet.items():
        expected = csv_rows(originals[key.removesuffix(".parquet") + ".csv"])
        if reader == "pyarrow":
            table = pq.read_table(io.BytesIO(data))
            assert str(table.schema.field("amplitudeID").type) == "int64"
            assert all(str(f.type) == "string" for f in table.schema if f.name != "amplitudeID")
            got = plain([tuple(row.values()) for row in table.to_pylist()])
        elif reader == "pandas":
            frame = pd.read_parquet(io.BytesIO(data))
            got = plain(list(frame.itertuples(index=False, name=None)))
        else:
            path = tmp_path / "f.parquet"
            path.write_bytes(data)
            relation = duckdb.sql(f"select * from read_parquet('{path}')")
            assert relation is not None
            got = plain(relation.fetchall())
        assert got == expected, key


def test_the_same_input_gives_the_same_bytes_in_every_format() -> None:
    for file_format in ("csv", "csv.gz", "parquet"):
        assert files(file_format) == files(file_format)


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown file format"):
        encode(["amplitudeID"], pa.array([], type=pa.string()), "xlsx")


def many_lines(rows: int) -> pa.StringArray:
    """`rows` CSV lines, some quoted, some with an empty cell."""
    cells = [
        pa.array(range(rows), type=pa.int64()).cast(pa.string()),
        pa.array([None if i % 7 == 0 else f"u{i}" for i in range(rows)], type=pa.string()),
        pa.array(['"a, b"' if i % 5 == 0 else "pro" for i in range(rows)], type=pa.string()),
    ]
    return csv_lines([column.to_pylist() for column in cells])


def test_csv_gz_made_in_chunks_has_the_bytes_of_gzip_compress_of_the_whole() -> None:
    lines = many_lines(200_000)  # several chunks of the lines' buffer
    header = ["amplitudeID", "userID", "plan"]
    whole = encode(header, lines, "csv")
    assert len(list(encoder(header, lines, "csv")())) > 3
    assert encode(header, lines, "csv.gz") == gzip.compress(whole, compresslevel=6, mtime=0)


def test_parquet_bigger_than_a_row_group_is_written_a_row_group_at_a_time() -> None:
    rows = 2 * PARQUET_ROW_GROUP + 10
    lines = many_lines(rows)
    header = ["amplitudeID", "userID", "plan"]
    data = encode(header, lines, "parquet")
    parquet = pq.ParquetFile(io.BytesIO(data))
    assert [parquet.metadata.row_group(i).num_rows for i in range(3)] == [
        PARQUET_ROW_GROUP,
        PARQUET_ROW_GROUP,
        10,
    ]
    got = plain([tuple(row.values()) for row in parquet.read().to_pylist()])
    assert got == csv_rows(encode(header, lines, "csv"))
    assert encode(header, lines, "parquet") == data
