"""Cells -> deterministic RFC 4180 CSV bytes, built with Arrow compute kernels.

UTF-8, `\n` after every row (the header included), a field is quoted only when it holds a
comma, a double quote, CR or LF, with inner quotes doubled. Null cells are empty fields.
This is the only module that imports pyarrow.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["format_cell", "guard_formula", "render_csv", "bare_arrow_csv"]

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

_NEEDS_QUOTES = r'[,"\r\n]'


def format_cell(value: Any) -> str | None:
    """A JSON value as a CSV cell: null -> empty, booleans `true`/`false`, numbers as JSON
    writes them, lists and objects as compact JSON, strings as they are."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def guard_formula(cell: str | None) -> str | None:
    """For spreadsheet consumers: a cell a spreadsheet would run as a formula (it starts
    with =, +, -, @, tab or CR) gets a leading apostrophe, so it shows as text."""
    if cell and cell.startswith(_FORMULA_STARTS):
        return "'" + cell
    return cell


def render_csv(header: Sequence[str], columns: Sequence[Sequence[str | int | None]]) -> bytes:
    """The CSV file of `header` and column-major cells (every column the same length; a
    column is all text or all integers)."""
    if len(header) != len(columns):
        raise ValueError(f"{len(header)} header names for {len(columns)} columns")
    head = ",".join(_quote_one(name) for name in header) + "\n"
    if not columns or len(columns[0]) == 0:
        return head.encode("utf-8")
    arrays = [_quote(_as_text(column)) for column in columns]
    if len(arrays) == 1:
        lines = pc.fill_null(arrays[0], "")
    else:
        lines = pc.binary_join_element_wise(
            *arrays, ",", null_handling="replace", null_replacement=""
        )
    # Each line with its "\n" ([line, ""] joined by "\n"), inside Arrow: the file body is then
    # the values' bytes end to end, read straight from the data buffer (no Python strings).
    return head.encode("utf-8") + _concatenated(pc.binary_join_element_wise(lines, "", "\n"))


def _concatenated(strings: pa.StringArray) -> bytes:
    """Every value of `strings` (no nulls), end to end, from its buffers."""
    _, offsets, data = strings.buffers()
    first = strings.offset
    start, end = (
        struct.unpack_from("<i", offsets, 4 * index)[0] for index in (first, first + len(strings))
    )
    return bytes(memoryview(data)[start:end])


def _as_text(column: Sequence[str | int | None]) -> pa.Array:
    if column and isinstance(column[0], int):
        return pa.array(column, type=pa.int64()).cast(pa.string())
    return pa.array(column, type=pa.string())


def _quote(cells: pa.Array) -> pa.Array:
    needs_quotes = pc.match_substring_regex(cells, _NEEDS_QUOTES)
    if not pc.any(needs_quotes).as_py():
        return cells
    escaped = pc.replace_substring(cells, '"', '""')
    wrapped = pc.binary_join_element_wise('"', escaped, '"', "")
    return pc.if_else(needs_quotes, wrapped, cells)


def _quote_one(text: str) -> str:
    if any(char in text for char in ',"\r\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


def bare_arrow_csv(header: Sequence[str], columns: Sequence[Sequence[str | None]]) -> bytes:
    """pyarrow's own `write_csv` of the same cells: the benchmark's baseline for a flush."""
    import io

    import pyarrow.csv as pa_csv

    table = pa.table(
        {name: pa.array(col, type=pa.string()) for name, col in zip(header, columns, strict=True)}
    )
    buffer = io.BytesIO()
    pa_csv.write_csv(table, buffer)
    return buffer.getvalue()
