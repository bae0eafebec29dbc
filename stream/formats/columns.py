"""A diff's rows as columns, and their CSV lines, built without a Python object a row.

Members share few distinct property sets (plans, countries), so a row's properties are an
index into `property_sets`: a cell is formatted once per set and taken for every row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from stream.domain.membership import PropertyKey, Snapshot
from stream.formats.csvfile import format_cell, guard_formula, joined_lines, quote_cell, quoted

__all__ = ["ColumnDiff", "RowColumns", "column_lines"]

#: A row's properties: key -> (value, stamp), as a snapshot holds them.
Properties = Mapping[PropertyKey, tuple[Any, Any]]


@dataclass(frozen=True, slots=True)
class RowColumns:
    """Rows ascending by amplitude id: their ids, user ids (null: none) and properties
    (`property_sets[set_index[row]]`)."""

    ids: np.ndarray
    user_ids: pa.Array
    set_index: np.ndarray
    property_sets: Sequence[Properties]

    def __len__(self) -> int:
        return len(self.ids)

    @staticmethod
    def of_snapshots(rows: Sequence[tuple[int, Snapshot]]) -> RowColumns:
        """Rows made from (amplitude id, snapshot) pairs, ascending."""
        sets: dict[int, int] = {}
        property_sets: list[Properties] = []
        index = np.empty(len(rows), dtype=np.int64)
        for row, (_, view) in enumerate(rows):
            found = sets.get(id(view.properties))
            if found is None:
                found = sets[id(view.properties)] = len(property_sets)
                property_sets.append(view.properties)
            index[row] = found
        return RowColumns(
            np.fromiter((a for a, _ in rows), dtype=np.int64, count=len(rows)),
            pa.array([view.user_id for _, view in rows], type=pa.large_string()),
            index,
            property_sets,
        )

    def take(self, rows: np.ndarray) -> RowColumns:
        """These rows (a boolean mask or indices), in the order given."""
        positions = np.flatnonzero(rows) if rows.dtype == bool else rows
        return RowColumns(
            self.ids[positions],
            self.user_ids.take(pa.array(positions)),
            self.set_index[positions],
            self.property_sets,
        )

    def merged(self, other: RowColumns) -> RowColumns:
        """Both sets of rows, ascending by id (no id is in both)."""
        if not len(other):
            return self
        if not len(self):
            return other
        ids = np.concatenate([self.ids, other.ids])
        order = np.argsort(ids, kind="stable")
        return RowColumns(
            ids[order],
            pa.concat_arrays([_large(self.user_ids), _large(other.user_ids)]).take(pa.array(order)),
            np.concatenate([self.set_index, other.set_index + len(self.property_sets)])[order],
            [*self.property_sets, *other.property_sets],
        )

    def used_sets(self) -> list[Properties]:
        """The property sets some row has."""
        return [self.property_sets[i] for i in np.unique(self.set_index).tolist()]


@dataclass(frozen=True, slots=True)
class ColumnDiff:
    """A cohort diff (`membership.CohortDiff`) as columns."""

    entering: RowColumns
    exiting: RowColumns
    existing: RowColumns


def column_lines(
    rows: RowColumns, columns: Sequence[tuple[str, PropertyKey]], guard: bool
) -> pa.StringArray:
    """The CSV line of each row (as `csv_lines` makes them): amplitude id, user id, then
    the property columns."""
    if not len(rows):
        return pa.array([], type=pa.string())
    users = rows.user_ids.cast(pa.string())
    if guard:  # amplitude ids are digits: only the other columns can hold a formula
        users = _guarded(users)
    # Amplitude ids are digits: never quoted. A property cell is quoted once per set.
    cells: list[Any] = [pa.array(rows.ids, type=pa.int64()).cast(pa.string()), quoted(users)]
    take = pa.array(rows.set_index)
    for _, prop in columns:
        texts = [_cell(properties, prop) for properties in rows.property_sets]
        if guard:
            texts = [guard_formula(text) for text in texts]
        cells.append(pa.array([quote_cell(t) for t in texts], type=pa.string()).take(take))
    return joined_lines(cells)


def _cell(properties: Properties, prop: PropertyKey) -> str | None:
    value = properties.get(prop, _MISSING)[0]
    return value if value is None or type(value) is str else format_cell(value)


_MISSING: tuple[None] = (None,)


def _guarded(cells: pa.StringArray) -> pa.Array:
    formula = pc.match_substring_regex(cells, r"^[=+\-@\t\r]")
    if not pc.any(formula).as_py():
        return cells
    return pc.if_else(formula, pc.binary_join_element_wise("'", cells, ""), cells)


def _large(array: pa.Array) -> pa.Array:
    return array if array.type == pa.large_string() else array.cast(pa.large_string())
