"""A sync's CSV bytes in the destination's file format: `csv` as they are, `csv.gz`
gzip-compressed deterministically (no file name, mtime 0), `parquet` the same cells with
`amplitudeID` as int64 and every other column a UTF-8 string column, empty cells as nulls,
rows in the same order, written with fixed settings (no timestamps: the same input gives
the same bytes).
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Sequence

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

__all__ = ["encode"]


def encode(csv: bytes, header: Sequence[str], file_format: str) -> bytes:
    """`csv` (the row `header`, then rows) in `file_format`."""
    if file_format == "csv":
        return csv
    if file_format == "csv.gz":
        return gzip.compress(csv, compresslevel=6, mtime=0)
    if file_format == "parquet":
        return _parquet(csv, header)
    raise ValueError(f"unknown file format {file_format!r}")


def _parquet(csv: bytes, header: Sequence[str]) -> bytes:
    types = {name: pa.int64() if index == 0 else pa.string() for index, name in enumerate(header)}
    table = pacsv.read_csv(
        io.BytesIO(csv),
        parse_options=pacsv.ParseOptions(newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(
            column_types=types, strings_can_be_null=True, quoted_strings_can_be_null=True
        ),
    )
    out = io.BytesIO()
    pq.write_table(  # every setting fixed: a library default that changes cannot change bytes
        table,
        out,
        compression="snappy",
        use_dictionary=True,
        write_statistics=True,
        version="2.6",
        data_page_version="1.0",
        store_schema=True,
    )
    return out.getvalue()
