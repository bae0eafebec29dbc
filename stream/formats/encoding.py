"""A sync's CSV lines in the destination's file format, as chunks made on demand so that a big
file is never in memory whole: `csv` views of the lines' own buffer, `csv.gz` the same
gzip-compressed deterministically (no file name, mtime 0: the bytes of
`gzip.compress(csv, 6, mtime=0)`), `parquet` the same cells with `amplitudeID` as int64 and
every other column a UTF-8 string column, empty cells as nulls, rows in the same order, in
row groups of `PARQUET_ROW_GROUP` rows, written with fixed settings (no timestamps: the same
input gives the same bytes).
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable, Iterator, Sequence

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from stream.formats.csvfile import header_line, line_chunks, render_lines

__all__ = ["PARQUET_ROW_GROUP", "encode", "encoder"]

#: Rows per Parquet row group: what the encoder holds at once, decoded.
PARQUET_ROW_GROUP = 65536
_GZIP_LEVEL = 6

Chunks = Iterator[bytes | memoryview]


def encoder(header: Sequence[str], lines: pa.StringArray, file_format: str) -> Callable[[], Chunks]:
    """A function giving the file of `header` then `lines` (from `csv_lines`) in
    `file_format`, in chunks, each time it is called."""
    if file_format == "csv":
        return lambda: _csv(header, lines)
    if file_format == "csv.gz":
        return lambda: _gzipped(_csv(header, lines))
    if file_format == "parquet":
        return lambda: _parquet(header, lines)
    raise ValueError(f"unknown file format {file_format!r}")


def encode(header: Sequence[str], lines: pa.StringArray, file_format: str) -> bytes:
    """The whole file at once (small files, tests)."""
    return b"".join(encoder(header, lines, file_format)())


def _csv(header: Sequence[str], lines: pa.StringArray) -> Chunks:
    yield header_line(header)
    yield from line_chunks(lines)


def _gzipped(chunks: Chunks) -> Chunks:
    """RFC 1952 around a raw deflate stream, as `gzip.compress` writes it on Python 3.11
    (the header is fixed here, so another Python's cannot change the bytes); zlib's output
    does not depend on how its input is split."""
    yield b"\x1f\x8b\x08\x00" + struct.pack("<I", 0) + b"\x00\x03"  # no flags, mtime 0, Unix
    deflate = zlib.compressobj(_GZIP_LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS)
    crc, size = 0, 0
    for chunk in chunks:
        crc, size = zlib.crc32(chunk, crc), size + len(chunk)
        yield deflate.compress(chunk)
    yield deflate.flush()
    yield struct.pack("<II", crc, size & 0xFFFFFFFF)


def _parquet(header: Sequence[str], lines: pa.StringArray) -> Chunks:
    types = {name: pa.int64() if index == 0 else pa.string() for index, name in enumerate(header)}
    out = _Drain()
    writer: pq.ParquetWriter | None = None
    for start in range(0, max(len(lines), 1), PARQUET_ROW_GROUP):
        table = _parsed(render_lines(header, lines.slice(start, PARQUET_ROW_GROUP)), types)
        if writer is None:  # every setting fixed: a library default that changes cannot
            writer = pq.ParquetWriter(  # change the bytes
                out,
                table.schema,
                compression="snappy",
                use_dictionary=True,
                write_statistics=True,
                version="2.6",
                data_page_version="1.0",
                store_schema=True,
            )
        writer.write_table(table, row_group_size=PARQUET_ROW_GROUP)
        yield out.take()
    assert writer is not None
    writer.close()
    yield out.take()


def _parsed(csv: bytes, types: dict[str, pa.DataType]) -> pa.Table:
    return pacsv.read_csv(
        io.BytesIO(csv),
        parse_options=pacsv.ParseOptions(newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(
            column_types=types, strings_can_be_null=True, quoted_strings_can_be_null=True
        ),
    )


class _Drain(io.RawIOBase):
    """A write-only file that hands over what was written since it was last asked."""

    def __init__(self) -> None:
        super().__init__()
        self._parts: list[bytes] = []
        self._position = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        self._parts.append(bytes(data))
        self._position += len(data)
        return len(data)

    def tell(self) -> int:
        return self._position

    def take(self) -> bytes:
        taken, self._parts = b"".join(self._parts), []
        return taken
