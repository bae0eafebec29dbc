"""Cells -> deterministic RFC 4180 CSV bytes, built with Arrow compute kernels.

UTF-8, `\n` after every row (the header included), a field is quoted only when it holds a
comma, a double quote, CR or LF, with inner quotes doubled. Null cells are empty fields.
pyarrow is imported here and in `encoding.py`, nowhere else.
"""

from __future__ import annotations

import json
import struct
from bisect import bisect_left
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "format_cell",
    "guard_formula",
    "render_csv",
    "csv_lines",
    "render_lines",
    "header_line",
    "joined_lines",
    "quote_cell",
    "quoted",
    "line_chunks",
    "Rows",
]

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
    return render_lines(header, csv_lines(columns))


def csv_lines(columns: Sequence[Sequence[str | int | None] | pa.Array]) -> pa.StringArray:
    """One CSV line per row of the column-major cells, each ending in "\n"."""
    if not columns or len(columns[0]) == 0:
        return pa.array([], type=pa.string())
    return joined_lines([_quote(_as_text(column)) for column in columns])


def joined_lines(arrays: Sequence[pa.Array]) -> pa.StringArray:
    """`csv_lines` of cells already quoted (`quoted`), as text arrays of equal length."""
    if len(arrays) == 1:
        lines = pc.fill_null(arrays[0], "")
    else:
        lines = pc.binary_join_element_wise(
            *arrays, ",", null_handling="replace", null_replacement=""
        )
    # Each line with its "\n" ([line, ""] joined by "\n"), inside Arrow: a file body is then
    # the values' bytes end to end, read straight from the data buffer (no Python strings).
    return pc.binary_join_element_wise(lines, "", "\n")


def render_lines(header: Sequence[str], lines: pa.StringArray) -> bytes:
    """The header line, then `lines` (from `csv_lines`) end to end."""
    if len(lines) == 0:
        return header_line(header)
    return header_line(header) + _concatenated(lines)


def header_line(header: Sequence[str]) -> bytes:
    return (",".join(_quote_one(name) for name in header) + "\n").encode("utf-8")


#: The size of the views `line_chunks` gives.
CHUNK_BYTES = 1024 * 1024


def line_chunks(lines: pa.StringArray) -> Iterator[memoryview]:
    """`lines` end to end (what `render_lines` puts after the header) as views of their
    data buffer of up to `CHUNK_BYTES` each: nothing is copied."""
    if len(lines) == 0:
        return
    _, offsets, data = lines.buffers()
    first = lines.offset
    start, end = (
        struct.unpack_from("<i", offsets, 4 * index)[0] for index in (first, first + len(lines))
    )
    view = memoryview(data)
    for at in range(start, end, CHUNK_BYTES):
        yield view[at : min(at + CHUNK_BYTES, end)]


@dataclass(frozen=True, slots=True)
class Rows:
    """A CSV body kept between syncs: its lines (from `csv_lines`) and the amplitude id of
    each, ascending. The next sync's existing file is this one with the rows of the members
    that changed replaced, without formatting the others again."""

    ids: pa.Int64Array
    lines: pa.StringArray

    @classmethod
    def of(cls, ids: Sequence[int] | np.ndarray, lines: pa.StringArray) -> Rows:
        return cls(pa.array(ids, type=pa.int64()), lines)

    def __len__(self) -> int:
        return len(self.ids)

    def render(self, header: Sequence[str]) -> bytes:
        return render_lines(header, self.lines)

    def replaced(self, drop: Sequence[int], add: Rows) -> Rows:
        """These rows without those of the ids in `drop`, with the rows of `add` (ids
        ascending in both; an id of `add` is in `drop` or not here)."""
        if not drop and not len(add):
            return self
        if len(drop) + len(add) > _MERGE_LIMIT:
            return self._replaced_by_sorting(drop, add)
        ids = _int64_view(self.ids)
        removed = [(p, 1, 0) for d in drop if (p := bisect_left(ids, d)) < len(ids) and ids[p] == d]
        inserted = [(bisect_left(ids, a), 0, j) for j, a in enumerate(_int64_view(add.ids))]
        pieces: list[tuple[Rows, int, int]] = []  # (source, start, length)
        cursor = 0
        for position, is_removal, index in sorted(removed + inserted):
            pieces.append((self, cursor, position - cursor))
            if is_removal:
                cursor = position + 1
            else:
                pieces.append((add, index, 1))
                cursor = position
        pieces.append((self, cursor, len(ids) - cursor))
        kept = [(rows, start, length) for rows, start, length in pieces if length > 0]
        if not kept:
            return Rows(pa.array([], type=pa.int64()), pa.array([], type=pa.string()))
        return Rows(
            pa.concat_arrays([rows.ids.slice(start, length) for rows, start, length in kept]),
            pa.concat_arrays([rows.lines.slice(start, length) for rows, start, length in kept]),
        )

    def _replaced_by_sorting(self, drop: Sequence[int], add: Rows) -> Rows:
        keep = pc.invert(pc.is_in(self.ids, value_set=pa.array(drop, type=pa.int64())))
        ids = pa.concat_arrays([pc.filter(self.ids, keep), add.ids])
        lines = pa.concat_arrays([pc.filter(self.lines, keep), add.lines])
        order = pc.sort_indices(ids)
        return Rows(pc.take(ids, order), pc.take(lines, order))


#: Past this many changed rows, a sort is cheaper than splicing slices.
_MERGE_LIMIT = 5000


def _int64_view(ids: pa.Int64Array) -> memoryview:
    """The ids as a memoryview of int64 (indexable at C speed, so `bisect` works on it)."""
    data = memoryview(ids.buffers()[1]).cast("q")
    return data[ids.offset : ids.offset + len(ids)]


def _concatenated(strings: pa.StringArray) -> bytes:
    """Every value of `strings` (no nulls), end to end, from its buffers."""
    _, offsets, data = strings.buffers()
    first = strings.offset
    start, end = (
        struct.unpack_from("<i", offsets, 4 * index)[0] for index in (first, first + len(strings))
    )
    return bytes(memoryview(data)[start:end])


def _as_text(column: Sequence[str | int | None] | pa.Array) -> pa.Array:
    if isinstance(column, pa.Array):  # columns already (`columns.py`)
        return column if column.type == pa.string() else column.cast(pa.string())
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


def quoted(cells: pa.Array) -> pa.Array:
    """Text cells as CSV fields (quoted where they need it)."""
    return _quote(cells)


def quote_cell(text: str | None) -> str | None:
    """One text cell as a CSV field (None stays an empty field)."""
    return None if text is None else _quote_one(text)


def _quote_one(text: str) -> str:
    if any(char in text for char in ',"\r\n'):
        return '"' + text.replace('"', '""') + '"'
    return text
